"""`python -m training requantize --bundle DIR`: re-choose the int8 files of an existing bundle without
retraining (training.quantize), and update the manifest's int8 figures.

The fp32 sources are the bundle's `full.onnx` and the coarse model of `model.pt`, re-exported. Idempotent:
quantization is deterministic, so when the chosen files are the bundle's own bytes and their choice is already
recorded, nothing is written. The int8 tier's agreement with fp32 is the manifest's `int8_agreement_val` when
its file is unchanged; a changed file is checked on the validation windows of the bundle's own training data
(rebuilt from training.json: minutes for a simulated year). Written like a bundle: temp copy, then rename.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent.features import event_rows, pool_time
from edge_agent.inference import verify_bundle
from edge_agent.manifest import Manifest, Quantization, TierSpec, sha256_file, write_manifest
from training.decisions import agreement
from training.errors import DataError
from training.export import export_onnx, fsync_dir
from training.ortrun import make_session, ort_latency, run_batched
from training.quantize import choose, timing_inputs

logger = logging.getLogger(__name__)

Pool = tuple[np.ndarray, np.ndarray, np.ndarray]  # normalized x [N, C, T], mask [N, C], ids [N, C]


@dataclass
class Outcome:
    changed: list[str]  # tier files rewritten
    records: dict[str, Quantization]  # file -> what was chosen
    manifest: Manifest


def validation_pool(bundle: Path, man: Manifest) -> Pool:
    """The bundle's validation windows, rebuilt from training.json as training built them."""
    from training.data import WindowSampler
    from training.evaldata import _trained_spec
    from training.pipeline import load_splits, read_training_meta
    from training.train import strided, windows

    meta = read_training_meta(bundle)
    if meta is None:
        raise DataError(f"{bundle}: no training.json, so its validation windows cannot be rebuilt")
    logger.warning("rebuilding the validation windows of %s (%s)", bundle, meta["data"]["dataset"])
    val = load_splits(_trained_spec(meta))["val"]
    mean = np.array([c.mean for c in man.channels], np.float32)  # [C]
    std = np.array([c.std for c in man.channels], np.float32)  # [C]
    sampler = WindowSampler(val, man.window)
    n = int(meta.get("train_config", {}).get("max_val_windows", 20_000))
    x, mask, ids, _ = windows(sampler, strided(sampler.ends, n), mean, std)
    return x, mask, ids


def requantize(
    bundle: Path, runs: int = 1500, latency_runs: int = 1000, force: bool = False, pool: Pool | None = None
) -> Outcome:
    """Re-choose `int8.onnx` and the coarse file of `bundle` in place (see the module docstring); `force`
    rewrites the quantization records (fresh timing ratios) even when nothing changed; `pool`: the windows to
    check agreement on (None: the bundle's validation windows, rebuilt only if needed)."""
    from training.bundle import load_models

    bundle = Path(bundle)
    man = verify_bundle(bundle)
    _, coarse_model, factor = load_models(bundle)
    c = len(man.channels)
    ev = event_rows([ch.kind for ch in man.channels])  # [C]
    pools: list[Pool] = [] if pool is None else [pool]

    def val() -> Pool:
        if not pools:
            pools.append(validation_pool(bundle, man))
        return pools[0]

    with tempfile.TemporaryDirectory(prefix=".requant-", dir=bundle.parent) as tmp_s:
        tmp = Path(tmp_s)
        coarse_fp32 = export_onnx(coarse_model, tmp / "coarse-fp32.onnx")
        records: dict[str, Quantization] = {}
        metrics = dict(man.metrics)
        int8_tier = _tier(man, "int8")
        coarse_tier = _tier(man, "coarse")

        if int8_tier is not None:
            full, out = bundle / _tier_file(man, "full"), tmp / int8_tier.file

            def agree_int8(cand: Path) -> float:
                known = metrics.get("int8_agreement_val")
                if sha256_file(cand) == int8_tier.sha256 and known is not None:
                    return float(known)
                x, mask, ids = val()
                ref = run_batched(make_session(full), x, mask, ids)[0]
                q = run_batched(make_session(cand), x, mask, ids)[0]
                return agreement(ref, q, man.devices)

            feeds = timing_inputs(full, c)
            records[int8_tier.file] = choose(full, out, agree_int8, feeds, runs, incumbent=int8_tier.sha256)
            if sha256_file(out) != int8_tier.sha256:
                x, mask, ids = val()
                ref = run_batched(make_session(full), x, mask, ids)[0]
                q = run_batched(make_session(out), x, mask, ids)[0]
                metrics["int8_max_abs_error"] = float(np.abs(ref - q).max())
                metrics["int8_agreement_val"] = agreement(ref, q, man.devices)

        if coarse_tier is not None:

            def agree_coarse(cand: Path) -> float | None:
                if not pools:  # only measured when the validation windows are at hand anyway
                    return None
                x, mask, ids = pools[0]
                xc = pool_time(x, factor, ev)  # [N, C, T // f], the runtime's pooling
                ref = run_batched(make_session(coarse_fp32), xc, mask, ids)[0]
                return agreement(ref, run_batched(make_session(cand), xc, mask, ids)[0], man.devices)

            out = tmp / coarse_tier.file
            feeds = timing_inputs(coarse_fp32, c)
            records[coarse_tier.file] = choose(
                coarse_fp32,
                out,
                agree_coarse,
                feeds,
                runs,
                require_agreement=False,
                incumbent=coarse_tier.sha256,
            )

        changed = [f for f in records if sha256_file(tmp / f) != _sha_of(man, f)]
        unrecorded = [t.name for t in man.tiers if t.file in records and t.quantization is None]
        if not changed and not unrecorded and not force:
            logger.info("%s: int8 files and their records are up to date; nothing written", bundle)
            return Outcome([], records, man)
        tiers = [_updated(t, tmp, records, changed, latency_runs, c, ev) for t in man.tiers]
        new = man.model_copy(update={"tiers": tiers, "metrics": metrics})
        _replace(bundle, tmp, changed, new)
        return Outcome(changed, records, new)


def _tier(man: Manifest, name: str) -> TierSpec | None:
    return next((t for t in man.tiers if t.name == name), None)


def _tier_file(man: Manifest, name: str) -> str:
    t = _tier(man, name)
    if t is None:
        raise DataError(f"bundle {man.version}: no {name!r} tier to quantize from")
    return t.file


def _sha_of(man: Manifest, file: str) -> str:
    return next(t.sha256 for t in man.tiers if t.file == file)


def _updated(
    t: TierSpec,
    tmp: Path,
    records: dict[str, Quantization],
    changed: list[str],
    latency_runs: int,
    n_channels: int,
    ev: np.ndarray,
) -> TierSpec:
    q = records.get(t.file)
    if q is None:
        return t
    upd: dict[str, object] = {
        "quantization": q,
        "precision": "int8" if q.quantized_nodes > 0 else "fp32",
    }
    if t.name == "int8" and q.method == "none":
        upd["offered"] = False  # an fp32 copy of `full` is no cheaper: keep it off the ladder, say why
    if t.file in changed:
        f = tmp / t.file
        feeds = timing_inputs(f, n_channels, n=64, seed=1)
        k = t.channel_budget or n_channels
        lat = ort_latency(
            make_session(f),
            np.concatenate([d["x"][:, :k] for d in feeds]),
            np.concatenate([d["mask"][:, :k] for d in feeds]),
            np.concatenate([d["channel_ids"][:, :k] for d in feeds]),
            n=latency_runs,
        )
        upd.update(
            sha256=sha256_file(f),
            latency_us_p50=round(lat["p50"], 1),
            latency_us_p99=round(lat["p99"], 1),
            event_check=None,  # measured on the old file: no longer says anything about this one
        )
        if not t.offered:
            upd["offered"] = False  # a tier that failed its event test is not re-offered by a requantize
    return t.model_copy(update=upd)


def _replace(bundle: Path, tmp: Path, changed: list[str], man: Manifest) -> None:
    """Copy the bundle, put the changed files and the new manifest in, validate, then swap directories."""
    stage = Path(tempfile.mkdtemp(prefix=f".{bundle.name}.requant-", dir=bundle.parent))
    try:
        shutil.copytree(bundle, stage, dirs_exist_ok=True)
        for f in changed:
            shutil.copyfile(tmp / f, stage / f)
        write_manifest(stage, Manifest.model_validate(man.model_dump()))
        verify_bundle(stage)
        stage.chmod(0o755)
        fsync_dir(stage)
        old = bundle.with_name(f".{bundle.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        bundle.rename(old)
        stage.rename(bundle)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
