"""Preference labels vs the naive state-in-effect labels, on a generated home log (footprint known).

The home (tests/homelog.py): a person switches the living-room lamp on when it is dark and they are there,
off when they leave, with a 1-4 min lag; the lamp adds 300 lx to the room's illuminance. 14 days are written
through the agent's Recorder into a SQLite file and trained with `python -m training train --dataset db:...`
three ways: naive (the same-run baseline: state-in-effect labels, no state input), preference labels with
no transition oversampling, and preference labels with the default `--transition-frac 0.3`. One JSON line per
variant: held-out (last 3 days) agreement of the int8 tier with the person's preference on every labelled
row, and on the rows just before a person's change (does it anticipate the change, or mirror the lamp).
Usage: python bench/bench_labels.py [--days 14] [--epochs 8]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, emit
from homelog import generated_log, home_config

VARIANTS = (
    ("naive", ["--labels", "naive"]),
    ("preference, no oversampling", ["--transition-frac", "0"]),
    ("preference", []),
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-labels-") as tmp:
        url, counts = generated_log(home_config(Path(tmp)), args.days, seed=args.seed)
        for name, extra in VARIANTS:
            out = Path(tmp) / name.replace(" ", "_").replace(",", "")
            cmd = [sys.executable, "-m", "training", "train", "--dataset", f"db:{url}", "--holdout-days", "3"]
            cmd += ["--epochs", str(args.epochs), "--max-windows-per-epoch", "6000", "--latency-runs", "20"]
            cmd += ["--no-progress", "--out", str(out), *extra]
            t = time.perf_counter()
            subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
            m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["metrics"]
            d = "living.light"
            emit(
                bench="labels",
                variant=name,
                days=args.days,
                person_changes=counts["person_changes"],
                holdout_agreement=round(m[f"holdout_agreement.{d}"], 3),
                holdout_event_agreement=round(m.get(f"holdout_event_agreement.{d}", float("nan")), 3),
                holdout_labels=int(m[f"holdout_labels.{d}"]),
                holdout_event_rows=int(m.get(f"holdout_events.{d}", 0)),
                train_seconds=round(m["train_seconds"], 1),
                wall_seconds=round(time.perf_counter() - t, 1),
            )


if __name__ == "__main__":
    main()
