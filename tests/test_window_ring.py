"""The filled ring (`Window.snapshot`) equals the raw-ring computation (`snapshot_reference`) on random streams:
gaps shorter and longer than the window, event maxima within a step, late readings (the clock went back),
snapshots ahead of and behind the newest reading, masks, and a history adopted by another window."""

from __future__ import annotations

import random

import numpy as np
import pytest

from edge_agent.window import Window

STEP = 1.0
KINDS = ["motion", "temperature", "contact", "illuminance", "calendar"]
NAMES = ["m", "t", "c", "lux", "calendar.tod_sin"]


def make(length: int) -> Window:
    return Window(NAMES, KINDS, STEP, length, [30.0, 50.0, 30.0, 80.0, float("inf")])


def same(w: Window, now: float, seen: float | None = None) -> None:
    x, m = w.snapshot(now, seen)
    xr, mr = w.snapshot_reference(now, seen)
    assert x.dtype == np.float32 and x.shape == xr.shape
    np.testing.assert_array_equal(x, xr)  # NaN where never reported, on both
    np.testing.assert_array_equal(m, mr)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("length", [1, 4, 16])
def test_filled_ring_equals_the_raw_ring(seed: int, length: int) -> None:
    rng = random.Random(seed)
    w = make(length)
    t = 1000.0
    for _ in range(400):
        r = rng.random()
        if r < 0.05:
            t -= rng.uniform(0, 3 * length)  # the clock went back: late readings
        elif r < 0.15:
            t += rng.uniform(length, 3 * length)  # a gap longer than the window
        else:
            t += rng.choice([0.0, 0.2, 0.5, 1.0, 2.0])
        ch = rng.randrange(4)
        w.update(ch, float(rng.choice([0, 1, 2, 17.5, rng.uniform(-5, 5)])), t, fresh=rng.random() > 0.1)
        if rng.random() < 0.03:
            w.mask(ch)
        ahead = rng.choice([0.0, 0.0, 0.3, 1.0, length / 2, 2.0 * length, -1.0])  # -1: before the newest
        same(w, t + ahead, t + ahead)


def test_a_window_that_adopts_a_history_reads_the_same() -> None:
    rng = random.Random(7)
    old = make(8)
    t = 500.0
    for _ in range(60):
        t += rng.choice([0.0, 0.5, 1.0, 3.0, 11.0])
        old.update(rng.randrange(4), rng.uniform(0, 3), t)
    for length in (8, 5):  # same shape (rows copied) and another (last readings replayed)
        new = make(length)
        new.adopt(old, [(i, i) for i in range(4)])
        same(new, t)
        same(new, t + 4.0)
        new.update(1, 9.0, t + 2.0)
        same(new, t + 2.5)


def test_snapshot_never_reported_is_nan_and_masked() -> None:
    w = make(4)
    w.update(1, 20.0, 10.0)
    x, m = w.snapshot(12.0)
    assert np.isnan(x[0]).all() and m[0] == 0.0
    np.testing.assert_array_equal(x[1], [20, 20, 20, 20])
