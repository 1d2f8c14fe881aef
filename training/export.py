"""ONNX export, torch-vs-onnxruntime parity, dynamic int8 quantization, torch eager latency.

Export uses the dynamo exporter (opset 20, one self-contained file) with dynamic batch and channel axes, so a
tier can be fed any subset of channels; the time axis is fixed per file (full: window, coarse: window // 4).
Quantization: `quant_pre_process(skip_symbolic_shape=True)` then `quantize_dynamic(QInt8)` on MatMul/Gemm
only (LayerNorm/Softmax/masking stay in float): measured the fastest and most faithful int8 variant here.
Which variant a tier keeps (or none) is chosen by measurement in `training.quantize`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from training.model import CatVsn
from training.ortrun import make_session, run_session, time_calls

logger = logging.getLogger(__name__)

OPSET = 20
INPUT_NAMES = ["x", "mask", "channel_ids"]
OUTPUT_NAMES = ["devices", "confidence", "attention"]
SMALL_K = 16  # MatMuls with an inner dimension this small stay float in the int8 files


def example_inputs(
    n_channels: int, window: int, batch: int = 2, seed: int = 0, p_mask: float = 0.3
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random (x [B, C, T], mask [B, C], channel_ids [B, C]) with >= 1 live channel per row."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n_channels, window, generator=g)
    mask = (torch.rand(batch, n_channels, generator=g) > p_mask).float()
    mask[:, 0] = 1.0
    ids = torch.stack([torch.randperm(n_channels, generator=g) for _ in range(batch)])
    return x, mask, ids


def export_onnx(model: CatVsn, path: Path) -> Path:
    """Export `model` (eval mode) to one self-contained ONNX file with dynamic batch/channel axes."""
    model = model.eval()
    n_ch = len(model.cfg.channel_kinds)
    args = example_inputs(n_ch, model.cfg.window)
    batch = torch.export.Dim("batch", min=1, max=65536)
    chans = torch.export.Dim("channels", min=1, max=4096)
    dyn = {name: {0: batch, 1: chans} for name in INPUT_NAMES}
    sink = io.StringIO()
    # The exporter prints progress lines and harmless warnings (torchvision, axis renames) on every call.
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), _quiet_loggers():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            args,
            str(path),
            input_names=INPUT_NAMES,
            output_names=OUTPUT_NAMES,
            dynamo=True,
            external_data=False,
            opset_version=OPSET,
            dynamic_shapes=dyn,
            verbose=False,
        )
    _strip_metadata(path)
    return path


def _strip_metadata(path: Path) -> None:
    """Drop the exporter's per-node debug metadata (module paths, FX node text, stack traces).

    It tripled the int8 file sizes and varies with the environment, so identical weights gave different
    bytes (and sha256) from one build to the next.
    """
    import onnx

    model = onnx.load(str(path))
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    onnx.save(model, str(path))


@contextlib.contextmanager
def _quiet_loggers():  # type: ignore[no-untyped-def]
    names = ["torch.onnx", "onnxscript", "torch._export", "torch.export", "onnx_ir"]
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in names]
    for lg, _ in saved:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in saved:
            lg.setLevel(level)


def parity(
    model: CatVsn,
    onnx_path: Path,
    n: int = 64,
    seed: int = 1,
    real: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> float:
    """Max abs difference of all three outputs, torch vs onnxruntime, on the same inputs.

    Covers batch 1 and n, all channels and random subsets/orders with random masks, plus `real` windows
    (x, mask, ids) if given: random inputs can saturate a trained model's outputs and hide differences.
    """
    model = model.eval()
    sess = make_session(onnx_path)
    n_ch = len(model.cfg.channel_kinds)
    worst = 0.0
    for b, c, s in [(1, n_ch, seed), (n, n_ch, seed + 1), (n, max(1, n_ch // 2), seed + 2), (3, 1, seed + 3)]:
        x, mask, ids = example_inputs(n_ch, model.cfg.window, batch=b, seed=s)
        x, mask, ids = x[:, :c], mask[:, :c], ids[:, :c]
        mask[:, 0] = 1.0
        with torch.inference_mode():
            ref = model(x, mask, ids)
        got = run_session(sess, x.numpy(), mask.numpy(), ids.numpy())
        for r, o in zip(ref, got, strict=True):
            worst = max(worst, float(np.abs(r.numpy() - o).max()))
    if real is not None:
        x, mask, ids = (np.ascontiguousarray(a[:256]) for a in real)
        with torch.inference_mode():
            ref = model(torch.from_numpy(x), torch.from_numpy(mask), torch.from_numpy(ids))
        got = run_session(sess, x, mask, ids)
        worst = max([worst] + [float(np.abs(r.numpy() - o).max()) for r, o in zip(ref, got, strict=True)])
    return worst


def quantize_int8(src: Path, dst: Path, min_weight_elements: int = 0) -> Path:
    """Dynamic int8 (QInt8 weights) on MatMul/Gemm after pre-processing `src`; writes `dst`.

    MatMuls with a small inner dimension stay float (`_small_matmuls`), and so do those whose weight has
    fewer than `min_weight_elements` elements (training.quantize's `dynamic-large` candidate)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        with warnings.catch_warnings(), _quiet_loggers():
            warnings.simplefilter("ignore")
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            quantize_dynamic(
                str(pre),
                str(dst),
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul", "Gemm"],
                nodes_to_exclude=_small_matmuls(pre, min_weight_elements),
            )
    return dst


def _small_matmuls(path: Path, min_weight_elements: int = 0) -> list[str]:
    """MatMul/Gemm nodes with a tiny inner dimension (the patch embedding K=patch, the stats K=2), or with
    fewer than `min_weight_elements` weight elements.

    Their input is the raw window, whose per-tensor dynamic int8 range is set by the widest channel; keeping
    them in float halved the int8 output error at no measurable latency cost (they are ~1% of the FLOPs).
    """
    import onnx

    graph = onnx.load(str(path)).graph
    inits = {i.name: i for i in graph.initializer}
    return [
        n.name
        for n in graph.node
        if n.op_type in ("MatMul", "Gemm")
        and n.input[1] in inits
        and len(inits[n.input[1]].dims) == 2
        and (
            inits[n.input[1]].dims[0] <= SMALL_K
            or inits[n.input[1]].dims[0] * inits[n.input[1]].dims[1] < min_weight_elements
        )
    ]


def torch_latency(
    model: CatVsn, x: np.ndarray, mask: np.ndarray, channel_ids: np.ndarray, n: int = 1000
) -> dict[str, float]:
    """Torch eager batch-1 latency (us) at 1 thread, inference_mode, cycling through the window pool."""
    model = model.eval()
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        xs = [torch.from_numpy(np.ascontiguousarray(x[i : i + 1], dtype=np.float32)) for i in range(len(x))]
        ms = [
            torch.from_numpy(np.ascontiguousarray(mask[i : i + 1], dtype=np.float32)) for i in range(len(x))
        ]
        ids = [
            torch.from_numpy(np.ascontiguousarray(channel_ids[i : i + 1], dtype=np.int64))
            for i in range(len(x))
        ]

        def call(i: int) -> object:
            j = i % len(xs)
            with torch.inference_mode():
                return model(xs[j], ms[j], ids[j])

        return time_calls(call, n)
    finally:
        torch.set_num_threads(prev)


def fsync_dir(path: Path) -> None:
    """fsync every file in `path` and the directory itself (bundle durability before the rename)."""
    for p in path.iterdir():
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
