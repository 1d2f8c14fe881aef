"""A home's log as a dataset: recorder DB -> grid + labels -> CSV + sidecar -> training's CSV loader.

30 days (default) of a 16-channel, 4-device home written through the agent's Recorder into a SQLite file,
then timed: `edge_agent.history.load_history` (DB -> grid, labels), `write_history_csv`, `training.data.
load_csv` of the export; peak RSS of the process after each stage. Baseline in the same run: the bare
`SELECT ts, channel, value FROM readings` through the stdlib sqlite3 module (the floor of reading the log),
run last so the peak RSS figures are the export's own.
One JSON line per stage. Usage: python bench/bench_history.py [--days 30]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import resource
import sqlite3
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from _common import emit

from edge_agent.catalog import CATALOG_KEY
from edge_agent.history import load_history
from edge_agent.history_csv import write_history_csv
from edge_agent.learning_config import LearningSettings
from edge_agent.recorder import Recorder

ROOMS = ("living", "kitchen", "bedroom", "office")
KINDS = ("motion", "illuminance", "temperature", "humidity")
T0 = 1_717_192_800.0


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_home(url: str, days: int, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    n = days * 1440
    rec = Recorder(url, queue_size=200_000, batch_rows=50_000)
    channels = {f"{r}.{k}": {"kind": k, "unit": "", "room": r} for r in ROOMS for k in KINDS}
    devices = {
        f"{r}.light": {
            "kind": "binary",
            "levels": 2,
            "unit": "",
            "min_value": None,
            "max_value": None,
            "room": r,
        }
        for r in ROOMS
    }
    cat = {"timezone": "Europe/Brussels", "channels": channels, "devices": devices}
    rec.set_state(CATALOG_KEY, cat | {"learning": LearningSettings().model_dump(mode="json")}, T0)
    state = dict.fromkeys(devices, 0.0)
    for d in devices:
        rec.add(
            "device_changes",
            {
                "ts": T0,
                "device": d,
                "value": 0.0,
                "previous": None,
                "source": "initial",
                "learning_paused": False,
            },
        )
    rows = 0
    for i in range(n):
        t = T0 + 60.0 * i
        hour = (i % 1440) / 60.0
        for r in ROOMS:
            present = rng.random() < (0.6 if 17 <= hour < 23 else 0.1)
            vals = {
                "motion": float(present and rng.random() < 0.5),
                "illuminance": max(0.0, 400 * math.sin(math.pi * (hour - 6) / 14))
                + 300 * state[f"{r}.light"],
                "temperature": 20 + math.sin(i / 500.0),
                "humidity": 50 + 5 * math.sin(i / 900.0),
            }
            for k, v in vals.items():
                rec.add("readings", {"ts": t, "channel": f"{r}.{k}", "value": v})
                rows += 1
            want = float(present and not 7 <= hour < 20)
            if want != state[f"{r}.light"] and rng.random() < 0.3:
                state[f"{r}.light"] = want
                rec.add(
                    "device_changes",
                    {
                        "ts": t + 30,
                        "device": f"{r}.light",
                        "value": want,
                        "previous": 1 - want,
                        "source": "person",
                        "learning_paused": False,
                    },
                )
        if i % 1440 == 0:
            rec.flush(60.0)
    rec.close(120.0)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=30)
    args = ap.parse_args()
    from training.data import load_csv

    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        db = Path(tmp) / "agent.db"
        url = f"sqlite:///{db}"
        t = time.perf_counter()
        with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:  # its memory is not ours
            n = pool.submit(write_home, url, args.days).result()
        emit(
            bench="history",
            stage="write_db",
            days=args.days,
            readings=n,
            seconds=round(time.perf_counter() - t, 2),
        )
        t = time.perf_counter()
        hist = load_history(url)
        s_hist = time.perf_counter() - t
        emit(
            bench="history",
            stage="load_history",
            rows=len(hist),
            channels=len(hist.channels),
            seconds=round(s_hist, 2),
            peak_rss_mb=round(peak_mb(), 1),
        )
        t = time.perf_counter()
        csv, _, _ = write_history_csv(hist, Path(tmp) / "h.csv")
        emit(
            bench="history",
            stage="write_csv",
            mb=round(csv.stat().st_size / 1e6, 1),
            seconds=round(time.perf_counter() - t, 2),
            peak_rss_mb=round(peak_mb(), 1),
        )
        t = time.perf_counter()
        log = load_csv(csv)
        emit(
            bench="history",
            stage="load_csv",
            rows=len(log),
            seconds=round(time.perf_counter() - t, 2),
            peak_rss_mb=round(peak_mb(), 1),
            label_events=[int(x) for x in hist.labels.events],
        )

        t = time.perf_counter()
        con = sqlite3.connect(db)
        raw = con.execute("SELECT ts, channel, value FROM readings").fetchall()
        con.close()
        base = time.perf_counter() - t
        del raw
        emit(
            bench="history",
            stage="baseline_sqlite3_fetchall",
            readings=n,
            seconds=round(base, 2),
            load_history_vs_baseline=round(s_hist / base, 2),
        )


if __name__ == "__main__":
    main()
