"""Scale benchmark (issue 11): years of one-minute history -> load, lazy windows, train, evaluate, test table.

    python bench/bench_scale.py [--days 1400] [--workdir /tmp/edge-agent-bench] [--budget-seconds 480]
                                [--skip-train] [--reuse-bundle]

Prints JSON lines (one object each, `"bench": "scale"`):
  history    rows written by the simulated home (reused from --workdir when already there)
  load       our chunked loader vs `pandas.read_csv` of the whole file (same file, same run, each in a fresh
             subprocess): seconds and peak RSS
  windows    WindowSampler.batch windows/s (fill + mask rules) vs a plain per-window slice loop (no rules)
  fit        wall time of `python -m training train` and `python -m training evaluate`, their peak RSS,
             and load + train against the 15-minute target
  table      per device on the test split: balanced accuracy, F1, AP of the attention model (full, int8)
             and the baselines (gbdt_window, lda, majority), read from the evaluation report.json
Targets (issue 11): load + train <= 15 min on 2 cores, peak RSS <= 3 GB. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, emit

PY = sys.executable
WINDOW = 64

LOAD_CHILD = """
import json, resource, sys, time
t = time.perf_counter()
{body}
print(json.dumps(dict(seconds=time.perf_counter() - t, peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **out)))
"""
OURS = """
from training.data import load_dataset
log = load_dataset(sys.argv[1])["all"]
out = dict(rows=len(log), stats=log.stats, channels=len(log.channels), devices=len(log.devices))
"""
PANDAS = """
import pandas as pd
df = pd.read_csv(sys.argv[1])
out = dict(rows=len(df))
"""


def run_child(code: str, *args: str) -> dict:
    res = subprocess.run([PY, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, check=False)
    if res.returncode != 0:
        raise SystemExit(f"child failed ({res.returncode}): {res.stderr.strip()[-800:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_timed(cmd: list[str]) -> dict:
    """Run a command: wall seconds, its own peak RSS in MB (os.wait4), exit code, output tails."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        secs = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        o, e = out.read(), err.read()
    return {
        "seconds": round(secs, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "rc": proc.returncode,
        "stderr_tail": e.strip()[-600:] if proc.returncode else "",
        "stdout_tail": o.strip()[-400:],
    }


def history(days: int, workdir: Path, seed: int) -> Path:
    path = workdir / f"history-{days}d-seed{seed}.csv"
    if path.is_file() and Path(str(path) + ".sidecar.json").is_file():
        emit(bench="scale", what="history", path=str(path), reused=True)
        return path
    from simhome.history import write_history

    t = time.perf_counter()
    write_history(path, days, seed=seed)
    emit(
        bench="scale", what="history", path=str(path), reused=False, seconds=round(time.perf_counter() - t, 1)
    )
    return path


def windows_per_second(path: Path) -> None:
    import numpy as np

    from training.data import WindowSampler, load_dataset

    log = load_dataset(str(path))["all"]
    s = WindowSampler(log, WINDOW)
    rng = np.random.default_rng(0)
    batches = [rng.choice(s.ends, 512) for _ in range(40)]

    def rate(fn) -> float:
        t = time.perf_counter()
        n = 0
        for e in batches:
            fn(e)
            n += e.size
        return n / (time.perf_counter() - t)

    ours = rate(s.batch)
    vals = log.values
    plain = rate(lambda e: np.stack([vals[i - WINDOW + 1 : i + 1].T for i in e]))
    emit(
        bench="scale",
        what="windows",
        window=WINDOW,
        channels=len(log.channels),
        valid_windows=int(s.ends.size),
        windows_per_s=round(ours),
        baseline="per-window slice loop, no fill/mask",
        baseline_windows_per_s=round(plain),
    )


def table(report: dict) -> None:
    def dev_metrics(node: dict | None) -> dict:
        return (node or {}).get("test", {}).get("devices", {})

    rows = {f"attention_{t}": dev_metrics(report.get("tiers", {}).get(t)) for t in ("full", "int8")}
    rows |= {b: dev_metrics(report.get("baselines", {}).get(b)) for b in ("gbdt_window", "lda", "majority")}
    devices = sorted({d for m in rows.values() for d in m})
    for dev in devices:
        for model, m in rows.items():
            d = m.get(dev, {})
            emit(
                bench="scale",
                what="table",
                split="test",
                device=dev,
                model=model,
                **{
                    k: (round(d[k], 4) if isinstance(d.get(k), float) else d.get(k))
                    for k in ("balanced_accuracy", "f1", "average_precision", "mae", "majority_rate")
                },
            )
    for dev, v in (report.get("faithfulness_top1_devices") or {}).items():  # per head, not only the mean
        emit(bench="scale", what="faithfulness", device=dev, top1=round(v, 3))
    data = report.get("data", {}).get("test")
    if data:
        emit(bench="scale", what="test_data", **data)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=1400, help="simulated days (1400 ≈ 2.0M one-minute rows)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "edge-agent-bench"
    )
    ap.add_argument("--budget-seconds", type=float, default=480.0, help="training wall-clock budget")
    ap.add_argument("--skip-train", action="store_true", help="only history, load and windows")
    ap.add_argument("--reuse-bundle", action="store_true", help="evaluate the bundle already in --workdir")
    a = ap.parse_args()
    a.workdir.mkdir(parents=True, exist_ok=True)
    path = history(a.days, a.workdir, a.seed)

    ours = run_child(LOAD_CHILD.format(body=OURS), str(path))
    base = run_child(LOAD_CHILD.format(body=PANDAS), str(path))
    emit(
        bench="scale",
        what="load",
        rows=ours["rows"],
        rows_in=ours["stats"]["rows_in"],
        channels=ours["channels"],
        devices=ours["devices"],
        seconds=round(ours["seconds"], 2),
        peak_rss_mb=round(ours["peak_rss_mb"]),
        baseline="pandas.read_csv whole file (float64, no resampling)",
        baseline_seconds=round(base["seconds"], 2),
        baseline_peak_rss_mb=round(base["peak_rss_mb"]),
        stats=ours["stats"],
    )
    windows_per_second(path)
    if a.skip_train:
        return 0

    bundle, report_path = a.workdir / "bundle", a.workdir / "report.json"
    if a.reuse_bundle and (bundle / "manifest.json").is_file():
        train = {"seconds": None, "peak_rss_mb": None, "rc": 0, "reused": str(bundle)}
    else:
        train = run_timed(
            [
                PY,
                "-m",
                "training",
                "train",
                "--dataset",
                str(path),
                "--budget-seconds",
                str(a.budget_seconds),
                "--no-progress",
                "--out",
                str(bundle),
            ]
        )
    emit(bench="scale", what="train", **train)
    if train["rc"] != 0:
        return 1
    ev = run_timed(
        [PY, "-m", "training", "evaluate", str(bundle), "--dataset", str(path), "--json", str(report_path)]
    )
    emit(bench="scale", what="evaluate", **ev)
    if train["seconds"] is not None:  # not when the bundle was reused
        total = ours["seconds"] + train["seconds"]
        rss = max(ours["peak_rss_mb"], train["peak_rss_mb"], ev["peak_rss_mb"])
        emit(
            bench="scale",
            what="targets",
            load_plus_train_seconds=round(total, 1),
            target_seconds=900,
            met_time=total <= 900,
            peak_rss_mb=round(rss),
            target_rss_mb=3072,
            met_rss=rss <= 3072,
        )
    if ev["rc"] != 0:
        return 1
    table(json.loads(report_path.read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
