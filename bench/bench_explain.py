"""`edge-agent explain` cost: reading a device's log and drawing its PNG, on a hub-sized log.

A 4-light, 16-channel home's decisions (one per device every `--every` seconds, the top 3 channels' attention
recorded as the controller writes it), state changes and overrides are written through the agent's Recorder
into a SQLite file; then, per span (1 day, 7 days), timed: `edge_agent.explain.explain` for one light and
`edge_agent.explain_plot.render` of it (median of `--repeat` runs; matplotlib's import timed once, apart).
Baselines in the same run: the bare `SELECT ... FROM decisions` + json.loads of those rows through sqlite3
(the floor of reading), and an empty Figure of the same size saved as PNG (the floor of drawing).
One JSON line per figure. Usage: python bench/bench_explain.py [--days 7] [--every 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import emit

from edge_agent.catalog import CATALOG_KEY
from edge_agent.effects import DecisionRecord, DeviceChangeRecord, dumps
from edge_agent.explain import explain
from edge_agent.recorder import Recorder

ROOMS = ("living", "kitchen", "bedroom", "office")
KINDS = ("motion", "illuminance", "temperature", "humidity")
T0 = 1_717_192_800.0


def write_log(url: str, days: int, every: float, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    channels = [f"{r}.{k}" for r in ROOMS for k in KINDS]
    rec = Recorder(url, queue_size=500_000, batch_rows=50_000)
    rec.set_state(
        CATALOG_KEY,
        {"timezone": "Europe/Brussels", "devices": {f"{r}.light": {"kind": "binary"} for r in ROOMS}},
        T0,
    )
    n = int(days * 86400 / every)
    rows = 0
    for d, room in enumerate(ROOMS):
        state = 0.0
        rec.write(DeviceChangeRecord(T0, f"{room}.light", 0.0, None, "initial", False))
        w = rng.dirichlet(np.ones(len(channels)), size=n)  # [n, C]
        flips = rng.random(n) < 0.004
        for i in range(n):
            ts = T0 + i * every + d
            top = np.argsort(-w[i])[:3]
            att = dumps([[channels[j], round(float(w[i, j]), 4)] for j in top])
            reason = "change" if flips[i] else "no-change"
            target = 1.0 - state if flips[i] else state
            rec.write(
                DecisionRecord(
                    ts,
                    f"{room}.light",
                    target,
                    target,
                    0.8,
                    flips[i],
                    reason,
                    "auto",
                    "int8",
                    "tick",
                    "v",
                    0.2,
                    att,
                )  # fmt: skip
            )
            if flips[i]:
                rec.write(DeviceChangeRecord(ts + 1, f"{room}.light", target, state, "agent", False))
                state = target
            rows += 1
        rec.flush(120.0)
    rec.close(120.0)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--every", type=float, default=20.0, help="seconds between one device's decisions")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "agent.db"
        url = f"sqlite:///{db}"
        t = time.perf_counter()
        rows = write_log(url, a.days, a.every)
        emit(bench="explain", stage="write_log", decisions=rows, seconds=round(time.perf_counter() - t, 2))
        t = time.perf_counter()
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        from edge_agent.explain_plot import DPI, FIG_INCHES, render

        emit(bench="explain", stage="import_matplotlib", seconds=round(time.perf_counter() - t, 3))
        last = T0 + a.days * 86400.0
        for days in sorted({1, a.days}):
            lo = last - days * 86400.0
            read, draw, floor_read, floor_draw = [], [], [], []
            size = 0
            for _ in range(a.repeat):
                t = time.perf_counter()
                exp = explain(url, "living.light", since=lo, until=last, timezone="Europe/Brussels")
                read.append(time.perf_counter() - t)
                out = Path(tmp) / f"explain-{days}.png"
                t = time.perf_counter()
                render(exp, out)
                draw.append(time.perf_counter() - t)
                size = out.stat().st_size
                t = time.perf_counter()
                con = sqlite3.connect(db)
                got = con.execute(
                    "SELECT ts, target, output, mode, tier, reason, sent, attention FROM decisions "
                    "WHERE device = ? AND ts >= ? AND ts < ? ORDER BY ts",
                    ("living.light", lo, last),
                ).fetchall()
                for r in got:
                    json.loads(r[7])
                con.close()
                floor_read.append(time.perf_counter() - t)
                t = time.perf_counter()
                fig = Figure(figsize=FIG_INCHES, dpi=DPI)
                FigureCanvasAgg(fig)
                fig.add_subplot(1, 1, 1)
                fig.savefig(Path(tmp) / "empty.png", format="png", dpi=DPI)
                floor_draw.append(time.perf_counter() - t)
            emit(
                bench="explain",
                span_days=days,
                decisions=int(exp.dec_ts.size),
                explain_s=round(statistics.median(read), 3),
                baseline_sqlite_json_s=round(statistics.median(floor_read), 3),
                render_s=round(statistics.median(draw), 3),
                baseline_empty_figure_s=round(statistics.median(floor_draw), 3),
                png_kb=round(size / 1024, 1),
            )


if __name__ == "__main__":
    main()
