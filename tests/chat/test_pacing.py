"""The pace of a lone answer: how many bytes its next read waits for."""

import pytest

from chat.pacing import EARLIEST, LATEST, MAX_GATE_BYTES, LonePace, next_read_at

WINDOW = 0.066
EVENT = 200  # bytes of one event


def _paced(tokens_per_second: float, reads: int = 10) -> LonePace:
    """A pace fed `reads` reads a window apart at `tokens_per_second` (one event each)."""
    pace, sent, at = LonePace(WINDOW), 0, 0.0
    for _ in range(reads):
        at += WINDOW
        events = int(at * tokens_per_second) - sent
        sent += events
        pace.record(at, events, events * EVENT)
    return pace


@pytest.mark.parametrize(
    ("tokens_per_second", "events_waited_for"),
    [(30, 1.5), (45, 2.5), (60, 3.5), (200, 12.5), (15, None), (5, None)],
)
def test_the_next_read_waits_for_the_events_nearest_a_window(tokens_per_second, events_waited_for):
    gate = _paced(tokens_per_second).gate_bytes()
    if events_waited_for is None:  # an event a window or fewer: any byte is worth a read
        assert gate == 1
    else:
        # Less half an event than the whole ones, so smaller events still meet it...
        assert gate == events_waited_for * EVENT
        # ...and evenly paced, they arrive between the earliest and the latest next read.
        arrives_after = (events_waited_for + 0.5) / tokens_per_second
        assert EARLIEST * WINDOW <= arrives_after <= LATEST * WINDOW


def test_the_pace_is_known_after_a_few_reads_and_follows_a_change():
    pace = LonePace(WINDOW)
    for i in range(4):
        assert not pace.known
        pace.record(i * WINDOW, 2, 2 * EVENT)
    assert pace.known
    assert pace.gate_bytes() == 1.5 * EVENT
    for i in range(4, 14):  # the model speeds up to 4 events a window
        pace.record(i * WINDOW, 4, 4 * EVENT)
    assert pace.gate_bytes() == 3.5 * EVENT


def test_a_gate_is_at_most_64_kb():
    assert _paced(100_000).gate_bytes() == MAX_GATE_BYTES


def test_shared_ticks_are_at_least_half_a_window_away():
    assert next_read_at(0.0, WINDOW) == pytest.approx(WINDOW)
    assert next_read_at(0.03, WINDOW) == pytest.approx(WINDOW)  # 36 ms away
    assert next_read_at(0.04, WINDOW) == pytest.approx(2 * WINDOW)  # 26 ms: the one after
