"""When to read a model's answer again: the pacing behind coalescing.

An answer is read at most about once per coalescing window, and everything that arrived
in between comes back as one batch, one event. Reads happen on ticks of one grid of the
window shared by the whole process, so one timer wake-up of the event loop serves every
answer streaming at that moment, instead of one wake-up each.

(An answer streaming alone used to be paced by the socket's receive low-water mark
instead of the ticks: ~11% less CPU at N=1 only, 1.2-1.36x more at N=4 to 32, and it
drove the HTTP client's socket by hand. It went with issue 20.)
"""

import math


def next_read_at(read_at: float, window: float) -> float:
    """When to read the model again after a read at `read_at` (event-loop time): the next
    tick of one grid of `window` for the whole process that is at least half a window
    away. An answer read on a tick is read again one window later, so it gets one event
    per window while the model keeps up, and every answer in the process is read on the
    same ticks: one wake-up of the event loop serves them all, instead of one each."""
    return math.ceil((read_at + window / 2) / window) * window
