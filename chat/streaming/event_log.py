"""An answer's event log, kept as the answer's text: frames are encoded when read.

The log is the events of one answer in order (`start`, the deltas, perhaps `error`,
`done`; ids 1, 2, ...) and then `[DONE]`; any reader, a resume included, reads it from any
id. Kept as encoded frames, it held every delta's text a second time, inside ~60 bytes of
SSE and JSON plus a bytes object each: ~7 KB for a 60-delta answer, more than the rest of
an open answer's memory in the relay, and ~100 KB for a long one, kept for the replay
time after it ends (bench/, memory). Here a delta is the text it adds and where it ends (4
bytes); only the few other events are kept encoded. A frame is encoded when a reader
reads it, byte for byte the frame that encoding it at once would have given: with one
reader, the usual case, each frame is still encoded once.
"""

from array import array

from chat.streaming import events

# Delta texts are kept one string each until this many, then joined (a few strings, not
# one per delta, for a long answer).
_JOIN_AFTER = 32


class EventLog:
    __slots__ = ("_ended", "_ends", "_head", "_length", "_others", "_recent")

    def __init__(self) -> None:
        self._ends = array("I")  # per event: where the answer's text is after it (chars)
        self._others: dict[int, bytes] = {}  # the frames of events other than deltas, by id
        self._head = ""  # the text of the first deltas, joined
        self._recent: list[str] = []  # the text of each later delta
        self._length = 0  # of the whole text
        self._ended = False

    def __len__(self) -> int:
        """Frames in the log, `[DONE]` included once it has ended."""
        return len(self._ends) + self._ended

    @property
    def event_count(self) -> int:
        return len(self._ends)

    @property
    def has_text(self) -> bool:
        return self._length > 0

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def text(self) -> str:
        """The text of every delta so far."""
        self._join_recent()
        return self._head

    def add_delta(self, text: str) -> None:
        self._recent.append(text)
        self._length += len(text)
        self._ends.append(self._length)
        if len(self._recent) >= _JOIN_AFTER:
            self._join_recent()

    def _join_recent(self) -> None:
        if self._recent:
            self._head, self._recent = self._head + "".join(self._recent), []

    def add(self, event_type: str, payload: dict) -> None:
        """Any event but a delta (`start`, `error`, `done`), encoded now: there are few."""
        event_id = len(self._ends) + 1
        self._others[event_id] = events.event_frame(event_id, event_type, payload)
        self._ends.append(self._length)

    def end(self) -> None:
        """Close the log with `[DONE]`."""
        self._ended = True

    def frames_after(self, after: int) -> list[bytes]:
        """The frames after event id `after`, in order (`[DONE]` last once ended)."""
        after, event_count = max(after, 0), len(self._ends)
        frames = []
        if after < event_count:
            base = self._ends[after - 1] if after else 0
            text = self._text_from(base)  # text[i] is the answer's character base + i
            start = base
            for event_id in range(after + 1, event_count + 1):
                frame = self._others.get(event_id)
                if frame is None:
                    end = self._ends[event_id - 1]
                    delta = text[start - base : end - base]
                    frame = events.event_frame(event_id, events.DELTA, {"text": delta})
                    start = end
                frames.append(frame)
        if self._ended and after <= event_count:
            frames.append(events.DONE_FRAME)
        return frames

    def _text_from(self, start: int) -> str:
        """The text from character `start` on. A reader keeping up asks for the last
        delta or two: only those are joined (or none, for one)."""
        wanted = self._length - start
        pieces, gathered = [], 0
        for piece in reversed(self._recent):
            if gathered >= wanted:
                break
            pieces.append(piece)
            gathered += len(piece)
        if gathered >= wanted:  # deltas end where events do: the pieces start at `start`
            return pieces[0] if len(pieces) == 1 else "".join(reversed(pieces))
        return self._head[start:] + "".join(self._recent)
