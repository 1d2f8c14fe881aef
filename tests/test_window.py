"""Window: step bucketing (max for events, last otherwise), fill rules, stale mask, calendar, pooling."""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from edge_agent.features import pool_time
from edge_agent.window import Window

STEP = 10.0
T0 = 1_700_000_000.0  # a multiple of 10


def make(length: int = 4, zone: ZoneInfo | None = None) -> Window:
    return Window(
        ["m", "t", "calendar.tod_sin"],
        ["motion", "temperature", "calendar"],
        STEP,
        length,
        [100.0, 50.0, float("inf")],
        zone=zone,
    )


def test_event_keeps_max_other_keeps_last() -> None:
    """Within one step motion keeps its max (a blip is not lost); temperature keeps the last value."""
    w = make()
    w.update(0, 1.0, T0 + 1)
    w.update(0, 0.0, T0 + 2)
    w.update(1, 20.0, T0 + 1)
    w.update(1, 21.0, T0 + 2)
    x, mask = w.snapshot(T0 + 5)
    assert x.shape == (3, 4) and mask.shape == (3,)
    assert x[0, -1] == 1.0 and x[1, -1] == 21.0


def test_backfill_and_forward_fill() -> None:
    """Steps before the first report are back-filled, gaps forward-filled."""
    w = make(length=5)
    w.update(1, 20.0, T0 + 2 * STEP)
    w.update(1, 22.0, T0 + 4 * STEP)
    x, _ = w.snapshot(T0 + 4 * STEP + 1)  # window = steps 0..4
    np.testing.assert_array_equal(x[1], [20, 20, 20, 20, 22])


def test_value_from_before_the_window_carries() -> None:
    """A channel that reported before the window starts (even evicted from the ring) fills with that value."""
    w = make(length=4)
    w.update(1, 18.0, T0 + 1 * STEP)
    w.update(1, 19.0, T0 + 5 * STEP)  # same slot as step 1: evicts it
    x, _ = w.snapshot(T0 + 7 * STEP)  # window = steps 4..7
    np.testing.assert_array_equal(x[1], [18, 19, 19, 19])


def test_closed_step_returned_once_per_step() -> None:
    """Moving to a new step hands the previous step's value out for the recorder."""
    w = make()
    assert w.update(1, 20.0, T0 + 1) is None
    assert w.update(1, 21.0, T0 + 3) is None
    closed = w.update(1, 22.0, T0 + STEP + 1)
    assert closed is not None and (closed.channel, closed.ts, closed.value) == (1, T0, 21.0)
    assert [(c.channel, c.value) for c in w.open_steps()] == [(1, 22.0)]


def test_stale_mask_and_never_reported() -> None:
    """A channel is masked after its stale limit; a never-seen channel is masked and NaN; calendar is live."""
    w = make()
    w.update(0, 1.0, T0)
    w.update(1, 20.0, T0)
    _, mask = w.snapshot(T0 + 40)
    np.testing.assert_array_equal(mask, [1, 1, 1])
    _, mask = w.snapshot(T0 + 60)
    np.testing.assert_array_equal(mask, [1, 0, 1])
    w2 = make()
    x, mask = w2.snapshot(T0)
    assert np.isnan(x[0]).all() and mask[0] == 0 and mask[2] == 1


@pytest.mark.parametrize("zone", ["UTC", "Europe/Brussels", "America/New_York"])
def test_calendar_is_computed_in_the_homes_zone(zone: str) -> None:
    """Calendar values per step are sin(2 pi hour/24) of each step's wall time in the configured zone,
    whatever the process's own time zone."""
    w = make(zone=ZoneInfo(zone))
    now = T0 + 3 * STEP + 4
    x, _ = w.snapshot(now)
    for i in range(4):
        local = dt.datetime.fromtimestamp(T0 + i * STEP, ZoneInfo(zone))
        hour = local.hour + local.minute / 60 + local.second / 3600
        assert abs(x[2, i] - math.sin(2 * math.pi * hour / 24)) < 1e-5


def test_pool_time_keeps_the_newest_step_whole_and_pools_per_kind() -> None:
    """Coarse tiers: the newest step alone (never diluted), before it groups of f steps: events keep their
    max, levels their mean; the oldest leftovers are dropped."""
    x = np.arange(10, dtype=np.float32)[None, :]
    np.testing.assert_array_equal(pool_time(x, 4, np.array([False])), [[6.5, 9.0]])  # mean(5..8), newest 9
    np.testing.assert_array_equal(pool_time(x, 4, np.array([True])), [[8.0, 9.0]])  # max(5..8), newest 9
    assert pool_time(x, 1, np.array([False])) is x
    # motion that just started reaches the coarse tier at full size, motion that just stopped reads 0
    motion = np.zeros((2, 16), np.float32)
    motion[0, -1] = 1.0  # starts in the newest step
    motion[1, :-1] = 1.0  # stopped in the newest step
    p = pool_time(motion, 4, np.array([True, True]))
    assert p.shape == (2, 4) and p[0].tolist() == [0, 0, 0, 1] and p[1].tolist() == [1, 1, 1, 0]
    # a blip inside an older group is kept by an event channel, averaged by a level channel
    blip = np.zeros((2, 16), np.float32)
    blip[:, 8] = 1.0  # groups: steps 3-6, 7-10, 11-14, then 15
    p = pool_time(blip, 4, np.array([True, False]))
    assert p[0].tolist() == [0, 1, 0, 0] and p[1].tolist() == [0, 0.25, 0, 0]
    with pytest.raises(ValueError, match="event flags"):
        pool_time(x, 4, np.array([True, False]))
