"""Which int8 pays: make each quantization candidate of an fp32 tier file, time it against the fp32 file in the
same run (interleaved, batch 1, the runtime's session options), check its decisions, keep the first that is
no slower and agrees, and say exactly what of the chosen file is int8 (`edge_agent.manifest.Quantization`).

Candidates, most int8 first (measured on the demo bundle, d=32, AVX-512 VNNI, 1 thread; see bench_inference):
- `dynamic`: int8 weights on every MatMul whose inner dimension exceeds SMALL_K, each input quantized per call
  (`DynamicQuantizeMatMul` after onnxruntime's fusions). About as fast as fp32 at this width: the MatMuls are
  [19..152 x 32..256] @ [.. x 32..96], a few µs each, and the graph's ~110 node dispatches dominate.
- `dynamic-large`: the same on MatMuls with >= LARGE weight elements only (the encoder's patch mix).
- `none`: nothing pays; the file is the fp32 graph and the tier says fp32 (precision and counts).
Static QDQ (fixed activation scales) was measured 11-23 % slower than fp32 here (13 extra QuantizeLinear
nodes): it is a bench variant, not a candidate.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge_agent.manifest import Quantization, sha256_file
from training.export import quantize_int8
from training.ortrun import make_session

logger = logging.getLogger(__name__)

METHODS = ("dynamic", "dynamic-large")
LARGE = 8192  # weight elements: only the encoder's patch-mix MatMul (n_patches * d x d) at d=32
MAX_RATIO = 1.05  # "no slower": median interleaved ratio within the same-run noise of this comparison
INCUMBENT_SLACK = 1.05  # the file already in the bundle is replaced only when clearly slower (no flip-flop)
MIN_AGREEMENT = 0.995  # decision agreement with fp32 on validation windows (issue 20)
INT8_OPS = ("MatMulInteger", "QLinearMatMul", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QAttention")
TIMING_RUNS = 1500

Agreement = Callable[[Path], float | None]  # candidate file -> agreement with fp32 (None: not measured)


def graph_counts(fp32: Path, quantized: Path) -> tuple[int, int, int]:
    """(int8 nodes in `quantized`, MatMul/Gemm nodes with a constant weight in `fp32`, all nodes in `fp32`).

    int8 nodes: integer ops (QOperator/dynamic), and in QDQ format the MatMul/Gemm fed by DequantizeLinear."""
    import onnx

    g = onnx.load(str(fp32)).graph
    inits = {i.name for i in g.initializer}
    weighted = sum(1 for n in g.node if n.op_type in ("MatMul", "Gemm") and n.input[1] in inits)
    q = onnx.load(str(quantized)).graph
    dq = {o for n in q.node if n.op_type == "DequantizeLinear" for o in n.output}
    qdq = sum(1 for n in q.node if n.op_type in ("MatMul", "Gemm") and all(i in dq for i in n.input[:2]))
    return sum(1 for n in q.node if n.op_type in INT8_OPS) + qdq, weighted, len(g.node)


def make_candidate(method: str, src: Path, dst: Path) -> Path:
    """Write `dst`, the `method` variant of the fp32 file `src` (deterministic bytes for the same src)."""
    if method == "dynamic":
        return quantize_int8(src, dst)
    if method == "dynamic-large":
        return quantize_int8(src, dst, min_weight_elements=LARGE)
    if method == "none":
        shutil.copyfile(src, dst)
        return dst
    raise ValueError(f"unknown quantization method {method!r}; one of {', '.join((*METHODS, 'none'))}")


def timing_inputs(path: Path, n_channels: int, n: int = 16, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Batch-1 feeds for the file's fixed time axis: n normalized windows x [1, C, T], every channel live."""
    t = make_session(path).get_inputs()[0].shape[2]
    if not isinstance(t, int):
        raise ValueError(f"{path}: the time axis is not fixed ({t})")
    rng = np.random.default_rng(seed)
    return [
        {
            "x": rng.standard_normal((1, n_channels, t)).astype(np.float32),
            "mask": np.ones((1, n_channels), np.float32),
            "channel_ids": np.arange(n_channels, dtype=np.int64)[None],
        }
        for _ in range(n)
    ]


def interleaved_ratios(
    base: Path, others: list[Path], feeds: list[dict[str, np.ndarray]], runs: int = TIMING_RUNS
) -> tuple[float, list[float]]:
    """(p50 µs of `base`, per other file the median of t_other / t_base over rounds), each round running
    every file once on the same window (in rotating order), so the machine's load hits all of them alike."""
    sessions = [make_session(p) for p in [base, *others]]
    times = np.zeros((len(sessions), runs))
    warm, e = 50, len(sessions)
    for i in range(runs + warm):
        f = feeds[i % len(feeds)]
        for j in range(e):  # the order rotates each round: no file always runs first (cold caches)
            k = (i + j) % e
            t0 = time.perf_counter_ns()
            sessions[k].run(None, f)
            if i >= warm:
                times[k, i - warm] = (time.perf_counter_ns() - t0) / 1000.0
    ratios = [float(np.median(times[k] / times[0])) for k in range(1, len(sessions))]
    return float(np.median(times[0])), ratios


def choose(
    src: Path,
    dst: Path,
    agreement: Agreement,
    feeds: list[dict[str, np.ndarray]],
    runs: int = TIMING_RUNS,
    require_agreement: bool = True,
    max_ratio: float = MAX_RATIO,
    incumbent: str | None = None,
) -> Quantization:
    """Write to `dst` the first candidate (METHODS order) no slower than `src` (ratio <= max_ratio) whose
    agreement is >= MIN_AGREEMENT (or unmeasured when not `require_agreement`); else the fp32 graph ('none').
    `incumbent`: sha256 of the file in the bundle now; that candidate gets INCUMBENT_SLACK on the limit, so a
    re-run on a noisy machine keeps it rather than flipping between near-equal variants."""

    with tempfile.TemporaryDirectory(prefix="edge-agent-quant-") as tmp:
        cands = [make_candidate(m, src, Path(tmp) / f"{m}.onnx") for m in METHODS]
        _, ratios = interleaved_ratios(src, cands, feeds, runs)
        rejected: dict[str, str] = {}
        for method, path, ratio in zip(METHODS, cands, ratios, strict=True):
            if graph_counts(src, path)[0] == 0:  # e.g. dynamic-large on a model with no weight that large
                rejected[method] = "quantizes no node of this graph"
                continue
            limit = max_ratio * (INCUMBENT_SLACK if sha256_file(path) == incumbent else 1.0)
            if ratio > limit:
                rejected[method] = f"{ratio:.3f}x the fp32 time (limit {limit:.3f})"
                continue
            agree = agreement(path)
            if agree is None and require_agreement:
                rejected[method] = "agreement with fp32 not measured"
                continue
            if agree is not None and agree < MIN_AGREEMENT:
                rejected[method] = f"agreement {agree:.4f} < {MIN_AGREEMENT}"
                continue
            shutil.copyfile(path, dst)
            return _record(method, src, dst, ratio, agree, rejected)
        make_candidate("none", src, dst)
        logger.warning("%s: no int8 variant pays (%s); the tier stays fp32", src.name, rejected)
        return _record("none", src, dst, 1.0, 1.0, rejected)


def _record(
    method: str, src: Path, dst: Path, ratio: float, agree: float | None, rejected: dict[str, str]
) -> Quantization:
    q, weighted, total = graph_counts(src, dst)
    logger.info(
        "%s -> %s: %s, %d/%d MatMuls int8, %.3fx fp32", src.name, dst.name, method, q, weighted, ratio
    )
    return Quantization(
        method=method,
        quantized_nodes=q,
        quantizable_nodes=weighted,
        total_nodes=total,
        latency_ratio_vs_fp32=round(ratio, 3),
        agreement_vs_fp32=None if agree is None else round(agree, 5),
        rejected=rejected,
    )
