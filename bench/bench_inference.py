"""Inference latency: torch eager (the baseline, same model, same inputs, same run) vs every onnxruntime tier.

Batch 1, 1 intra-op thread each (the daemon's setting), a pool of 64 windows cycled through. Prints one JSON
line per engine/tier: p50/p99/mean µs and the p50 speed-up over torch eager. Asserts nothing.

    .venv/bin/python bench/bench_inference.py [--bundle DIR] [--runs 3000]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=ROOT / "simhome" / "demo_bundle")
    ap.add_argument("--runs", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from edge_agent.features import event_rows, pool_time
    from edge_agent.manifest import read_manifest
    from training.bundle import load_models
    from training.export import torch_latency
    from training.ortrun import make_session, ort_latency

    man = read_manifest(args.bundle)
    rng = np.random.default_rng(args.seed)
    c, n = len(man.channels), 64
    x = rng.standard_normal((n, c, man.window)).astype(np.float32)  # normalized windows, every channel live
    mask = np.ones((n, c), np.float32)
    ids = np.broadcast_to(np.arange(c, dtype=np.int64), (n, c)).copy()
    ev = event_rows([ch.kind for ch in man.channels])  # [C]
    full, _, _ = load_models(args.bundle)
    base = torch_latency(full, x, mask, ids, n=args.runs)

    def emit(what: str, lat: dict[str, float], **kw: object) -> None:
        print(
            json.dumps(
                {
                    "bench": "inference",
                    "bundle": man.version,
                    "what": what,
                    "channels": kw.pop("channels", c),
                    "p50_us": round(lat["p50"], 1),
                    "p99_us": round(lat["p99"], 1),
                    "mean_us": round(lat["mean"], 1),
                    "speedup_p50_vs_torch": round(base["p50"] / lat["p50"], 2),
                    **kw,
                }
            ),
            flush=True,
        )

    emit("torch_eager_full", base, threads=1)
    for t in man.tiers:
        k = t.channel_budget or c
        lat = ort_latency(
            make_session(args.bundle / t.file),
            pool_time(x[:, :k], t.time_factor, ev[:k]),  # the runtime's pooling
            mask[:, :k],
            ids[:, :k],
            n=args.runs,
        )
        emit(
            f"ort_{t.name}",
            lat,
            channels=k,
            precision=t.precision,
            time_factor=t.time_factor,
            every_n_ticks=t.every_n_ticks,
            threads=1,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
