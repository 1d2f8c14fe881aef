"""The bound onnxruntime run gives exactly what `session.run` gives, for every tier and channel count, and
falls back to it (never losing a result) when another thread holds the binding or a shape is refused."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from testbundle import home_bundle

from edge_agent.inference import OUTPUTS, Bundle
from edge_agent.ortbind import BoundRunner


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return Bundle.load(home_bundle(tmp_path_factory.mktemp("b") / "bundle"))


def plain(b: Bundle, tier: str, x: np.ndarray, m: np.ndarray, ids: np.ndarray) -> list[np.ndarray]:
    feeds = {"x": x[None], "mask": m[None], "channel_ids": ids[None]}
    return b._sessions[tier].run(list(OUTPUTS), feeds)  # type: ignore[no-any-return]


def test_bound_runs_equal_plain_runs(bundle: Bundle) -> None:
    rng = np.random.default_rng(0)
    runner = BoundRunner(bundle._sessions["full"], len(bundle.manifest.devices), OUTPUTS)
    kept = []
    for _ in range(40):
        c = int(rng.integers(1, 7))
        t = int(rng.choice([1, 16]))  # 12 shapes at most: all bound (MAX_BINDINGS)
        ids = np.sort(rng.choice(6, size=c, replace=False)).astype(np.int64)
        x = rng.normal(size=(c, t)).astype(np.float32)
        m = (rng.random(c) > 0.3).astype(np.float32)
        got = runner.run(x, m, ids)
        for a, e in zip(got, plain(bundle, "full", x, m, ids), strict=True):
            np.testing.assert_array_equal(a, e)
        kept.append((got, plain(bundle, "full", x, m, ids)))
    for got, e in kept:  # results are copies: a later run does not overwrite an earlier decision's output
        for a, b in zip(got, e, strict=True):
            np.testing.assert_array_equal(a, b)
    assert runner.bound_runs == 40 and runner.plain_runs == 0


def test_a_second_thread_runs_plain_and_gets_the_same(bundle: Bundle) -> None:
    runner = BoundRunner(bundle._sessions["full"], len(bundle.manifest.devices), OUTPUTS)
    x, m, ids = np.ones((6, 4), np.float32), np.ones(6, np.float32), np.arange(6, dtype=np.int64)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with runner._lock:  # another caller in the middle of a bound run
            held.set()
            release.wait(10)

    th = threading.Thread(target=hold)
    th.start()
    assert held.wait(10)
    try:
        got = runner.run(x, m, ids)
    finally:
        release.set()
        th.join(10)
    assert runner.plain_runs == 1 and runner.bound_runs == 0
    for a, e in zip(got, plain(bundle, "full", x, m, ids), strict=True):
        np.testing.assert_array_equal(a, e)


def test_a_refused_binding_falls_back_to_the_plain_run(bundle: Bundle) -> None:
    """Outputs bound with the wrong device count: onnxruntime refuses the run, the plain run answers, and
    that shape is not bound again."""
    runner = BoundRunner(bundle._sessions["full"], len(bundle.manifest.devices) + 2, OUTPUTS)
    x, m, ids = np.ones((6, 4), np.float32), np.ones(6, np.float32), np.arange(6, dtype=np.int64)
    for _ in range(2):
        got = runner.run(x, m, ids)
        for a, e in zip(got, plain(bundle, "full", x, m, ids), strict=True):
            np.testing.assert_array_equal(a, e)
    assert runner.bound_runs == 0 and runner.plain_runs == 2


def test_every_tier_through_the_bundle(bundle: Bundle) -> None:
    rng = np.random.default_rng(1)
    for tier in bundle.tiers:
        x = rng.normal(size=(6, 16)).astype(np.float32) * 10
        m = np.ones(6, np.float32)
        out = bundle.run(tier, x, m, np.arange(6))
        again = bundle.run(tier, x, m, np.arange(6))
        np.testing.assert_array_equal(out.devices, again.devices)
        np.testing.assert_array_equal(out.attention, again.attention)
    assert sum(r.bound_runs for r in bundle._runners.values()) >= len(bundle.tiers)
