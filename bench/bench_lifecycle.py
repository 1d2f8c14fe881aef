"""Issue 15's proof, measured: 14 simulated days observed with no model, a first model from that log, 7 days auto.

The simulated home (fixed seed) is lived through the runtime's Controller (`simhome.lifecycle`): the agent
with no bundle records while the person runs the home by hand (human lag, ~2.5 % mistakes) into a real
SQLite file; the first model is trained from that database by `python -m training train --dataset db:...`
in a child process, with the person's-preference labels and, for comparison, the naive state-in-effect
labels; then the same 7 days are lived (a) with nobody acting, (b) by the person alone, (c) with the agent in
auto on each model. One JSON line per phase (agreement with the hidden preference overall, on the lights,
per device; the person's actions and overrides per day), then one line with the targets and whether they
are met (baseline: the person alone on the same days). Asserts nothing.

    .venv/bin/python bench/bench_lifecycle.py [--observe-days 14] [--auto-days 7] [--seed 11]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

from _common import emit

from simhome.proof import ProofSettings, run_proof

TARGET_ALL, TARGET_LIGHTS = 0.95, 0.97


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--observe-days", type=float, default=14.0)
    ap.add_argument("--auto-days", type=float, default=7.0)
    ap.add_argument("--holdout-days", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--start", default="2024-01-08T00:00")
    ap.add_argument("--train-args", default="", help="extra trainer arguments, e.g. '--epochs 8'")
    ap.add_argument("--keep", help="keep the databases and bundles in this directory")
    args = ap.parse_args()
    s = ProofSettings(
        seed=args.seed,
        start=args.start,
        observe_days=args.observe_days,
        auto_days=args.auto_days,
        holdout_days=args.holdout_days,
        train_args=shlex.split(args.train_args),
    )
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-lifecycle-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        res = run_proof(
            work, s, progress=lambda m: print(f"# {m} ({time.monotonic() - t0:.0f}s)", file=sys.stderr)
        )
        base = {"bench": "lifecycle", "seed": s.seed, "start": s.start}
        emit(**base, **res.observe.summary())
        for rep in res.phases.values():
            emit(**base, **rep.summary())
        alone = res.phases["person_alone"]
        for labels, secs in res.train_seconds.items():
            c = res.phases[f"auto_{labels}"]
            solo = res.phases.get(f"auto_{labels}_alone")
            emit(
                **base,
                what=f"targets_{labels}",
                train_wall_s=round(secs, 1),
                agreement=round(c.overall(), 4),
                agreement_target=TARGET_ALL,
                agreement_met=c.overall() >= TARGET_ALL,
                agreement_lights=round(c.lights(), 4),
                agreement_lights_target=TARGET_LIGHTS,
                agreement_lights_met=c.lights() >= TARGET_LIGHTS,
                person_actions_per_day=round(c.per_day(c.actions), 2),
                overrides_per_day=round(c.per_day(c.overrides), 2),
                baseline_manual_actions_per_day=round(alone.per_day(alone.actions), 2),
                overrides_met=c.per_day(c.actions) < alone.per_day(alone.actions),
                baseline_agreement=round(alone.overall(), 4),
                nobody_agreement=round(res.phases["nobody"].overall(), 4),
                nobody_agreement_lights=round(res.phases["nobody"].lights(), 4),
                agent_alone_agreement=None if solo is None else round(solo.overall(), 4),
                agent_alone_agreement_lights=None if solo is None else round(solo.lights(), 4),
                agent_alone_overrides_per_day=None
                if solo is None
                else round(solo.per_day(solo.overrides), 2),
            )
        emit(**base, what="wall", wall_s=round(time.monotonic() - t0, 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
