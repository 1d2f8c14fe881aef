"""Recency of the labels (training.train.recency_weights, epoch_sample): with a half-life, last week's windows
are drawn more often than last month's; without one, every window alike. The config key reaches the child."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_agent.config import parse_config
from edge_agent.trainjob import trainer_argv
from training.data import WindowSampler
from training.sensorlog import ChannelInfo, DeviceInfo, SensorLog
from training.train import device_heads, epoch_sample, recency_weights


def log(days: int = 28, step: float = 3600.0) -> SensorLog:
    n = int(days * 86400 / step)
    rng = np.random.default_rng(0)
    return SensorLog(
        name="t",
        step_seconds=step,
        t0=0.0,
        values=rng.normal(size=(n, 1)).astype(np.float32),
        labels=(rng.random((n, 1)) < 0.5).astype(np.float32),
        channels=[ChannelInfo("a.temperature", kind="temperature")],
        devices=[DeviceInfo("a.light")],
    )


def test_recency_halves_per_half_life() -> None:
    lg = log()
    ends = np.array([len(lg) - 1, len(lg) - 1 - 7 * 24, len(lg) - 1 - 14 * 24])
    w = recency_weights(lg, ends, 7.0)
    assert w is not None and np.allclose(w, [1.0, 0.5, 0.25])
    assert recency_weights(lg, ends, None) is None


def test_recent_windows_are_drawn_more_often() -> None:
    lg = log()
    s = WindowSampler(lg, 8)
    heads = device_heads(lg)
    rng = np.random.default_rng(1)
    rec = recency_weights(lg, s.ends, 7.0)
    drawn = epoch_sample(s, heads, 4000, rng, recency=rec)
    last_week = (drawn >= len(lg) - 7 * 24).mean()
    first_week = (drawn < 7 * 24 + 8).mean()
    assert last_week > 4 * first_week  # 2^3 = 8 in expectation between weeks 4 and 1
    flat = epoch_sample(s, heads, 4000, np.random.default_rng(1))
    assert abs((flat >= len(lg) - 7 * 24).mean() - 0.25) < 0.05


def test_half_life_reaches_the_training_child(tmp_path: Path) -> None:
    cfg = parse_config({"state_dir": str(tmp_path), "learning": {"retrain": {"half_life_days": 10}}})
    argv = trainer_argv(cfg, tmp_path / "out", python=["py"])
    assert argv[argv.index("--half-life-days") + 1] == "10"
    off = parse_config({"state_dir": str(tmp_path), "learning": {"retrain": {"half_life_days": None}}})
    assert "--half-life-days" not in trainer_argv(off, tmp_path / "out", python=["py"])
