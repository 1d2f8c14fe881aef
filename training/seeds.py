"""Robustness over seeds: one bundle per seed (`train --seeds 0,1,2`), one report over them (`evaluate --seeds`).

Layout: `train --seeds 0,1,2 --out DIR` writes the bundles `DIR/seed-0`, `DIR/seed-1`, ... (trained one after
the other, each exactly as `train --seed N --out DIR/seed-N` would) and `DIR/seeds.json` (which seeds, which
versions). `evaluate DIR --seeds 0,1,2` (or `evaluate DIR` on such a directory: every seed in seeds.json)
evaluates each seed's bundle as `evaluate` does one bundle, then writes ONE report: the same tree as a
single report, where every figure is replaced by its statistics over the seeds (`aggregate`):
`{"mean", "std", "min", "max", "n"}`, std being the sample standard deviation (n - 1; 0 for one seed).
Strings and flags that differ between seeds become the list of per-seed values. The per-seed reports are
written beside `--json` (`NAME.seed-N.json`); the Markdown (training.report) shows mean ± std and a
per-seed table of the headline accuracies.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.errors import DataError, OutputError

logger = logging.getLogger(__name__)

SEEDS_FILE = "seeds.json"
STAT_KEYS = ("mean", "std", "min", "max", "n")
SPREAD = "sample standard deviation over the seeds (n - 1); min and max of every figure in report.json"


def parse_seeds(text: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2]; DataError (naming --seeds and the fix) on anything else or duplicates."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        seeds = [int(p) for p in parts]
    except ValueError:
        raise DataError(
            f"--seeds {text!r}: not a comma-separated list of integers; e.g. --seeds 0,1,2"
        ) from None
    if not seeds or any(s < 0 for s in seeds):
        raise DataError(f"--seeds {text!r}: give one or more seeds >= 0, e.g. --seeds 0,1,2")
    if len(set(seeds)) != len(seeds):
        raise DataError(f"--seeds {text!r}: a seed is repeated; give each seed once")
    return seeds


def seed_dir(out: Path, seed: int) -> Path:
    return Path(out) / f"seed-{seed}"


def write_seeds_file(out: Path, seeds: Sequence[int], versions: dict[int, str]) -> Path:
    path = Path(out) / SEEDS_FILE
    blob = {"seeds": list(seeds), "bundles": {str(s): seed_dir(Path("."), s).name for s in seeds}}
    blob["versions"] = {str(s): v for s, v in versions.items()}
    path.write_text(json.dumps(blob, indent=2), encoding="utf-8")
    return path


def check_seeds_out(out: Path) -> None:
    """`train --seeds --out DIR`: DIR is new, empty, or an earlier seeds directory (OutputError otherwise)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: exists and is a file; give a directory path")
    if (out / "manifest.json").exists():
        raise OutputError(
            f"--out {out}: is a single bundle; with --seeds give a new directory (one bundle per seed)"
        )
    if out.is_dir() and any(out.iterdir()) and not (out / SEEDS_FILE).exists():
        raise OutputError(f"--out {out}: exists, is not empty and is not a --seeds directory; give a new one")


def is_seeds_dir(path: Path) -> bool:
    return (Path(path) / SEEDS_FILE).is_file() and not (Path(path) / "manifest.json").exists()


def seed_bundles(path: Path, seeds: Sequence[int] | None) -> list[tuple[int, Path]]:
    """(seed, bundle directory) per seed: the given seeds, else every seed of `path`'s seeds.json."""
    path = Path(path)
    if seeds is None:
        try:
            seeds = [int(s) for s in json.loads((path / SEEDS_FILE).read_text(encoding="utf-8"))["seeds"]]
        except (OSError, ValueError, KeyError, TypeError):
            raise DataError(
                f"{path / SEEDS_FILE}: unreadable; give the seeds with --seeds 0,1,2 or retrain with --seeds"
            ) from None
    out = []
    for s in seeds:
        d = seed_dir(path, s)
        if not (d / "manifest.json").is_file():
            raise DataError(
                f"--seeds: no bundle for seed {s} ({d} has no manifest.json); train it with "
                f"`train --seeds ... --out {path}` or leave the seed out"
            )
        out.append((s, d))
    return out


# ---- aggregation (pure) ----------------------------------------------------------------------------------


def stat(values: Sequence[float]) -> dict[str, float] | None:
    """{"mean", "std" (sample, n - 1; 0 for n = 1), "min", "max", "n"} of the finite values (None: none)."""
    v = np.asarray([float(x) for x in values if x is not None and math.isfinite(float(x))], np.float64)
    if v.size == 0:
        return None
    return {
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
        "min": float(v.min()),
        "max": float(v.max()),
        "n": int(v.size),
    }


def is_stat(v: Any) -> bool:
    return isinstance(v, dict) and tuple(v) == STAT_KEYS


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def aggregate(reports: Sequence[Any]) -> Any:
    """Per-seed values of one node -> their aggregate: numbers -> `stat`; dicts key by key (over the seeds
    that have the key); equal-length number lists element-wise; other values kept when equal across seeds,
    else the list of per-seed values. None means "no figure" and is left out of the statistics."""
    present = [r for r in reports if r is not None]
    if not present:
        return None
    if all(isinstance(r, dict) for r in present):
        keys: list[str] = []
        for r in present:
            keys += [k for k in r if k not in keys]
        return {k: aggregate([r[k] for r in present if k in r]) for k in keys}
    if all(_number(r) for r in present):
        return stat(present)
    if all(isinstance(r, list) for r in present):
        n = len(present[0])
        if n and all(len(r) == n and all(_number(x) or x is None for x in r) for r in present):
            return [stat([r[i] for r in present]) for i in range(n)]
    if all(r == present[0] for r in present):
        return present[0]
    return list(present)


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """One seed's headline figures: accuracy per tier and split, and per baseline and split."""
    out: dict[str, Any] = {"version": report.get("version")}
    for tier, r in report["tiers"].items():
        for s, v in r.items():
            if s != "latency_us":
                out[f"{tier}.{s}"] = v.get("accuracy")
    for name, r in report.get("baselines", {}).items():
        for s, v in r.items():
            out[f"{name}.{s}"] = v.get("accuracy")
    out["faithfulness_top1_min"] = report.get("faithfulness_top1_min")
    return out


TRAIN_METRICS = ("train_seconds", "epochs_run", "best_epoch_full", "steps_run", "val_loss_full")


def seeds_report(
    per_seed: dict[int, dict[str, Any]], training: dict[int, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The one report over seeds: `aggregate` of the per-seed reports + seeds, spread rule, per-seed headline
    and (from each manifest) the training figures (train_seconds, epochs, steps; stop reason per seed)."""
    seeds = list(per_seed)
    rep = aggregate([per_seed[s] for s in seeds])
    rep["seeds"] = seeds
    rep["spread"] = SPREAD
    rep["per_seed"] = {str(s): headline(per_seed[s]) for s in seeds}
    if training:
        rep["training"] = aggregate([{k: training[s].get(k) for k in TRAIN_METRICS} for s in seeds])
        rep["training"]["stop_reason"] = {str(s): training[s].get("stop_reason") for s in seeds}
    return rep


# ---- the CLI's seed paths --------------------------------------------------------------------------------


def _training_figures(bundle: Path) -> dict[str, Any]:
    from edge_agent.manifest import read_manifest
    from training.pipeline import read_training_meta

    fig: dict[str, Any] = {k: read_manifest(bundle).metrics.get(k) for k in TRAIN_METRICS}
    fig["stop_reason"] = (read_training_meta(bundle) or {}).get("stop_reason")
    return fig


def evaluate_seeds_cli(
    args: argparse.Namespace, eval_drop: list[str], calendar: list[str] | None, seeds: list[int] | None
) -> int:
    """`evaluate DIR [--seeds ...]`: every seed's bundle evaluated, one report over them written."""
    from training.evaluate import evaluate_report, jsonable
    from training.report import markdown

    if args.plot:
        raise DataError("--plot: one bundle at a time; plot a seed's bundle (DIR/seed-N) without --seeds")
    bundles = seed_bundles(Path(args.bundle), seeds)
    per_seed, training = {}, {}
    for s, b in bundles:
        rep, _ = evaluate_report(b, args, eval_drop, calendar)
        per_seed[s] = jsonable(rep)
        training[s] = _training_figures(b)
        logger.info("seed %s evaluated: %s", s, b)
        if args.json_out:
            p = Path(args.json_out)
            p.with_name(f"{p.stem}.seed-{s}{p.suffix or '.json'}").write_text(
                json.dumps(per_seed[s], indent=2), encoding="utf-8"
            )
    report = jsonable(seeds_report(per_seed, training))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2), encoding="utf-8")
    if args.markdown:
        Path(args.markdown).write_text(markdown(report), encoding="utf-8")
    print(summary_line(report))
    return 0


def _ms(v: Any, scale: float = 100.0) -> str:
    if not is_stat(v):
        return "–"
    return f"{v['mean'] * scale:.2f}±{v['std'] * scale:.2f}"


def summary_line(report: dict[str, Any]) -> str:
    """One line: per tier and split mean ± std accuracy, the baselines the same way, seeds and train time."""
    parts = []
    for tier, r in report["tiers"].items():
        parts.append(
            tier + " " + "/".join(_ms(v["accuracy"]) for k, v in r.items() if k != "latency_us") + "%"
        )
    base = []
    for name in [n for n in ("lda", "majority", "gbdt_window") if n in report.get("baselines", {})]:
        base.append(
            name + " " + "/".join(_ms(v["accuracy"]) for v in report["baselines"][name].values()) + "%"
        )
    tr = (report.get("training") or {}).get("train_seconds")
    secs = f"; train {tr['mean']:.0f}±{tr['std']:.0f}s" if is_stat(tr) else ""
    return (
        f"seeds {','.join(str(s) for s in report['seeds'])} (mean±std): "
        + "; ".join(parts + base)
        + f"; faithfulness_top1 {_ms(report.get('faithfulness_top1'), 1.0)}{secs}"
    )
