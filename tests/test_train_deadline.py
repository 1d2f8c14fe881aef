"""The whole training run inside its budget: the training job's deadline (start + budget - reserve) reaches the
trainer's environment; the loop plans its steps to end before it (a fake clock, steps counted) and stops at it
(a deadline already passed: one step); the reserve comes from the champion's recorded post-train seconds."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edge_agent import trainjob
from edge_agent.bundlestore import BundleStore
from edge_agent.config import parse_config
from edge_agent.trainjob import TrainJob, reserve_seconds
from training import cli
from training.deadline import DEADLINE_ENV, LoopDeadline, deadline_from_env
from training.errors import DataError
from training.sensorlog import ChannelInfo, DeviceInfo, SensorLog
from training.train import TrainConfig, train


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_the_plan_fits_the_steps_left_and_grows_only_with_a_cap() -> None:
    clock = Clock(1000.0)
    plan = LoopDeadline(1100.0, clock)  # 100 s left
    # 1 s/step, no validation cost: ~95 steps fit (5 % safety) of 500 planned, after 10 run
    new = plan.fit(10, 500, 1.0, 50, 0.0, 0, 64)
    assert 10 + 90 <= new <= 10 + 96 and plan.replans == 1
    # a validation pass of 50 s per 50-step epoch doubles the cost of a step: about half as many
    slower = plan.fit(10, 500, 1.0, 50, 50.0, 0, 64)
    assert 10 + 45 <= slower <= 10 + 48
    assert plan.fit(10, 40, 1.0, 50, 0.0, 0, 64) == 40  # the plan fits: unchanged
    clock.t = 1200.0  # past it: no more steps
    assert plan.passed() and plan.fit(10, 500, 1.0, 50, 0.0, 0, 64) == 10
    assert LoopDeadline(None).fit(3, 500, 1.0, 50, 0.0, 0, 64) == 500


def test_a_plan_cut_on_a_slow_start_grows_back_to_the_first_plan_only() -> None:
    clock = Clock(1000.0)
    plan = LoopDeadline(2000.0, clock)  # 1000 s left
    # the first steps ran at 3 s/step: ~316 steps fit of 1716
    cut = plan.fit(10, 1716, 3.0, 143, 0.0, 0, 64)
    assert 300 <= cut <= 330
    clock.t = 1300.0  # an epoch later the pace is 0.4 s/step: the plan grows back, capped at the first plan
    assert plan.fit(150, cut, 0.4, 143, 0.0, 0, 64, cap=1716) == 1716
    # at a pace between, it grows to what fits (95 % of 700 s at 1 s/step), not to the cap
    grown = plan.fit(150, cut, 1.0, 143, 0.0, 0, 64, cap=1716)
    assert cut < grown and 150 + 660 <= grown <= 150 + 666
    assert plan.fit(150, cut, 1.0, 143, 0.0, 0, 64) == cut  # without a cap it never grows
    assert plan.replans == 3


def test_deadline_from_env_and_bad_value_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    assert deadline_from_env({}) is None
    assert deadline_from_env({DEADLINE_ENV: "1234.5"}) == 1234.5
    with pytest.raises(ValueError, match=DEADLINE_ENV):
        deadline_from_env({DEADLINE_ENV: "soon"})
    monkeypatch.setenv(DEADLINE_ENV, "soon")
    with pytest.raises(DataError):
        cli._deadline(None)
    monkeypatch.setenv(DEADLINE_ENV, "99.0")
    assert cli._deadline(None) == 99.0 and cli._deadline(5.0) == 5.0
    assert trainjob.DEADLINE_ENV == DEADLINE_ENV  # the runtime's copy of the name (it never imports training)


def _log(n: int = 2000) -> SensorLog:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    return SensorLog(
        name="t",
        step_seconds=60.0,
        t0=0.0,
        values=x,
        labels=(x[:, :1] > 0).astype(np.float32),
        channels=[ChannelInfo("a.temperature", kind="temperature"), ChannelInfo("a.lux", kind="illuminance")],
        devices=[DeviceInfo("a.light")],
    )


def test_the_loop_stops_at_a_passed_deadline() -> None:
    lg = _log()
    cfg = TrainConfig(window=16, d=8, coarse_d=8, batch=32, epochs=3, progress=False, ema=0, threads=1)
    res = train(lg, lg, TrainConfig(**{**cfg.__dict__, "deadline": time.time() - 1.0}))
    assert res.stop_reason == "deadline" and res.metrics["steps_run"] == 1
    assert res.metrics["deadline_slack_seconds"] < 0 and res.loop_end > 0
    free = train(lg, lg, cfg)  # the same run without a deadline runs its planned steps
    assert free.stop_reason == "epochs" and free.metrics["steps_run"] == free.metrics["steps_planned"] > 1


def test_the_reserve_scales_with_the_recorded_post_train_time() -> None:
    assert reserve_seconds(600, None) == 60.0  # a tenth of the budget when nothing is recorded
    assert reserve_seconds(600, 40.0) == 80.0  # twice the champion's post-train seconds
    assert (
        reserve_seconds(600, 5.0) == 30.0 and reserve_seconds(600, 900.0) == 300.0
    )  # floor, half the budget


def test_the_deadline_reaches_the_trainer(tmp_path: Path) -> None:
    cfg = parse_config(
        {
            "agent_id": "dl",
            "state_dir": str(tmp_path / "state"),
            "learning": {"train": {"budget_seconds": 300}},
        }
    )
    seen = tmp_path / "deadline.txt"
    body = f"import os; open({str(seen)!r}, 'w').write(os.environ['{DEADLINE_ENV}']); raise SystemExit(1)"
    before = time.time()
    res = TrainJob(cfg, argv=[sys.executable, "-c", body], requires="os", lowest_priority=False).run()
    after = time.time()
    assert (
        res.outcome == "crashed" and res.reserve_seconds == 30.0
    )  # no bundle in service: 300 / 10 -> floor 30
    got = float(seen.read_text())
    assert before + 300 - 30 - 1e-3 <= got <= after + 300 - 30 + 1e-3
    assert BundleStore(cfg.bundle_store).current_name() is None
