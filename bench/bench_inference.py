"""Inference latency per tier with the fp32 `full` tier as the same-run baseline, interleaved.

Batch 1, 1 intra-op thread (the daemon's session options), a pool of 64 normalized windows. Every round runs
each engine once on the same window (in rotating order), so the machine's load hits all alike: each JSON line
gives p50/p99/mean µs and `ratio_vs_fp32`, the median per-round time ratio to `full` (< 1 = faster).
`--profile` prints, per tier file, the node count after onnxruntime's fusions and the kernel µs per op type
(onnxruntime's own profiler, which adds overhead per node: compare files, not absolute values).
`--variants` adds quantization variants of full.onnx (training.quantize's candidates plus static QDQ with
calibration, which is not a candidate) with their int8 node counts; `--torch` adds torch eager. Asserts nothing.

    .venv/bin/python bench/bench_inference.py [--bundle DIR] [--runs 3000] [--variants] [--torch] [--profile]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def static_qdq(src: Path, dst: Path, calib: list[dict[str, np.ndarray]]) -> Path:
    """Static QDQ int8 (S8S8, per-channel weights, activations with fixed calibrated scales) on the MatMuls."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from training.export import _small_matmuls

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(calib)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    pre = dst.with_suffix(".pre.onnx")
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    quantize_static(
        str(pre),
        str(dst),
        Reader(),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=_small_matmuls(pre),
    )
    return dst


def profile(path: Path, feeds: dict[str, np.ndarray], runs: int, prefix: str) -> dict[str, object]:
    """Median kernel µs per node over `runs` calls, summed per op type; node count as executed."""
    import collections
    import os

    import onnxruntime as ort

    from edge_agent.inference import session_options

    so = session_options(1)
    so.enable_profiling = True
    so.profile_file_prefix = prefix
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    for _ in range(runs):
        sess.run(None, feeds)
    trace = sess.end_profiling()
    with open(trace, encoding="utf-8") as f:
        events = json.load(f)
    os.remove(trace)
    per: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per[(e["args"]["op_name"], e["name"])].append(e["dur"])
    by_op: collections.Counter[str] = collections.Counter()
    for (op, _), d in per.items():
        by_op[op] += float(np.median(d))
    return {"nodes": len(per), "kernel_us_by_op": {k: round(v, 1) for k, v in by_op.most_common()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=ROOT / "simhome" / "demo_bundle")
    ap.add_argument("--runs", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", action="store_true", help="also time quantization variants of full.onnx")
    ap.add_argument("--torch", action="store_true", help="also time torch eager (the full model)")
    ap.add_argument("--profile", action="store_true", help="per-op-type kernel time of each tier file")
    args = ap.parse_args()

    from edge_agent.features import event_rows, pool_time
    from edge_agent.manifest import read_manifest
    from training.ortrun import make_session
    from training.quantize import graph_counts, make_candidate

    man = read_manifest(args.bundle)
    rng = np.random.default_rng(args.seed)
    c, n = len(man.channels), 64
    x = rng.standard_normal((n, c, man.window)).astype(np.float32)  # normalized windows, every channel live
    mask = np.ones((n, c), np.float32)
    ids = np.broadcast_to(np.arange(c, dtype=np.int64), (n, c)).copy()
    ev = event_rows([ch.kind for ch in man.channels])  # [C]
    names = ["devices", "confidence", "attention"]

    def ort_engine(path: Path, tf: int, k: int) -> Callable[[int], object]:
        sess = make_session(path)
        xt = pool_time(x[:, :k], tf, ev[:k])  # [N, k, T // tf], the runtime's pooling
        feeds = [
            {"x": xt[i : i + 1], "mask": mask[i : i + 1, :k], "channel_ids": ids[i : i + 1, :k]}
            for i in range(n)
        ]
        return lambda i: sess.run(names, feeds[i % n])

    engines: list[tuple[str, Callable[[int], object], dict[str, object]]] = []
    for t in man.tiers:  # `full` first: the baseline
        k = t.channel_budget or c
        q = t.quantization
        info: dict[str, object] = {"channels": k, "precision": t.precision, "time_factor": t.time_factor}
        info |= {"every_n_ticks": t.every_n_ticks, "offered": t.offered}
        if q is not None:
            info |= {"method": q.method, "int8_nodes": q.quantized_nodes, "fp32_nodes": q.total_nodes}
        engines.append((f"ort_{t.name}", ort_engine(args.bundle / t.file, t.time_factor, k), info))
    tmp = tempfile.TemporaryDirectory(prefix="bench-inference-")
    if args.variants:
        full = args.bundle / man.tier("full").file
        calib = [
            {"x": x[i : i + 1], "mask": mask[i : i + 1], "channel_ids": ids[i : i + 1]} for i in range(n)
        ]
        for method in ("dynamic", "dynamic-large", "static-qdq"):
            dst = Path(tmp.name) / f"{method}.onnx"
            if method == "static-qdq":
                static_qdq(full, dst, calib)
            else:
                make_candidate(method, full, dst)
            q8, weighted, total = graph_counts(full, dst)
            info = {"channels": c, "int8_nodes": q8, "quantizable_nodes": weighted, "fp32_nodes": total}
            engines.append((f"variant_{method}", ort_engine(dst, 1, c), info))
    if args.torch:
        import torch

        from training.bundle import load_models

        torch.set_num_threads(1)
        model, _, _ = load_models(args.bundle)
        tx, tm, ti = torch.from_numpy(x), torch.from_numpy(mask), torch.from_numpy(ids)

        def eager(i: int) -> object:
            j = i % n
            with torch.inference_mode():
                return model(tx[j : j + 1], tm[j : j + 1], ti[j : j + 1])

        engines.append(("torch_eager_full", eager, {"channels": c}))

    warm, e = 50, len(engines)
    times = np.zeros((e, args.runs))
    for i in range(args.runs + warm):
        for j in range(e):  # rotating order: no engine always runs first (after torch, on cold caches)
            k = (i + j) % e
            t0 = time.perf_counter_ns()
            engines[k][1](i)
            if i >= warm:
                times[k, i - warm] = (time.perf_counter_ns() - t0) / 1000.0
    for k, (what, _, info) in enumerate(engines):
        tk = times[k]
        line = {
            "bench": "inference",
            "bundle": man.version,
            "what": what,
            "p50_us": round(float(np.percentile(tk, 50)), 1),
            "p99_us": round(float(np.percentile(tk, 99)), 1),
            "mean_us": round(float(tk.mean()), 1),
            "baseline": "ort_full fp32, same rounds",
            "baseline_p50_us": round(float(np.percentile(times[0], 50)), 1),
            "ratio_vs_fp32": round(float(np.median(tk / times[0])), 3),
            "batch": 1,
            "threads": 1,
            **info,
        }
        print(json.dumps(line), flush=True)
    if args.profile:
        for t in man.tiers:
            if t.name in ("focused", "sparse"):
                continue  # the coarse file again
            xt = pool_time(x[:1], t.time_factor, ev)
            feeds = {"x": xt, "mask": mask[:1], "channel_ids": ids[:1]}
            prof = profile(args.bundle / t.file, feeds, min(args.runs, 2000), str(Path(tmp.name) / t.name))
            print(json.dumps({"bench": "inference_profile", "what": f"ort_{t.name}", **prof}), flush=True)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
