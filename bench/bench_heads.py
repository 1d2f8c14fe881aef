"""Head/input experiments on the simulated home's explicit split files (issue 20), quick and same-run compared.

    python bench/bench_heads.py --workdir /tmp/heads [--steps 600] [--test-windows 60000]
                                [--faith-windows 300] [--set KEY=VALUE ...] [--gbdt]

`--workdir` holds year files as written by bench/bench_splits.py (year-YYYY.csv + sidecars; the first year
trains, the next validates, the last is the test year). The splits are read once and cached there
(splits.pkl). `--set` overrides a `training.train.TrainConfig` field (e.g. `--set dynamics=true
--set level_head=ordinal`). The model is trained by `training.train.train` (the `train` command's loop), its
full tier exported to ONNX and scored on `--test-windows` evenly strided test windows with the runtime's
decision rule (`training.decisions.decide`) and the evaluation's metrics; faithfulness (top-1 per head) on
`--faith-windows` of them. `--gbdt` also fits `gbdt_window` on the training year and scores the SAME windows
(the same-run baseline). Prints JSON lines (`"bench": "heads"`): `config`, one `table` line per device and
model, `faithfulness`. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import emit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load_parts(workdir: Path) -> dict[str, Any]:
    from training.pipeline import DataSpec, load_splits

    cache = workdir / "splits.pkl"
    if cache.is_file():
        with open(cache, "rb") as f:
            return pickle.load(f)  # noqa: S301 - our own cache file
    years = sorted(workdir.glob("year-*.csv"))
    if len(years) < 3:
        raise SystemExit(f"{workdir}: needs >= 3 year-*.csv files (python bench/bench_splits.py writes them)")
    spec = DataSpec(
        dataset=str(years[0]),
        val_dataset=str(years[-2]),
        test_dataset=str(years[-1]),
    )
    parts = load_splits(spec)
    with open(cache, "wb") as f:
        pickle.dump(parts, f)
    return parts


def parse_value(field: dataclasses.Field, text: str) -> Any:  # type: ignore[type-arg]
    if text.lower() in ("none", "null"):
        return None
    t = str(field.type)
    if "bool" in t:
        return text.lower() in ("1", "true", "yes", "on")
    if "tuple" in t:
        return tuple(s for s in text.split(",") if s)
    if "int" in t and "float" not in t:
        return int(text)
    if "float" in t:
        return float(text)
    return text


def metrics_table(name: str, devices: list, dec: dict[str, np.ndarray], y: np.ndarray, scores=None) -> None:
    from training.metrics import device_metrics

    for k, d in enumerate(devices):
        m = device_metrics(d.kind, y[:, k], dec[d.name], levels=d.levels)
        emit(
            bench="heads",
            what="table",
            model=name,
            device=d.name,
            **{
                key: round(m[key], 4)
                for key in ("accuracy", "balanced_accuracy", "f1", "mae")
                if key in m and np.isfinite(m[key])
            },
        )


def main() -> int:
    from training.train import TrainConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-windows", type=int, default=60_000)
    ap.add_argument("--faith-windows", type=int, default=300)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--gbdt", action="store_true", help="fit gbdt_window and score the same windows")
    ap.add_argument("--label", default="")
    a = ap.parse_args()

    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    over: dict[str, Any] = {}
    for kv in a.set:
        key, _, val = kv.partition("=")
        if key not in fields:
            raise SystemExit(f"--set {kv}: no TrainConfig field {key!r}")
        over[key] = parse_value(fields[key], val)
    cfg = TrainConfig(steps=a.steps, seed=a.seed, progress=False, **over)
    t0 = time.monotonic()
    parts = load_parts(a.workdir)
    emit(
        bench="heads",
        what="config",
        label=a.label,
        set=over,
        steps=a.steps,
        seed=a.seed,
        load_seconds=round(time.monotonic() - t0, 1),
    )

    import torch

    from training.data import WindowSampler
    from training.decisions import decide
    from training.export import export_onnx
    from training.faithfulness import faithfulness
    from training.ortrun import make_session, run_batched
    from training.train import train, windows

    t0 = time.monotonic()
    res = train(parts["train"], parts["val"], cfg)
    train_s = time.monotonic() - t0
    test = parts["test"]
    ts = WindowSampler(test, cfg.window)
    ends = ts.ends[np.linspace(0, ts.ends.size - 1, min(a.test_windows, ts.ends.size)).astype(np.int64)]
    mean = np.array([c.mean for c in res.channels], np.float32)
    std = np.array([c.std for c in res.channels], np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(res.full, Path(tmp) / "full.onnx")
        sess = make_session(path)
        outs, labs = [], []
        for i in range(0, ends.size, 4096):
            x, mask, ids, y = windows(ts, ends[i : i + 4096], mean, std)
            outs.append(run_batched(sess, x, mask, ids)[0])
            labs.append(y)
        out, y = np.concatenate(outs), np.concatenate(labs)
        dec = decide(out, res.devices)
        emit(
            bench="heads",
            what="train",
            label=a.label,
            train_seconds=round(train_s, 1),
            steps_run=res.metrics.get("steps_run"),
            params_full=res.metrics.get("params_full"),
            stop_reason=res.stop_reason,
            test_windows=int(ends.size),
        )
        metrics_table(
            "attention_full", res.devices, {d.name: dec[:, k] for k, d in enumerate(res.devices)}, y
        )
        fe = ends[np.linspace(0, ends.size - 1, min(a.faith_windows, ends.size)).astype(np.int64)]
        x, mask, ids, _ = windows(ts, fe, mean, std)
        f = faithfulness(sess, x, mask, ids, res.devices)
        emit(
            bench="heads",
            what="faithfulness",
            label=a.label,
            top1=round(float(f["faithfulness_top1"]), 3),
            top1_min=round(float(f["faithfulness_top1_min"]), 3),
            devices={k: round(v, 3) for k, v in f["faithfulness_top1_devices"].items()},
            informative={k: round(v, 3) for k, v in f["faithfulness_top1_informative_devices"].items()},
        )
    del torch
    if a.gbdt:
        from training.baselines import fit_baselines

        t0 = time.monotonic()
        b = fit_baselines(parts["train"], parts["val"], cfg.window, ("gbdt_window",), threshold_rule="f1")
        g = b["gbdt_window"]
        metrics_table("gbdt_window", res.devices, g.decide(g.scores(test, ends)), test.labels[ends])
        emit(bench="heads", what="gbdt", seconds=round(time.monotonic() - t0, 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
