"""Issue 16's proof on the simulated home: the agent keeps learning a person whose preference changed.

`run_retrain_proof` lives one home's life (`simhome.lifecycle`, the runtime's Controller, a real SQLite file):
the person runs the home by hand for `observe_days` while the agent observes; the first model comes from
that log through the product's retrain path (`edge_agent.retrain.Retrainer`: the training child at the lowest
priority, no champion -> promoted). Then, unknown to the model, the person's hidden preference changes
(`changed`: lights wanted on up to a higher daylight level, the evening heating 1 °C warmer; `unchanged`: the
control run) and `days` days are lived in `auto`; after each day (the nightly retrain's moment) the
Retrainer trains a challenger on the log so far, scores the champion on the same held-out days, and the gate
promotes or keeps. Per day: the person's overrides (changes of a state the agent set) and actions, agreement
with the (new) hidden preference per device, the version serving, the retrain's outcome and reason.

simhome never imports training: the trainer is the Retrainer's child process, as in the daemon.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edge_agent.bundlestore import BundleStore
from edge_agent.config import AgentConfig
from edge_agent.retrain import Retrainer
from edge_agent.trainjob import trainer_argv
from simhome import lifecycle as lc
from simhome.config import simhome_config
from simhome.layout import DEVICE_NAMES
from simhome.preference import Preference

logger = logging.getLogger(__name__)

OPEN_READINESS = {
    "suggest_min_labels": 0,
    "auto_min_labels": 0,
    "suggest_min_agreement": 0,
    "auto_min_agreement": 0,
}


def changed_preference(p: Preference) -> Preference:
    """Lights wanted on in brighter daylight (x2.5 the darkness threshold), the evening heating 1 °C warmer."""
    return replace(
        p,
        dark_lux={room: lux * 2.5 for room, lux in p.dark_lux.items()},
        setpoint_evening=p.setpoint_evening + 1.0,
    )


@dataclass
class RetrainProofSettings:
    seed: int = 11
    start: str = "2024-01-08T03:30"  # the nightly retrain's moment: the days run 03:30 -> 03:30
    observe_days: float = 14.0
    days: int = 10
    change: bool = True  # False: the control run (the same person throughout)
    holdout_days: float = 2.0
    history_days: float = 30.0
    half_life_days: float | None = 7.0
    epochs: int = 12
    train_args: list[str] = field(default_factory=list)  # extra trainer arguments (tests: a tiny model)
    min_new_labels: int = 5
    margin: float = 0.005
    tolerance: float = 0.01
    readiness: dict[str, Any] = field(default_factory=lambda: dict(OPEN_READINESS))
    # the daemon trains at nice 19 / SCHED_IDLE; offline (no decider to protect) a busy machine would starve it
    lowest_priority: bool = False


@dataclass
class DayReport:
    day: int
    serving: str  # the version in service during the day
    overrides: int
    actions: int
    agreement: float
    overrides_per_device: dict[str, int]  # where the person corrected the agent (e.g. the heating's schedule)
    per_device: dict[str, float]
    outcome: str  # the retrain after the day: promoted | kept | skipped | failed
    reason: str
    challenger: str | None
    train_seconds: float | None
    peak_rss_mb: float | None

    def summary(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "serving": self.serving,
            "overrides": self.overrides,
            "actions": self.actions,
            "agreement": round(self.agreement, 4),
            "overrides_per_device": self.overrides_per_device,
            "per_device": {d: round(a, 4) for d, a in self.per_device.items()},
            "retrain": self.outcome,
            "reason": self.reason,
            "challenger": self.challenger,
            "train_seconds": self.train_seconds,
            "peak_rss_mb": self.peak_rss_mb,
        }


@dataclass
class RetrainProofResult:
    first_model: str
    first_reason: str
    days: list[DayReport]
    promotions: list[dict[str, Any]]  # the gate's verdict of every promoted challenger


def retrain_config(world: lc.World, work: Path, s: RetrainProofSettings) -> AgentConfig:
    learning = {
        "train": {
            "holdout_days": s.holdout_days,
            "history_days": s.history_days,
            "epochs": s.epochs,
            "budget_seconds": 1800,
            "keep_versions": 50,
        },
        "retrain": {
            "min_new_labels": s.min_new_labels,
            "margin": s.margin,
            "tolerance": s.tolerance,
            "half_life_days": s.half_life_days,
        },
        "readiness": {"shadow_min_labels": 1},
    }
    return simhome_config(
        None,
        state_dir=work / "state",
        mode="auto",
        timezone=world.home.timezone,
        topo=world.topo,
        recorder={"database_url": f"sqlite:///{work / 'home.db'}"},
        learning=learning,
    )


def _retrainer(cfg: AgentConfig, world: lc.World, s: RetrainProofSettings) -> Retrainer:
    """The product's retrain with the product's trainer command, plus the settings' extra trainer arguments."""
    argv = trainer_argv(cfg, Path("{out}"), python=[sys.executable]) + list(s.train_args)
    return Retrainer(cfg, argv=argv, clock=lambda: world.home.now, lowest_priority=s.lowest_priority)


def _child_path() -> None:
    """This checkout first on the training child's path (it imports `training` from here)."""
    root = str(Path(__file__).resolve().parents[1])
    have = os.environ.get("PYTHONPATH", "")
    if root not in have.split(os.pathsep):
        os.environ["PYTHONPATH"] = root + (os.pathsep + have if have else "")


def run_retrain_proof(
    work: Path, s: RetrainProofSettings, progress: Callable[[str], None] | None = None
) -> RetrainProofResult:
    say = progress or (lambda _m: None)
    _child_path()
    work.mkdir(parents=True, exist_ok=True)
    world = lc.make_world(s.seed, s.start)
    cfg = retrain_config(world, work, s)
    db = work / "home.db"
    say(f"observe {s.observe_days:g} days")
    lc.observe(world, s.observe_days, db, work / "state-observe")
    first = _retrainer(cfg, world, s).run("first")
    if first.outcome != "promoted":
        raise RuntimeError(f"the first model was not made: {first.outcome}: {first.reason}")
    say(f"first model {first.challenger}: {first.reason}")
    if s.change:
        new = changed_preference(world.home.pref)
        world.home.pref = new
        world.person.pref = new
    store = BundleStore(cfg.bundle_store)
    result = RetrainProofResult(str(first.challenger), first.reason, [], [])
    for day in range(1, s.days + 1):
        current = store.current_dir()
        assert current is not None
        rep = lc.auto(
            world, 1.0, current, db, work / f"state-day{day}", f"day{day}", s.readiness, manual_operation=True
        )
        r = _retrainer(cfg, world, s).run("schedule")
        verdict = r.detail.get("verdict")
        if r.outcome == "promoted" and isinstance(verdict, dict):
            result.promotions.append({"day": day, "challenger": r.challenger, **verdict})
        d = DayReport(
            day=day,
            serving=current.name,
            overrides=sum(rep.overrides.values()),
            actions=sum(rep.actions.values()),
            agreement=rep.overall(),
            overrides_per_device={k: rep.overrides.get(k, 0) for k in DEVICE_NAMES},
            per_device={k: rep.agreement[k] for k in DEVICE_NAMES},
            outcome=r.outcome,
            reason=r.reason,
            challenger=r.challenger,
            train_seconds=r.detail.get("train_seconds"),
            peak_rss_mb=r.detail.get("peak_rss_mb"),
        )
        result.days.append(d)
        say(
            f"day {day}: {d.overrides} overrides {d.overrides_per_device}, {d.actions} actions, agreement {d.agreement:.4f}; "
            f"retrain {r.outcome}: {r.reason}"
        )
    return result
