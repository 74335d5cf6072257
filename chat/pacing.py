"""When to read a model's answer again: the pacing behind coalescing.

An answer is read at most about once per coalescing window, and everything that arrived
in between comes back as one batch, one event. How the next read is timed depends on how
many answers the process is reading:

- Several: on ticks of one grid of the window shared by the whole process
  (`next_read_at`), so that one timer wake-up of the event loop serves them all.
- One (`reading_alone`): when the tokens that complete about a window have arrived
  (`LonePace`). The data wakes the event loop; no timer does. On these machines a
  timer wake-up of an otherwise idle process costs about twice a wake-up by data from
  another process, and a lone answer pays one per window. A/B in one run (bench/,
  `--compare`): the lone pacing cost 0.89x the CPU per token of the ticks at N=1, about
  the same at N=2, and 1.2-1.36x at N=4 to 32, where one tick serves every answer.
"""

import math
from array import array
from collections.abc import Iterator
from contextlib import contextmanager

_answers_reading = 0


@contextmanager
def reading_answer() -> Iterator[None]:
    """Count an answer as read from its model while the block runs."""
    global _answers_reading
    _answers_reading += 1
    try:
        yield
    finally:
        _answers_reading -= 1


def reading_alone() -> bool:
    return _answers_reading == 1


def next_read_at(read_at: float, window: float) -> float:
    """When to read the model again after a read at `read_at` (event-loop time): the next
    tick of one grid of `window` for the whole process that is at least half a window
    away. An answer read on a tick is read again one window later, so it gets one event
    per window while the model keeps up, and every answer in the process is read on the
    same ticks: one wake-up of the event loop serves them all, instead of one each."""
    return math.ceil((read_at + window / 2) / window) * window


# The next read of a lone answer comes between these fractions of a window after a read.
# Their ratio is 2, so for any steady pace at least one window's worth of events there
# is a whole number of events that arrives in between (the one nearest a window's worth).
EARLIEST, LATEST = 2 / 3, 4 / 3
_PACE_READS = 8  # the pace is measured over this many reads (~half a second)
_RING = _PACE_READS + 1  # reads kept: the pace runs from the first to the last
_PACE_KNOWN_AFTER = 3
MAX_GATE_BYTES = 65536


class LonePace:
    """The pace of one answer's events, and how many bytes its next read should wait for."""

    # One per open answer: slots and two small arrays, not a deque of tuples (~1.6 KB
    # less per answer, bench/ memory).
    __slots__ = ("_bytes_per_event", "_events", "_events_then", "_read_at", "_reads", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        # Read time and events read so far of the last reads, in a ring: a pace over
        # several reads, not the last one alone, which a read that came early or late skews.
        self._read_at = array("d", bytes(8 * _RING))
        self._events_then = array("q", bytes(8 * _RING))
        self._reads = 0
        self._events = 0
        self._bytes_per_event = 0.0  # in the last read

    def record(self, read_at: float, events: int, read_bytes: int) -> None:
        """A read at `read_at` brought `events` events in `read_bytes` bytes."""
        self._events += events
        slot = self._reads % _RING
        self._read_at[slot], self._events_then[slot] = read_at, self._events
        self._reads += 1
        self._bytes_per_event = read_bytes / events if events else 0.0

    @property
    def known(self) -> bool:
        """Enough reads to measure the pace by. Until then the answer is read on the
        shared ticks: reads a window apart bring a window's events each, so the pace
        is right from the start (gated reads before it is known skew it)."""
        return self._reads > _PACE_KNOWN_AFTER

    def gate_bytes(self) -> int:
        """What the read after the last one should wait for: the whole number of events
        nearest to a window's worth at the recent pace, less half an event since events
        differ in size, in bytes (at the last read's bytes per event); 1 (any byte) for
        one event; at most `MAX_GATE_BYTES`."""
        first, last = (self._reads - min(self._reads, _RING)) % _RING, (self._reads - 1) % _RING
        first_at, events_then = self._read_at[first], self._events_then[first]
        last_at, events_now = self._read_at[last], self._events_then[last]
        if last_at <= first_at or not self._bytes_per_event:
            return 1
        wanted = round((events_now - events_then) * self.window / (last_at - first_at))
        if wanted <= 1:
            return 1
        return min(MAX_GATE_BYTES, int((wanted - 0.5) * self._bytes_per_event))
