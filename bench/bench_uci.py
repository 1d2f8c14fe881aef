"""UCI occupancy targets of issue 3, measured: train + evaluate per seed through the CLI, JSON lines out.

Per seed, for all channels and without Light (trained without it; and the all-channel model with Light masked):
accuracy of every tier on test/test2, int8 agreement with full, the baselines on the same windows, the
faithfulness of the attention, p50 latency of every tier vs torch eager (same run), and training wall time.
A last line gives means over seeds. Asserts nothing.

    .venv/bin/python bench/bench_uci.py [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SPLITS = ("test", "test2")


def _row(r: dict, what: str, seed: int, train_s: float) -> dict:
    out: dict = {"bench": "uci", "what": what, "seed": seed, "train_wall_s": round(train_s, 1)}
    for t, v in r["tiers"].items():
        for s in SPLITS:
            out[f"{t}.{s}.acc"] = round(v[s]["accuracy"] * 100, 2)
        out[f"{t}.p50_us"] = round(v["latency_us"]["p50"], 1)
    for s in SPLITS:
        out[f"int8.{s}.agreement"] = round(r["tiers"]["int8"][s]["agreement_vs_full"] * 100, 2)
        for b in ("lda", "majority", "threshold_rule", "gbdt_window"):
            out[f"{b}.{s}.acc"] = round(r["baselines"][b][s]["accuracy"] * 100, 2)
    out["torch_eager.p50_us"] = round(r["torch_eager_latency_us"]["p50"], 1)
    out["int8.speedup_vs_torch"] = round(r["speedup_vs_torch_p50"]["int8"], 2)
    out["cheapest.speedup_vs_torch"] = round(max(r["speedup_vs_torch_p50"].values()), 2)
    out["faithfulness_top1"] = round(r["faithfulness_top1"], 3)
    for dev, v in r.get("faithfulness_top1_devices", {}).items():  # per head
        out[f"faithfulness_top1.{dev}"] = round(v, 3)
    out["aopc_ratio"] = round(r["deletion_curve"]["aopc_ratio"], 2)
    out["onnx_max_abs_error"] = r["onnx_max_abs_error"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    from training.cli import main as cli

    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-uci-") as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            for what, train_drop, eval_drop in (
                ("all", "", ""),
                ("no_light_trained", "Light", ""),
                ("light_masked", None, "Light"),
            ):
                bundle = Path(tmp) / f"b{seed}-{train_drop or 'all'}"
                t0 = time.monotonic()
                if train_drop is not None:
                    argv = [
                        "train",
                        "--dataset",
                        "uci-occupancy",
                        "--seed",
                        str(seed),
                        "--no-progress",
                        "--latency-runs",
                        "200",
                        "--out",
                        str(bundle),
                    ]
                    if train_drop:
                        argv += ["--drop-channels", train_drop]
                    if cli(argv) != 0:
                        return 1
                else:
                    bundle = Path(tmp) / f"b{seed}-all"
                train_s = time.monotonic() - t0
                rep = Path(tmp) / "r.json"
                argv = ["evaluate", str(bundle), "--json", str(rep)] + (
                    ["--drop-channels", eval_drop] if eval_drop else []
                )
                if cli(argv) != 0:
                    return 1
                row = _row(
                    json.loads(rep.read_text()), what, seed, train_s if train_drop is not None else 0.0
                )
                rows.append(row)
                print(json.dumps(row), flush=True)
    for what in ("all", "no_light_trained", "light_masked"):
        sel = [r for r in rows if r["what"] == what]
        keys = [k for k in sel[0] if isinstance(sel[0][k], float | int) and k != "seed"]
        print(
            json.dumps(
                {
                    "bench": "uci",
                    "what": f"{what}.mean",
                    "seeds": len(sel),
                    **{k: round(float(np.mean([r[k] for r in sel])), 3) for k in keys},
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
