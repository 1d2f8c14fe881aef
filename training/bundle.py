"""Write a model bundle (the tier ladder + manifest.json + model.pt) atomically; load its torch models back.

Tiers (see DESIGN.md): `full` fp32 full.onnx; `int8` = full quantized; `coarse` = the coarse model (time
factor 4, trained at the pooled resolution) quantized (each file's int8 variant chosen by measurement in
`training.quantize`, recorded per tier; an int8 tier where nothing pays is fp32 and not offered); `focused` = the int8
file (the full model, full time resolution) fed only the channel budget (`channel_budget`: top-k, calendar,
the triggering channels' rooms; the full model is trained on such masks, `training.budgetmask`); `sparse` = the
focused setup run every 5th periodic tick. `model.pt` carries both torch
models (state dict + config) for evaluation and retraining; the runtime reads only the manifest's files.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from edge_agent.features import event_rows, pool_time
from edge_agent.manifest import (
    MANIFEST_NAME,
    ChannelSpec,
    DeviceSpec,
    Manifest,
    Precision,
    Quantization,
    SplitRecord,
    TierSpec,
    sha256_file,
    write_manifest,
)
from training.decisions import agreement
from training.export import export_onnx, fsync_dir, parity
from training.model import CatVsn, ModelConfig
from training.ortrun import make_session, ort_latency, run_batched
from training.quantize import choose, timing_inputs

logger = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
Evaluator = Callable[[Path, list[ChannelSpec], list[DeviceSpec]], dict[str, float]]
SPARSE_EVERY = 5  # the sparse tier runs on every 5th periodic tick


@dataclass
class BundleSpec:
    """Everything the manifest needs besides the models."""

    version: str
    dataset: str
    step_seconds: float
    window: int
    channels: list[ChannelSpec]
    devices: list[DeviceSpec]
    channel_budget: int  # k of the focused/sparse tiers
    training_span: tuple[str, str] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    created: str | None = None  # ISO 8601 UTC; None = now (fixed for a reproducible demo bundle)
    timezone: str | None = None  # the home's IANA zone the calendar inputs were computed in (manifest)
    split: SplitRecord | None = None  # the train/val/test split (manifest)
    threshold_rule: str | None = None  # the rule the binary thresholds were chosen by (manifest)


def default_budget(n_channels: int) -> int:
    """Top-k of the focused tier: 3 of 5 (UCI), 8 of a home's ~16, never more than C - 1 (if C > 1)."""
    if n_channels <= 2:
        return 1
    return max(1, min(8, round(0.6 * n_channels), n_channels - 1))


def save_models(path: Path, full: CatVsn, coarse: CatVsn, time_factor: int) -> None:
    torch.save(
        {
            "full": {"config": full.cfg.to_dict(), "state": full.state_dict()},
            "coarse": {"config": coarse.cfg.to_dict(), "state": coarse.state_dict()},
            "time_factor": time_factor,
        },
        path,
    )


def _choose(
    src: Path, dst: Path, pool: tuple[np.ndarray, np.ndarray, np.ndarray], devices: list[DeviceSpec]
) -> Quantization:
    """The int8 variant of `src` that pays (`training.quantize.choose`), its agreement on `pool`."""
    x, mask, ids = pool
    ref = run_batched(make_session(src), x, mask, ids)[0]

    def agree(cand: Path) -> float:
        return agreement(ref, run_batched(make_session(cand), x, mask, ids)[0], devices)

    return choose(src, dst, agree, timing_inputs(src, x.shape[1]))


def _precision(q: Quantization) -> Precision:
    return "int8" if q.quantized_nodes > 0 else "fp32"


def load_models(bundle_dir: Path) -> tuple[CatVsn, CatVsn, int]:
    """(full model, coarse model, time factor) from `bundle_dir/model.pt`, in eval mode."""
    blob = torch.load(Path(bundle_dir) / MODEL_FILE, map_location="cpu", weights_only=False)
    models = []
    for key in ("full", "coarse"):
        m = CatVsn(ModelConfig.from_dict(blob[key]["config"]))
        state = dict(blob[key]["state"])
        emb = state.get("kind_emb.weight")
        rows = m.kind_emb.weight.shape[0]
        if emb is not None and emb.shape[0] < rows:  # saved before kinds were appended: unused rows are 0
            state["kind_emb.weight"] = torch.cat([emb, emb.new_zeros(rows - emb.shape[0], emb.shape[1])])
        m.load_state_dict(state)
        models.append(m.eval())
    return models[0], models[1], int(blob["time_factor"])


def write_bundle(
    out_dir: Path,
    spec: BundleSpec,
    full: CatVsn,
    coarse: CatVsn,
    time_factor: int,
    pool: tuple[np.ndarray, np.ndarray, np.ndarray],
    latency_runs: int = 1000,
    extra_files: dict[str, str] | None = None,
    evaluate: Evaluator | None = None,
) -> Manifest:
    """Export, quantize, check, time and write the bundle to `out_dir` (temp dir + rename).

    pool: normalized validation windows (x [N, C, T], mask [N, C], ids [N, C]) used for the int8 agreement
    check and the latency measurement. extra_files: name -> text written next to the manifest (not read by
    the runtime), e.g. training.json. evaluate(dir, channels, devices) -> metrics: run on the exported tiers
    before the manifest is written (e.g. held-out agreement of the int8 tier); merged into its metrics.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MANIFEST_NAME).exists():
        raise FileExistsError(f"{out_dir} exists and is not a model bundle; pick an empty or new directory")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        manifest = _build(tmp, spec, full, coarse, time_factor, pool, latency_runs, evaluate)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        tmp.chmod(0o755)  # mkdtemp makes it 0700; the service user must be able to read the bundle
        fsync_dir(tmp)
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("wrote bundle %s (%s)", out_dir, ", ".join(t.name for t in manifest.tiers))
    return manifest


def _build(
    tmp: Path,
    spec: BundleSpec,
    full: CatVsn,
    coarse: CatVsn,
    time_factor: int,
    pool: tuple[np.ndarray, np.ndarray, np.ndarray],
    latency_runs: int,
    evaluate: Evaluator | None = None,
) -> Manifest:
    full, coarse = full.eval(), coarse.eval()
    export_onnx(full, tmp / "full.onnx")
    coarse_fp32 = tmp / "coarse-fp32.onnx"
    export_onnx(coarse, coarse_fp32)
    metrics = dict(spec.metrics)
    x, mask, ids = pool
    xc = pool_time(
        x, time_factor, event_rows([c.kind for c in spec.channels])
    )  # [N, C, T // f], the runtime's
    quant = {  # tier file -> the int8 variant that pays, or none (training.quantize)
        "int8.onnx": _choose(tmp / "full.onnx", tmp / "int8.onnx", (x, mask, ids), spec.devices),
        "coarse.onnx": _choose(coarse_fp32, tmp / "coarse.onnx", (xc, mask, ids), spec.devices),
    }
    metrics["onnx_max_abs_error"] = max(
        parity(full, tmp / "full.onnx", real=pool), parity(coarse, coarse_fp32, real=(xc, mask, ids))
    )
    coarse_fp32.unlink()
    save_models(tmp / MODEL_FILE, full, coarse, time_factor)

    ref = run_batched(make_session(tmp / "full.onnx"), x, mask, ids)[0]
    q = run_batched(make_session(tmp / "int8.onnx"), x, mask, ids)[0]
    metrics["int8_max_abs_error"] = float(np.abs(ref - q).max())
    metrics["int8_agreement_val"] = agreement(ref, q, spec.devices)
    k = spec.channel_budget
    lat_pool = min(len(x), 64)
    files = {"full": "full.onnx", "int8": "int8.onnx", "coarse": "coarse.onnx"}
    tiers: list[TierSpec] = []
    for name, file, prec, tf, budget, every in [
        ("full", files["full"], "fp32", 1, None, 1),
        ("int8", files["int8"], _precision(quant["int8.onnx"]), 1, None, 1),
        ("coarse", files["coarse"], _precision(quant["coarse.onnx"]), time_factor, None, 1),
        # the budgeted tiers: the int8 full model on fewer channels (the coarse model disagreed with full on
        # events even on every channel; training.budgetmask trains full on budget-shaped masks)
        ("focused", files["int8"], _precision(quant["int8.onnx"]), 1, k, 1),
        ("sparse", files["int8"], _precision(quant["int8.onnx"]), 1, k, SPARSE_EVERY),
    ]:
        xt = xc if tf > 1 else x
        c = budget or x.shape[1]
        lat = ort_latency(
            make_session(tmp / file),
            xt[:lat_pool, :c],
            mask[:lat_pool, :c],
            ids[:lat_pool, :c],
            n=latency_runs,
        )
        tiers.append(
            TierSpec(
                name=name,
                file=file,
                sha256=sha256_file(tmp / file),
                precision=prec,
                time_factor=tf,
                channel_budget=budget,
                every_n_ticks=every,
                latency_us_p50=round(lat["p50"], 1),
                latency_us_p99=round(lat["p99"], 1),
                quantization=quant.get(file),
                offered=not (
                    name == "int8" and quant["int8.onnx"].method == "none"
                ),  # = TierSpec.unpaid_int8
            )
        )
    if evaluate is not None:
        metrics.update(evaluate(tmp, spec.channels, spec.devices))
    undefined = sorted(k for k, v in metrics.items() if not math.isfinite(float(v)))
    if undefined:  # JSON has no NaN: it would be written as null and the manifest could not be read back
        logger.warning("metrics left out of the manifest (undefined, e.g. one class only): %s", undefined)
    manifest = Manifest(
        version=spec.version,
        created=spec.created or datetime.now(UTC).isoformat(timespec="seconds"),
        dataset=spec.dataset,
        step_seconds=spec.step_seconds,
        window=spec.window,
        channels=spec.channels,
        devices=spec.devices,
        tiers=tiers,
        timezone=spec.timezone,
        training_span=spec.training_span,
        split=spec.split,
        threshold_rule=spec.threshold_rule,
        metrics={k: float(v) for k, v in metrics.items() if k not in undefined},
    )
    write_manifest(tmp, manifest)
    return manifest
