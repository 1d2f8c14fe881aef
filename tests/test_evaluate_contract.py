"""Evaluation feeds every tier what the daemon feeds it: same channel set (the runtime's AttentionTracker and
select_channels), same normalization and pooling, same decision rule, same verifier, the home's time zone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from testbundle import HOME_CHANNELS, HOME_DEVICES, home_bundle

from edge_agent.features import normalize, pool_time
from edge_agent.focus import AttentionTracker
from edge_agent.inference import Bundle, BundleError, verify_bundle
from edge_agent.kinds import FAST_KINDS
from edge_agent.manifest import DeviceSpec, read_manifest
from edge_agent.policy import decide_value, target_value
from edge_agent.tiering import run_tier, select_channels
from training.data import WindowSampler, coarsen_time
from training.decisions import decide
from training.evaluate import Windows, focus_channels, focus_tracker, run_tiers, tier_channels
from training.model import pool_time as torch_pool_time
from training.sensorlog import ChannelInfo, DeviceInfo, SensorLog

N = 900


def _log() -> SensorLog:
    """A home log in HOME_CHANNELS order: the temperature sits at its mean (zero attention) in the last third,
    so the channel set depends on the order the tracker sees the windows in."""
    rng = np.random.default_rng(4)
    t = np.arange(N)
    values = np.stack(
        [
            (rng.random(N) < 0.3).astype(np.float32),  # living.motion (fast)
            np.where((t // 60) % 2 == 0, 5.0, 250.0) + rng.normal(0, 5, N),  # living.illuminance
            np.where(t < 2 * N // 3, 20.0 + 4 * np.sin(t / 40), 20.0),  # living.temperature
            np.zeros(N),  # hall.door (fast; never opens, so the model never attends to it)
            50.0 + 20 * np.sin(t / 25),  # bedroom.humidity
            np.sin(2 * np.pi * t / 8640),  # calendar.tod_sin
        ],
        axis=1,
    ).astype(np.float32)
    labels = np.stack([values[:, 0], np.ones(N), np.full(N, 20.0)], axis=1).astype(np.float32)
    return SensorLog(
        name="home",
        step_seconds=10.0,
        t0=1.7e9,
        values=values,
        labels=labels,
        channels=[ChannelInfo(c.name, c.unit, c.kind) for c in HOME_CHANNELS],
        devices=[DeviceInfo(d.name, d.kind, d.unit, d.levels) for d in HOME_DEVICES],
        timezone="Europe/Brussels",
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return home_bundle(tmp_path_factory.mktemp("contract") / "home")


def _daemon_channels(path: Path, log: SensorLog) -> tuple[AttentionTracker, Bundle]:
    """What the daemon does: its tracker (constructed as agent.py does), fed the full tier's attention of
    `Bundle.run` one decision at a time, in time order."""
    bundle = Bundle.load(path)
    names = [c.name for c in bundle.manifest.channels]
    fast = {i for i, c in enumerate(bundle.manifest.channels) if c.kind in FAST_KINDS}
    free = [i for i, c in enumerate(bundle.manifest.channels) if c.kind == "calendar"]
    tracker = AttentionTracker(len(names), always=sorted(fast), names=names, free=free, per_device=True)
    sampler = WindowSampler(log, bundle.manifest.window)
    full = bundle.tier("full")
    for e in sampler.ends:
        x, mask, _ = sampler.batch(np.array([e]))
        ids = select_channels(full, len(names), tracker, ())
        out = run_tier(bundle, full, x[0], mask[0], ids)
        tracker.update(out.attention, ids)
    return tracker, bundle


def test_focused_and_sparse_channels_are_the_daemons(home: Path) -> None:
    """Evaluation's channel set for focused/sparse == the runtime's select_channels after the same windows;
    the fast channels are in it even with no attention (hall.door), each device's own top channel too."""
    log = _log()
    man = read_manifest(home)
    win = Windows(man, log, np.ones(len(man.channels), np.float32))
    tracker, _ = _daemon_channels(home, log)
    want = {
        t: select_channels(man.tier(t), len(man.channels), tracker, ()).tolist()
        for t in ("focused", "sparse")
    }
    got = tier_channels(man, focus_tracker(man, home, win))
    assert {t: got[t].tolist() for t in ("focused", "sparse")} == want  # type: ignore[union-attr]
    assert got["full"] is None and got["coarse"] is None  # no budget: every channel
    assert focus_channels(man, home, win).tolist() == want["focused"]
    names = [man.channels[i].name for i in want["focused"]]
    # motion and door always; humidity (fan) and illuminance (light, in the dark) lead the rest; the
    # temperature, at its mean for the last third of the log, has decayed out of the running mean; the calendar
    # is fed on top of the budget (free)
    assert names == [
        "living.motion",
        "living.illuminance",
        "hall.door",
        "bedroom.humidity",
        "calendar.tod_sin",
    ]
    reversed_win = Windows(man, log, np.ones(len(man.channels), np.float32))
    reversed_win.ends = reversed_win.ends[::-1].copy()
    # each device's own top channel (light: illuminance, fan: humidity) fills the budget after the always ones,
    # whatever the order of the windows (a ranking by the max alone let the temperature in on the reversed order)
    assert focus_channels(man, home, reversed_win).tolist() == want["focused"]


def test_every_tier_output_is_the_daemons_run(home: Path) -> None:
    """run_tiers' output per tier and window == edge_agent.tiering.run_tier on the raw window with the same
    channel ids; sparse holds the output of every n-th window."""
    log = _log()
    man = read_manifest(home)
    win = Windows(man, log, np.ones(len(man.channels), np.float32))
    tracker, bundle = _daemon_channels(home, log)
    chans = tier_channels(man, focus_tracker(man, home, win))
    res = run_tiers(man, home, win, chans)["out"]
    sampler = WindowSampler(log, man.window)
    for i in (0, 1, 7, 400, len(sampler.ends) - 1):
        x, mask, _ = sampler.batch(sampler.ends[i : i + 1])
        for t in man.tiers:
            if t.every_n_ticks > 1:
                continue
            ids = select_channels(t, len(man.channels), tracker, ())
            want = run_tier(bundle, t, x[0], mask[0], ids).devices
            np.testing.assert_allclose(res[t.name][i], want, rtol=1e-5, atol=1e-6, err_msg=t.name)
    n = man.tier("sparse").every_n_ticks
    assert n > 1
    held = np.arange(len(res["sparse"])) // n * n
    np.testing.assert_array_equal(res["sparse"], res["focused"][held])


def test_normalize_and_pooling_are_the_runtimes() -> None:
    """Batched normalize/pool_time == the daemon's per-window Bundle.run inputs; torch pooling agrees."""
    rng = np.random.default_rng(0)
    x = rng.normal(20, 5, (3, 4, 16)).astype(np.float32)
    x[1, 2, 5] = np.nan
    mask = np.array([[1, 1, 0, 1], [1, 1, 1, 0], [0, 0, 0, 0]], np.float32)
    mean, std = np.array([20, 0, 1, 2], np.float32), np.array([5, 1, 2, 4], np.float32)
    z = normalize(x, mask, mean, std)
    for b in range(3):  # one window at a time, as Bundle.run calls it
        np.testing.assert_array_equal(z[b], normalize(x[b], mask[b], mean, std))
    assert z[1, 2, 5] == 0.0 and np.all(z[0, 2] == 0.0) and np.all(z[2] == 0.0)
    np.testing.assert_allclose(z[0, 0], (x[0, 0] - 20) / 5, rtol=1e-6)
    ev = np.array([True, False, False, False])  # channel 0 an event channel: max within a group
    p = pool_time(x, 3, ev)  # 16 // 3 = 5 steps: groups 3-5, 6-8, 9-11, 12-14, then the newest step 15 alone
    assert p.shape == (3, 4, 5) and coarsen_time is pool_time
    np.testing.assert_array_equal(p[:, :, -1], x[:, :, 15])
    np.testing.assert_allclose(p[0, 1, 0], x[0, 1, 3:6].mean(), rtol=1e-6)
    np.testing.assert_allclose(p[0, 0, 3], x[0, 0, 12:15].max(), rtol=1e-6)
    np.testing.assert_allclose(
        torch_pool_time(torch.from_numpy(x), 4, ev).numpy(), pool_time(x, 4, ev), rtol=1e-6
    )


def test_decisions_are_the_policy_rule() -> None:
    """training.decisions.decide == policy.decide_value == target_value(current=None) at the step's limit."""
    from edge_agent.config import DeviceConfig

    devs = [
        DeviceSpec(name="l", kind="binary", threshold=0.3),
        DeviceSpec(name="f", kind="level", levels=4),
        DeviceSpec(name="h", kind="setpoint", unit="°C", min_value=16, max_value=23),
    ]
    out = np.array([[0.3, 2.5, 26.0], [0.29, -0.6, 10.0], [0.9, 1.49, 21.37]], np.float32)
    dec = decide(out, devs)
    np.testing.assert_allclose(dec, [[1, 3, 23], [0, 0, 16], [1, 1, 21.37]], rtol=1e-6)
    for k, d in enumerate(devs):
        for i in range(len(out)):
            assert dec[i, k] == np.float32(decide_value(d, float(out[i, k])))
    cfg = DeviceConfig.model_construct(
        min_value=None, max_value=None, hysteresis=0.05, setpoint_step=0.5
    )  # config limits off: the daemon's own rule
    assert target_value(devs[2], cfg, 21.37, None) == decide_value(devs[2], 21.37, 0.5) == 21.5
    assert target_value(devs[1], cfg, 2.5, None) == decide_value(devs[1], 2.5) == 3.0
    assert target_value(devs[0], cfg, 0.3, None) == decide_value(devs[0], 0.3) == 1.0


def test_one_verifier_names_the_file_and_the_fix(home: Path, tmp_path: Path) -> None:
    """training's evaluate and the daemon refuse a changed tier file with the same one-line error."""
    from training.evaluate import open_bundle

    bad = tmp_path / "b"
    home_bundle(bad)
    man = json.loads((bad / "manifest.json").read_text())
    (bad / man["tiers"][2]["file"]).write_bytes(b"changed")
    for check in (verify_bundle, open_bundle, Bundle.load):
        with pytest.raises(
            BundleError, match=r"model_coarse\.onnx: sha256 mismatch for tier 'coarse'.*rebuild"
        ):
            check(bad)
    with pytest.raises(BundleError, match="no such bundle directory"):
        verify_bundle(tmp_path / "nope")
    assert verify_bundle(home).version == "test-1"
