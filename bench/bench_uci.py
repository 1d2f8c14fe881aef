"""UCI occupancy targets (issues 3, 20), measured: `train --seeds` + `evaluate --seeds` through the CLI, JSON lines.

Per seed, for all channels and without Light (trained without it; and the all-channel model with Light masked):
accuracy of every tier on test/test2, int8 agreement with full, the baselines on the same windows, the
faithfulness of the attention, p50 latency of every tier vs torch eager (same run), and training wall time.
After each variant's per-seed lines, one `<variant>.over_seeds` line: mean / std (sample) / min / max over the
seeds of every tier's and baseline's accuracy, the full tier's per-device figures, threshold, faithfulness and
training seconds (from the one report over seeds, training.seeds). Asserts nothing.

    .venv/bin/python bench/bench_uci.py [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

SPLITS = ("test", "test2")


def _row(r: dict, what: str, seed: int, train_s: float) -> dict:
    out: dict = {"bench": "uci", "what": what, "seed": seed, "train_wall_s": round(train_s, 1)}
    for t, v in r["tiers"].items():
        for s in SPLITS:
            out[f"{t}.{s}.acc"] = round(v[s]["accuracy"] * 100, 2)
        out[f"{t}.p50_us"] = round(v["latency_us"]["p50"], 1)
    for s in SPLITS:
        out[f"int8.{s}.agreement"] = round(r["tiers"]["int8"][s]["agreement_vs_full"] * 100, 2)
        for b in r["baselines"]:
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


VARIANTS = {  # name -> (train --drop-channels, evaluate --drop-channels); None: the "all" bundles
    "all": ("", ""),
    "light_masked": (None, "Light"),
    "no_light_trained": ("Light", ""),
}


def _stat_row(r: dict, what: str) -> dict:
    """The report over seeds (training.seeds) as mean / std / min / max JSON fields of the headline figures."""
    out: dict = {"bench": "uci", "what": f"{what}.over_seeds", "seeds": r["seeds"], "spread": "sample std"}

    def put(key: str, v: dict | None, scale: float = 100.0) -> None:
        if v:
            for k in ("mean", "std", "min", "max"):
                out[f"{key}.{k}"] = round(v[k] * scale, 3)

    for t, v in r["tiers"].items():
        for s in SPLITS:
            put(f"{t}.{s}.acc", v[s]["accuracy"])
    for s in SPLITS:
        put(f"int8.{s}.agreement", r["tiers"]["int8"][s]["agreement_vs_full"])
        for b in r["baselines"]:
            put(f"{b}.{s}.acc", r["baselines"][b][s]["accuracy"])
        for dev, m in r["tiers"]["full"][s]["devices"].items():
            for k in ("balanced_accuracy", "f1", "average_precision"):
                put(f"full.{s}.{dev}.{k}", m[k], 1.0)
    put("threshold", next(iter(r["thresholds"]["per_device"].values()), None), 1.0)
    put("faithfulness_top1", r["faithfulness_top1"], 1.0)
    put("faithfulness_top1_min", r["faithfulness_top1_min"], 1.0)
    put("train_seconds", (r.get("training") or {}).get("train_seconds"), 1.0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated: " + ", ".join(VARIANTS))
    ap.add_argument("--baselines", default="majority,lda,threshold_rule,gbdt_window")
    args = ap.parse_args()
    from training.cli import main as cli

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    with tempfile.TemporaryDirectory(prefix="bench-uci-") as tmp:
        for what in variants:
            train_drop, eval_drop = VARIANTS[what]
            runs = Path(tmp) / f"runs-{train_drop if train_drop is not None else ''}"
            t0 = time.monotonic()
            if train_drop is not None and not runs.exists():
                argv = ["train", "--dataset", "uci-occupancy", "--seeds", args.seeds, "--no-progress"]
                argv += ["--latency-runs", "200", "--out", str(runs)]
                if train_drop:
                    argv += ["--drop-channels", train_drop]
                if cli(argv) != 0:
                    return 1
            train_s = time.monotonic() - t0
            rep = Path(tmp) / f"{what}.json"
            argv = ["evaluate", str(runs), "--json", str(rep), "--baselines", args.baselines]
            if cli(argv + (["--drop-channels", eval_drop] if eval_drop else [])) != 0:
                return 1
            r = json.loads(rep.read_text())
            for s in r["seeds"]:
                one = json.loads(rep.with_name(f"{rep.stem}.seed-{s}.json").read_text())
                # the train command's wall time per seed (0: the variant evaluates bundles trained before)
                row = _row(one, what, s, train_s / len(r["seeds"]) if train_drop is not None else 0.0)
                print(json.dumps(row), flush=True)
            print(json.dumps(_stat_row(r, what)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
