"""Explicit split files on the simulated home's multi-year history (issue 22): one CSV file per year.

    python bench/bench_splits.py [--years 4] [--start-year 2021] [--steps 3000] [--threshold-rule f1]
                                 [--workdir /tmp/edge-agent-bench-splits]

The simulated home lives `--years` calendar years (one-minute rows) written as one file per local year;
`train` gets the first years (all but the last two, concatenated into one training file), `--val-dataset` the
second-to-last year and `--test-dataset` the last year; `evaluate` then scores the whole test year (the
manifest's split) with the baselines fitted on the training years only. Prints JSON lines (`"bench": "splits"`):

  files     rows per file (train / val / test)
  train     wall seconds, peak RSS, the manifest's split rule, threshold rule, steps run, stop reason
  evaluate  wall seconds, peak RSS
  table     per device and model (attention full, int8; gbdt_window, lda, threshold_rule, majority):
            accuracy, balanced accuracy, F1, AP, threshold (the baselines are the same-run comparison)
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from _common import emit
from bench_scale import run_timed

PY = sys.executable


def year_files(workdir: Path, years: int, start_year: int, seed: int) -> dict[int, Path]:
    """The history split into one CSV (+ sidecar) per local year; reused when already there."""
    from simhome.history import write_history

    out = {y: workdir / f"year-{y}.csv" for y in range(start_year, start_year + years)}
    if all(p.is_file() for p in out.values()):
        return out
    import datetime as dt

    days = (dt.date(start_year + years, 1, 1) - dt.date(start_year, 1, 1)).days
    src = write_history(workdir / "history.csv", days, seed=seed, start=f"{start_year}-01-01")
    sidecar = Path(str(src) + ".sidecar.json").read_text(encoding="utf-8")
    handles = {}
    with open(src, encoding="utf-8") as f:
        head = f.readline()
        for y, p in out.items():
            handles[y] = open(p, "w", encoding="utf-8")  # noqa: SIM115 - closed below
            handles[y].write(head)
            Path(str(p) + ".sidecar.json").write_text(sidecar, encoding="utf-8")
        for line in f:
            handles[int(line[:4])].write(line)  # local year of the ISO timestamp with its offset
    for h in handles.values():
        h.close()
    src.unlink()
    return out


def rows(path: Path) -> int:
    with open(path, encoding="utf-8") as f:
        return sum(1 for _ in f) - 1


def concat(files: list[Path], dest: Path) -> Path:
    with open(dest, "w", encoding="utf-8") as out:
        for i, p in enumerate(files):
            with open(p, encoding="utf-8") as f:
                head = f.readline()
                if i == 0:
                    out.write(head)
                out.writelines(f)
    Path(str(dest) + ".sidecar.json").write_text(
        Path(str(files[0]) + ".sidecar.json").read_text(encoding="utf-8"), encoding="utf-8"
    )
    return dest


def table(report: dict) -> None:
    thr = report.get("thresholds", {})
    rows = {f"attention_{t}": report["tiers"].get(t, {}) for t in ("full", "int8")}
    rows |= {b: report["baselines"].get(b, {}) for b in ("gbdt_window", "lda", "threshold_rule", "majority")}
    for model, node in rows.items():
        values = (
            thr.get("per_device", {})
            if model.startswith("attention")
            else thr.get("baseline_values", {}).get(model, {})
        )
        for dev, d in node.get("test", {}).get("devices", {}).items():
            emit(
                bench="splits",
                what="table",
                split="test (whole last year)",
                device=dev,
                model=model,
                threshold=values.get(dev),
                **{
                    k: (round(d[k], 4) if isinstance(d.get(k), float) else d.get(k))
                    for k in ("accuracy", "balanced_accuracy", "f1", "average_precision", "mae")
                },
            )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--years", type=int, default=4, help="calendar years (>= 3: train, val, test)")
    ap.add_argument("--start-year", type=int, default=2021)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=3000, help="optimizer steps of the training budget")
    ap.add_argument("--threshold-rule", default="f1")
    ap.add_argument(
        "--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "edge-agent-bench-splits"
    )
    a = ap.parse_args()
    if a.years < 3:
        raise SystemExit("--years must be >= 3 (train, validation and test years)")
    a.workdir.mkdir(parents=True, exist_ok=True)
    files = year_files(a.workdir, a.years, a.start_year, a.seed)
    ys = sorted(files)
    train = concat([files[y] for y in ys[:-2]], a.workdir / "train.csv") if a.years > 3 else files[ys[0]]
    val, test = files[ys[-2]], files[ys[-1]]
    emit(
        bench="splits",
        what="files",
        train_years=ys[:-2],
        val_year=ys[-2],
        test_year=ys[-1],
        **{k: rows(p) for k, p in (("train_rows", train), ("val_rows", val), ("test_rows", test))},
    )
    bundle, rj = a.workdir / "bundle", a.workdir / "report.json"
    tr = run_timed(
        [
            PY,
            "-m",
            "training",
            "train",
            "--dataset",
            str(train),
            "--val-dataset",
            str(val),
            "--test-dataset",
            str(test),
            "--steps",
            str(a.steps),
            "--threshold-rule",
            a.threshold_rule,
            "--seed",
            str(a.seed),
            "--latency-runs",
            "200",
            "--no-progress",
            "--out",
            str(bundle),
        ]
    )
    if tr["rc"] != 0:
        emit(bench="splits", what="train", **tr)
        return 1
    man = json.loads((bundle / "manifest.json").read_text())
    meta = json.loads((bundle / "training.json").read_text())
    emit(
        bench="splits",
        what="train",
        **tr,
        split_rule=man["split"]["rule"],
        threshold_rule=man["threshold_rule"],
        steps_run=man["metrics"].get("steps_run"),
        threshold_windows=man["metrics"].get("threshold_windows"),
        stop_reason=meta.get("stop_reason"),
    )
    ev = run_timed(
        [
            PY,
            "-m",
            "training",
            "evaluate",
            str(bundle),
            "--json",
            str(rj),
            "--latency-runs",
            "200",
            "--faithfulness-windows",
            "300",
        ]
    )
    emit(bench="splits", what="evaluate", **ev)
    if ev["rc"] != 0:
        return 1
    table(json.loads(rj.read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
