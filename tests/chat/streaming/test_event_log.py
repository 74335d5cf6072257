"""The event log: read from any id, it gives the frames that encoding each event as it was
added would have given, whatever the text and however many deltas were joined."""

import random

from chat.streaming import events
from chat.streaming.event_log import EventLog


def _log_and_frames(deltas: list[str], *, error: bool = False) -> tuple[EventLog, list[bytes]]:
    """A log of a whole answer, and its frames encoded one by one as they were added."""
    log, expected = EventLog(), []

    def add(event_type: str, payload: dict) -> None:
        if event_type == events.DELTA:
            log.add_delta(payload["text"])
        else:
            log.add(event_type, payload)
        expected.append(events.event_frame(len(expected) + 1, event_type, payload))

    add(events.START, {"record_id": 7, "session_id": 3, "model": "m"})
    for text in deltas:
        add(events.DELTA, {"text": text})
    if error:
        add(events.ERROR, {"code": "upstream_timeout", "message": "went silent"})
    add(events.DONE, {"record_id": 7, "session_id": 3, "status": "done"})
    log.end()
    return log, [*expected, events.DONE_FRAME]


def test_every_resume_point_reads_the_frames_as_encoded_at_once():
    # CJK, emoji, newlines, quotes, an empty-looking space: enough deltas to be joined twice.
    pieces = ["你好", "，", "世界", "😀", "\n", '"q"', " ", "a" * 40, "é"]
    deltas = [random.Random(i).choice(pieces) * (1 + i % 3) for i in range(75)]
    log, expected = _log_and_frames(deltas, error=True)

    assert len(log) == len(expected)
    assert log.event_count == len(expected) - 1
    for after in range(len(expected) + 2):
        assert log.frames_after(after) == expected[after:], after
    assert log.text == "".join(deltas)


def test_a_reader_keeping_up_gets_each_new_frame_once():
    log, sent, received = EventLog(), 0, []
    log.add(events.START, {"record_id": 1})
    for i in range(70):
        log.add_delta(f"词{i} ")
        new = log.frames_after(sent)
        sent += len(new)
        received += new
    log.end()
    received += log.frames_after(sent)

    texts = [
        frame.split(b"data: ")[1].decode() for frame in received[1:-1]
    ]  # every delta, once, in order, with its own id
    assert texts == [f'{{"type":"delta","text":"词{i} "}}\n\n' for i in range(70)]
    assert [f.split(b"\n")[0] for f in received[:-1]] == [b"id: %d" % i for i in range(1, 72)]
    assert received[-1] == events.DONE_FRAME


def test_an_open_log_has_no_done_frame_and_its_text_so_far():
    log = EventLog()
    log.add(events.START, {"record_id": 1})
    log.add_delta("半")
    assert not log.ended
    assert log.frames_after(1) == [events.event_frame(2, events.DELTA, {"text": "半"})]
    assert log.frames_after(2) == []
    assert log.text == "半"
    assert log.has_text
    log.add_delta("句")  # reading the text joined it; later reads still split right
    assert log.frames_after(1)[1] == events.event_frame(3, events.DELTA, {"text": "句"})
