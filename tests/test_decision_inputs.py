"""The event path's cached and in-place structures give exactly what the plain computation gives (property style,
fixed seeds): the calendar block against the per-window computation, `normalize(out=)` against a new array and
the formula, the bound `Bundle.run` (normalized straight into the bound input) against `session.run`, the
shared all-channel ids against a gather, and the cached command payloads against `json.dumps`."""

from __future__ import annotations

import json
import random
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from testbundle import home_bundle

from edge_agent.config import DeviceConfig
from edge_agent.devices import MAX_CACHED_PAYLOADS, DeviceTracker
from edge_agent.features import normalize
from edge_agent.inference import OUTPUTS, Bundle
from edge_agent.manifest import DeviceSpec
from edge_agent.tiering import all_channels, run_tier
from edge_agent.window import CALENDAR_BLOCK, Window

CAL = ["calendar.tod_sin", "calendar.tod_cos", "calendar.dow_sin", "calendar.dow_cos"]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Brussels"])
@pytest.mark.parametrize("length", [1, 16, 300])
def test_calendar_block_equals_the_window_computed_alone(zone: str, length: int) -> None:
    """Snapshots walking forward (small and large jumps, across several blocks and the 2026-03-29 DST change
    in Brussels) read the same calendar rows as `_calendar_at` on the window's own steps."""
    rng = random.Random(length)
    step = 60.0
    w = Window(["t", *CAL], ["temperature"] + ["calendar"] * 4, step, length, [1e9] * 5, zone=ZoneInfo(zone))
    w.update(0, 20.0, 1_774_700_000.0)
    now = 1_774_700_000.0  # 2026-03-28 12:13 UTC: the DST change is ~13 h later
    for _ in range(150):
        now += step * rng.choice([0.3, 1, 2, 7, CALENDAR_BLOCK // 3, CALENDAR_BLOCK])
        x, m = w.snapshot(now)
        s_now = int(now // step)
        expected = w._calendar_at(np.arange(s_now - length + 1, s_now + 1)).astype(np.float32)
        np.testing.assert_array_equal(x[1:], expected)
        assert m[1:].tolist() == [1.0] * 4


@pytest.mark.parametrize("seed", range(6))
def test_normalize_into_a_buffer_equals_a_new_array(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for shape in [(5, 16), (3, 4, 7)]:  # one window (the daemon), a batch (training)
        c = shape[-2]
        x = rng.normal(20, 10, size=shape).astype(np.float32)
        x[rng.random(shape) < 0.1] = np.nan  # never reported
        x[rng.random(shape) < 0.05] = np.inf
        mask = (rng.random(shape[:-1]) > 0.3).astype(np.float32)
        mean, std = rng.normal(size=c), rng.uniform(0.5, 5, size=c)
        new = normalize(x, mask, mean, std)
        buf = np.full(shape, 123.0, np.float32)  # stale contents: every cell is written
        assert normalize(x, mask, mean, std, out=buf) is buf
        np.testing.assert_array_equal(buf, new)
        z = (x - mean.astype(np.float32)[:, None]) / std.astype(np.float32)[:, None]
        ref = np.where((mask[..., None] > 0) & np.isfinite(z), z, 0.0).astype(np.float32)
        assert new.dtype == np.float32
        np.testing.assert_array_equal(new, ref)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return Bundle.load(home_bundle(tmp_path_factory.mktemp("b") / "bundle"))


def test_bound_bundle_run_equals_session_run(bundle: Bundle) -> None:
    rng = np.random.default_rng(3)
    sess = bundle._sessions["full"]
    for _ in range(30):
        c = int(rng.integers(1, 7))
        ids = np.sort(rng.choice(6, size=c, replace=False)).astype(np.int64)
        x = rng.normal(10, 20, size=(c, 16)).astype(np.float32)
        x[rng.random(c) < 0.2] = np.nan
        m = (rng.random(c) > 0.3).astype(np.float32)
        got = bundle.run("full", x, m, ids)
        z = normalize(x, m, bundle.mean[ids], bundle.std[ids])
        dev, conf, att = sess.run(list(OUTPUTS), {"x": z[None], "mask": m[None], "channel_ids": ids[None]})
        np.testing.assert_array_equal(got.devices, dev[0])
        np.testing.assert_array_equal(got.confidence, conf[0])
        np.testing.assert_array_equal(got.attention, att[0])


def test_all_channels_feeds_the_same_as_a_gather(bundle: Bundle) -> None:
    rng = np.random.default_rng(4)
    ids = all_channels(6)
    assert ids is all_channels(6) and not ids.flags.writeable and ids.tolist() == list(range(6))
    for tier in ("full", "coarse"):
        spec = bundle.tier(tier)
        x = rng.normal(size=(6, 16)).astype(np.float32)
        m = (rng.random(6) > 0.2).astype(np.float32)
        a = run_tier(bundle, spec, x, m, ids)  # no gather
        b = run_tier(bundle, spec, x, m, np.arange(6, dtype=np.int64))  # a fresh array: gathered
        np.testing.assert_array_equal(a.devices, b.devices)
        np.testing.assert_array_equal(a.attention, b.attention)


def test_cached_command_payloads_equal_json_dumps() -> None:
    heat = DeviceTracker(
        DeviceSpec(name="h", kind="setpoint", unit="°C"),
        DeviceConfig(name="h", state_topic="z/h", field="occupied_heating_setpoint", template={"a": 1}),
    )
    rng = random.Random(5)
    for _ in range(5 * MAX_CACHED_PAYLOADS):  # past the bound: the cache is cleared and refilled
        v = rng.choice([15.0, 20.5, 21.0, rng.uniform(0, 40)])
        expected = json.dumps(heat.command_payload(v), separators=(",", ":")).encode()
        assert heat.command_bytes(v) == expected
        assert len(heat._payloads) <= MAX_CACHED_PAYLOADS
