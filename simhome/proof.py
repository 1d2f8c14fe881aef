"""Issue 15's proof on the simulated home: install, observe, a first model from the home's own log, auto.

`run_proof` lives one home's life (`simhome.lifecycle`): the agent installed with no bundle observes while
the person runs the home by hand for `observe_days` (everything into a real SQLite file); a first model is
trained from that database in a subprocess — with the person's-preference labels by `edge-agent train
--config FILE` (the product's path: the training child at the lowest priority, installed into the store),
and for comparison with the naive state-in-effect labels by `python -m training train --labels naive`; then, from the same moment, the same `auto_days` are lived four times: (a) nobody acting, (b) the
person alone, (c) the agent in auto with each model. Every phase's report is returned (and the training
runs' wall time). simhome never imports training: the trainer is a child process, as in the daemon.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from simhome import lifecycle as lc

logger = logging.getLogger(__name__)

LABELS = ("preference", "naive")


@dataclass
class ProofSettings:
    seed: int = 11
    start: str = "2024-01-08T00:00"  # a Monday in winter (the heating and the lights both matter)
    observe_days: float = 14.0
    auto_days: float = 7.0
    holdout_days: float = 2.0  # the most recent observed days the trainer keeps out for evaluation
    train_args: list[str] = field(default_factory=list)  # extra `python -m training train` arguments
    labels: tuple[str, ...] = LABELS
    via_agent: bool = True  # the preference model through `edge-agent train --config` (naive: the trainer)
    agent_epochs: int = 12  # learning.train.epochs for `edge-agent train`
    readiness: dict | None = None  # learning.readiness overrides in auto (None: the defaults cap each device)
    # (c) with the person still operating by hand (agreement then includes their own work; the saving is their
    # actions per day), and/or with the agent alone in charge (they only change back what it set: the model)
    agent_alone: tuple[bool, ...] = (False, True)


@dataclass
class ProofResult:
    observe: lc.PhaseReport
    phases: dict[str, lc.PhaseReport]  # nobody, person_alone, auto_<labels>
    train_seconds: dict[str, float]
    bundles: dict[str, Path]
    dbs: dict[str, Path]


def train_command(db: Path, out: Path, labels: str, holdout_days: float, extra: Sequence[str]) -> list[str]:
    """The trainer's command line: the home's own log in, a bundle directory out."""
    return [
        sys.executable,
        "-m",
        "training",
        "train",
        "--dataset",
        f"db:sqlite:///{db}",
        "--labels",
        labels,
        "--holdout-days",
        f"{holdout_days:g}",
        "--no-progress",
        "--out",
        str(out),
        *extra,
    ]


def _child_env() -> dict[str, str]:
    """This checkout first on the child's path (the trainer and the agent's CLI run from it)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def train(db: Path, out: Path, labels: str, holdout_days: float, extra: Sequence[str]) -> float:
    """Train in a child process; returns its wall time. RuntimeError with the trainer's last line on failure."""
    cmd = train_command(db, out, labels, holdout_days, extra)
    env = _child_env()
    t0 = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    took = time.monotonic() - t0
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"training ({labels}) exited {res.returncode}: {last}")
    logger.info("trained %s in %.1fs: %s", labels, took, res.stdout.strip())
    return took


def train_with_agent(
    world: lc.World, db: Path, state_dir: Path, extra_yaml: dict | None = None
) -> tuple[Path, float]:
    """The first model as a person would make it: `edge-agent train --config FILE` on the home's log (the
    training child at the lowest priority, installed into the store). Returns (bundle in service, wall s)."""
    import json

    from simhome.config import simhome_config_dict

    data = simhome_config_dict(
        None,
        state_dir=state_dir,
        mode="observe",
        timezone=world.home.timezone,
        topo=world.topo,
        recorder={"database_url": f"sqlite:///{db}"},
        **(extra_yaml or {}),
    )
    cfg = state_dir / "agent.yaml"
    state_dir.mkdir(parents=True, exist_ok=True)
    cfg.write_text(json.dumps(data), encoding="utf-8")  # JSON is YAML
    env = _child_env()
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "edge_agent.cli", "train", "--config", str(cfg), "--quiet"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    took = time.monotonic() - t0
    if res.returncode != 0:
        last = ((res.stderr + res.stdout).strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"edge-agent train exited {res.returncode}: {last}")
    logger.info("edge-agent train in %.1fs: %s", took, res.stdout.strip())
    return (state_dir / "bundles" / "current").resolve(), took


def run_proof(work: Path, s: ProofSettings, progress: Callable[[str], None] | None = None) -> ProofResult:
    """Live the home's first weeks under `work` (databases, bundles, state directories)."""
    say = progress or (lambda _msg: None)
    work.mkdir(parents=True, exist_ok=True)
    world = lc.make_world(s.seed, s.start)
    db = work / "observe.db"
    say(f"observe {s.observe_days:g} days")
    obs = lc.observe(world, s.observe_days, db, work / "state-observe")
    after = world.snapshot()  # the moment the first model is trained: every (a)/(b)/(c) starts here
    result = ProofResult(obs, {}, {}, {}, {"observe": db})
    for labels in s.labels:
        out = work / f"bundle-{labels}"
        say(f"train ({labels} labels)")
        if labels == "preference" and s.via_agent:  # the product's own path: edge-agent train
            learning = {"learning": {"train": {"holdout_days": s.holdout_days, "epochs": s.agent_epochs}}}
            out, result.train_seconds[labels] = train_with_agent(world, db, work / "state-train", learning)
        else:
            result.train_seconds[labels] = train(db, out, labels, s.holdout_days, s.train_args)
        result.bundles[labels] = out
    say(f"(a) nobody acting, {s.auto_days:g} days")
    result.phases["nobody"] = lc.nobody(after.snapshot(), s.auto_days)
    say(f"(b) the person alone, {s.auto_days:g} days")
    result.phases["person_alone"] = lc.person_alone(after.snapshot(), s.auto_days)
    for labels, bundle in result.bundles.items():
        for alone in s.agent_alone:
            name = f"auto_{labels}" + ("_alone" if alone else "")
            who = "the agent alone in charge" if alone else "the person still operating"
            say(f"(c) auto with the {labels} model, {who}, {s.auto_days:g} days")
            dbc = work / f"{name}.db"
            shutil.copyfile(db, dbc)  # the home's log goes on
            result.phases[name] = lc.auto(
                after.snapshot(),
                s.auto_days,
                bundle,
                dbc,
                work / f"state-{name}",
                name,
                s.readiness,
                not alone,
            )
            result.dbs[name] = dbc
    return result
