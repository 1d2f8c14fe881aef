"""What `evaluate` fits on and what it scores: the manifest's split unless told otherwise, never silently.

    fit     train + val of the bundle's own training split (training.json), whatever is scored: the
            baselines are fitted on train, thresholds (when `--threshold-rule` re-chooses them) on val
    scored  by default the test part(s) of that split; `--test-dataset FILE` or `--dataset FILE --whole`:
            the whole file as `test`; `--dataset` of the SAME data (any spelling: csv:PATH, PATH, relative)
            with `--split A,B`: that split's test part. A different dataset without `--whole` or `--split`
            is an error (it used to be re-split 70/15/15 with baselines refitted on its first 70 %).

Scored rows that fall inside the bundle's training span are an error naming both spans. A bundle without
training.json (written by another tool) is evaluated on `--dataset` cut by its own split, and the report
says so.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edge_agent.manifest import Manifest
from training.data import DataError, add_calendar_channels
from training.data.sidecar import sidecar_candidates
from training.pipeline import DataSpec, load_splits, read_training_meta, test_split_names
from training.sensorlog import SensorLog
from training.splitfiles import (
    canonical_dataset,
    check_not_training,
    check_same_columns,
    iso,
    load_file,
    same_dataset,
    span,
)


@dataclass
class EvalData:
    fit: dict[str, SensorLog]  # 'train', 'val': the bundle's training split
    scored: dict[str, SensorLog]  # 'test'[, 'test2']: what the tiers and baselines are scored on
    split: dict[str, Any] = field(default_factory=dict)  # for the report: rule, fit spans, scored spans
    dataset: str = ""


def _trained_spec(meta: dict[str, Any]) -> DataSpec:
    names = {f.name for f in dataclasses.fields(DataSpec)}
    return DataSpec(**{k: v for k, v in meta.get("data", {}).items() if k in names})


def _describe(parts: dict[str, SensorLog], sources: dict[str, str], whole: bool = False) -> dict[str, Any]:
    out = {}
    for k, log in parts.items():
        f, la = span(log)
        out[k] = {"source": sources.get(k, ""), "first": iso(f), "last": iso(la), "rows": len(log)}
        if whole:
            out[k]["whole_file"] = True
    return out


def _training_span(man: Manifest, fit: dict[str, SensorLog]) -> tuple[str, str]:
    if man.split is not None and "train" in man.split.parts:
        p = man.split.parts["train"]
        if p.first and p.last:
            return p.first, p.last
    if man.training_span is not None:
        return man.training_span
    f, la = span(fit["train"])
    return iso(f), iso(la)


def _scored_sidecar(path: str, given: str | None, trained: str | None) -> str | None:
    """--sidecar if given, else the file's own (found next to it), else the training file's."""
    if given:
        return given
    if any(c.is_file() for c in sidecar_candidates(Path(path.removeprefix("csv:")))):
        return None
    return trained


def _with_calendar(log: SensorLog, spec: DataSpec) -> SensorLog:
    cal = spec.calendar_channels()
    return add_calendar_channels(log, cal) if cal else log


def resolve(man: Manifest, bundle: Path, args: argparse.Namespace, calendar: list[str] | None) -> EvalData:
    """The fit and scored parts for `evaluate` (module docstring). DataError on a mismatch."""
    meta = read_training_meta(bundle)
    whole_file = getattr(args, "test_dataset", None) or (
        args.dataset if getattr(args, "whole", False) else None
    )
    if getattr(args, "whole", False) and not args.dataset:
        raise DataError("--whole: give the file to score whole with --dataset FILE")
    if getattr(args, "whole", False) and getattr(args, "test_dataset", None):
        raise DataError("--whole with --test-dataset: give one of them (both mean 'score this file whole')")
    if meta is None:
        return _without_meta(bundle, args, calendar, whole_file)
    trained = _trained_spec(meta)
    if calendar is not None:
        trained = replace(trained, calendar=calendar)
    t_span = None
    if whole_file:
        fit = load_splits(trained)
        sc = _scored_sidecar(whole_file, args.sidecar, trained.sidecar)
        log = load_file(
            whole_file,
            sidecar=sc,
            timezone=args.timezone or trained.timezone,
            drop_channels=list(trained.drop_channels),
            what="--test-dataset" if getattr(args, "test_dataset", None) else "--dataset (--whole)",
        )
        scored = {"test": _with_calendar(log, trained)}
        check_same_columns(fit["train"], scored["test"], "scored file")
        sources = {"test": canonical_dataset(whole_file)}
        rule = "whole file"
    elif args.dataset and not same_dataset(args.dataset, trained.dataset):
        if not args.split:
            raise DataError(
                f"--dataset {args.dataset}: not the dataset the bundle was trained on ({trained.dataset}); "
                "add --whole to score the whole file, or --split A,B to score its test part (from B)"
            )
        fit = load_splits(trained)
        other = replace(
            trained,
            dataset=canonical_dataset(args.dataset),
            split=args.split,
            sidecar=args.sidecar,
            timezone=args.timezone or trained.timezone,
            val_dataset=None,
            test_dataset=None,
        )
        parts = load_splits(other)
        scored = {"test": parts["test"]}
        sources = {"test": other.dataset}
        rule = f"--split {args.split} of another dataset (its test part)"
    else:
        overrides = {
            k: v
            for k, v in (
                ("split", args.split),
                ("history_days", args.history_days),
                ("holdout_days", args.holdout_days),
                ("labels", args.labels),
                ("min_labels", args.min_labels),
            )
            if v is not None and v != getattr(trained, k)
        }
        spec = replace(trained, **overrides)  # type: ignore[arg-type]
        parts = load_splits(spec)
        fit = parts if not overrides else load_splits(trained)
        names = test_split_names(spec)
        if not names:
            raise DataError(
                f"{bundle}: trained with --val-dataset and no --test-dataset, so its split has no test part; "
                "pass --test-dataset FILE (or --dataset FILE --whole)"
            )
        scored = {s: parts[s] for s in names}
        own = {"test": spec.test_dataset} if spec.test_dataset else {}
        sources = {s: own.get(s) or spec.dataset for s in names}
        rule = "the manifest's split" if not overrides else f"re-cut ({', '.join(overrides)} given)"
        t_span = None if not overrides else _training_span(man, fit)
    if whole_file or t_span is not None or rule.startswith("--split"):
        first, last = _training_span(man, fit)
        for s, log in scored.items():
            check_not_training(log, s, first, last)
    split = {
        "rule": man.split.rule if man.split is not None else "unknown (bundle without a split record)",
        "scored": rule,
        "fit": _describe(
            fit, {k: (man.split.parts[k].source if man.split and k in man.split.parts else "") for k in fit}
        ),
        "parts": _describe(scored, sources, whole=bool(whole_file)),
    }
    fit = {k: fit[k] for k in ("train", "val")}
    return EvalData(fit=fit, scored=scored, split=split, dataset=trained.dataset)


def _without_meta(
    bundle: Path, args: argparse.Namespace, calendar: list[str] | None, whole_file: str | None
) -> EvalData:
    if not args.dataset:
        raise DataError(f"{bundle}: no training.json to say which data it was trained on; pass --dataset")
    if whole_file:
        raise DataError(
            f"{bundle}: no training.json, so its training data is unknown and the baselines cannot be fitted on "
            "it; evaluate with --dataset (cut by its --split) instead"
        )
    spec = DataSpec(
        dataset=args.dataset,
        data_dir=args.data_dir,
        sidecar=args.sidecar,
        timezone=args.timezone,
        split=args.split,
        calendar=calendar,
    )
    parts = load_splits(spec)
    names = test_split_names(spec)
    scored = {s: parts[s] for s in names}
    split = {
        "rule": "unknown (no training.json): --dataset cut by its own --split",
        "scored": "test part of --dataset",
        "fit": _describe({k: parts[k] for k in ("train", "val")}, {}),
        "parts": _describe(scored, {s: spec.dataset for s in names}),
    }
    return EvalData(
        fit={"train": parts["train"], "val": parts["val"]}, scored=scored, split=split, dataset=args.dataset
    )
