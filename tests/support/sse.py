"""A strict client-side reader of the server's SSE wire format, for tests.

Strict on purpose: every frame must end with a blank line and carry `id:` and `event:`
(the `[DONE]` terminator and `: ping` comments excepted), and the JSON `type` must repeat
the event name. A framing slip fails the test instead of being papered over.
"""

import json
import time
from dataclasses import dataclass, field

DONE_MARKER = "[DONE]"


@dataclass
class Event:
    id: int
    event: str
    data: dict
    received_at: float


@dataclass
class StreamTranscript:
    status_code: int
    headers: dict[str, str]
    raw: bytes = b""
    events: list[Event] = field(default_factory=list)
    pings: int = 0
    saw_done_marker: bool = False

    def of_type(self, event_type: str) -> list[Event]:
        return [e for e in self.events if e.event == event_type]

    @property
    def text(self) -> str:
        return "".join(e.data["text"] for e in self.of_type("delta"))

    @property
    def start(self) -> dict:
        return self.of_type("start")[0].data

    @property
    def done(self) -> dict:
        (done,) = self.of_type("done")
        return done.data


class FrameReader:
    """Feeds raw bytes (split anywhere, even inside a UTF-8 character) and yields frames."""

    def __init__(self, transcript: StreamTranscript) -> None:
        self._buffer = b""
        self._transcript = transcript

    def feed(self, chunk: bytes) -> list[Event]:
        self._buffer += chunk
        new_events: list[Event] = []
        while b"\n\n" in self._buffer:
            frame, self._buffer = self._buffer.split(b"\n\n", 1)
            event = self._frame(frame.decode("utf-8"))
            if event is not None:
                new_events.append(event)
                self._transcript.events.append(event)
        return new_events

    def finish(self) -> None:
        assert self._buffer == b"", f"unterminated frame at end of stream: {self._buffer!r}"

    def _frame(self, frame: str) -> Event | None:
        lines = frame.split("\n")
        if all(line.startswith(":") for line in lines):
            self._transcript.pings += 1
            return None
        fields: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(": ")
            assert name not in fields, f"duplicate field {name!r} in frame {frame!r}"
            fields[name] = value
        assert not self._transcript.saw_done_marker, "a frame came after [DONE]"
        if fields == {"data": DONE_MARKER}:
            self._transcript.saw_done_marker = True
            return None
        assert set(fields) == {"id", "event", "data"}, f"bad frame {frame!r}"
        data = json.loads(fields["data"])
        assert data["type"] == fields["event"], frame
        return Event(int(fields["id"]), fields["event"], data, time.monotonic())


async def read_streaming_response(response) -> StreamTranscript:
    """Read an in-process (Django test client) streaming response frame by frame."""
    transcript = StreamTranscript(response.status_code, dict(response.headers))
    reader = FrameReader(transcript)
    async for chunk in response.streaming_content:
        reader.feed(chunk)
    reader.finish()
    return transcript
