"""The shared ticks on which answers are read again (chat/streaming/pacing.py)."""

import pytest

from chat.streaming.pacing import next_read_at

WINDOW = 0.066


def test_shared_ticks_are_at_least_half_a_window_away():
    assert next_read_at(0.0, WINDOW) == pytest.approx(WINDOW)
    assert next_read_at(0.03, WINDOW) == pytest.approx(WINDOW)  # 36 ms away
    assert next_read_at(0.04, WINDOW) == pytest.approx(2 * WINDOW)  # 26 ms: the one after


def test_every_read_time_lands_on_one_grid():
    for read_at in (0.001, 1.234, 57.5, 1234.5678):
        tick = next_read_at(read_at, WINDOW)
        assert tick / WINDOW == pytest.approx(round(tick / WINDOW))
        assert WINDOW / 2 <= tick - read_at <= 1.5 * WINDOW + 1e-9
