"""Explicit splits: train/validation/test given as separate files, the split record, spans and overlap checks.

`train --dataset A --val-dataset B --test-dataset C`: A is all training data, B validation, C test (each read
with the same options: `--sidecar` for every file if given, else each file's own sidecar next to it; the same
zone, calendar channels and dropped channels). Without `--val-dataset` the last 15 % of A is validation;
without `--test-dataset` there is no test part (evaluate then needs `--test-dataset` or `--dataset F --whole`).
The files must follow each other in time (train before val before test): rows that overlap are an error
naming both spans.

`split_record(...)` is what the manifest's `split` holds: the rule and, per part, its source, first and last
row (UTC) and rows; `evaluate` scores what it says unless told otherwise. `same_dataset` compares spellings
(`csv:PATH`, a relative or absolute PATH) by the resolved file, so the same file is the same dataset.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from edge_agent.manifest import SplitPart, SplitRecord
from training.data import DataError, load_dataset, slice_log
from training.data.uci import NAME as UCI_NAME
from training.sensorlog import SensorLog

VAL_FRACTION = 0.15  # validation = the chronologically last 15 % of the training file (no --val-dataset)
BUILTIN_PREFIXES = ("sim:", "simexplore:", "db:")


def is_file_dataset(dataset: str) -> bool:
    return not (dataset == UCI_NAME or dataset == "sim" or dataset.startswith(BUILTIN_PREFIXES))


def canonical_dataset(dataset: str) -> str:
    """One spelling per dataset: a CSV path ('csv:PATH' or PATH, relative or not) -> its resolved path."""
    if not dataset or not is_file_dataset(dataset):
        return dataset
    return str(Path(dataset.removeprefix("csv:")).expanduser().resolve())


def same_dataset(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and canonical_dataset(a or "") == canonical_dataset(b or "")


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def span(log: SensorLog) -> tuple[float, float]:
    """(first, last) row time of `log`, epoch seconds UTC."""
    return log.t0, log.t0 + (len(log) - 1) * log.step_seconds


def span_text(first: float | str, last: float | str) -> str:
    f = first if isinstance(first, str) else iso(first)
    la = last if isinstance(last, str) else iso(last)
    return f"{f} .. {la}"


def load_file(
    path: str,
    *,
    sidecar: str | None,
    timezone: str | None,
    drop_channels: list[str],
    what: str,
) -> SensorLog:
    """One CSV file, whole (`what` names its role in errors, e.g. '--test-dataset')."""
    if not is_file_dataset(path):
        raise DataError(f"{what} {path!r}: give a CSV file path (a built-in dataset has its own split)")
    log = load_dataset(
        path,
        sidecar=Path(sidecar) if sidecar else None,
        timezone=timezone,
        drop_channels=drop_channels,
    )["all"]
    log.name = Path(path.removeprefix("csv:")).name
    return log


def check_same_columns(ref: SensorLog, other: SensorLog, what: str) -> None:
    """DataError unless `other` has the channels and devices of `ref` (same names, same order)."""
    a = ([c.name for c in ref.channels], [d.name for d in ref.devices])
    b = ([c.name for c in other.channels], [d.name for d in other.devices])
    if a != b:
        missing = sorted(set(a[0] + a[1]) - set(b[0] + b[1]))
        extra = sorted(set(b[0] + b[1]) - set(a[0] + a[1]))
        raise DataError(
            f"{what} {other.name}: its columns differ from the training file {ref.name} (missing "
            f"{missing or 'none'}, extra {extra or 'none'}); give files of the same sidecar layout"
        )


def check_order(parts: dict[str, SensorLog]) -> None:
    """Train before val before test(s): a part whose rows start before the previous part ends is an error."""
    names = [p for p in ("train", "val", "test", "test2") if p in parts]
    for a, b in zip(names, names[1:], strict=False):
        fa, la = span(parts[a])
        fb, lb = span(parts[b])
        if fb <= la:
            raise DataError(
                f"{b} rows ({parts[b].name}: {span_text(fb, lb)}) overlap or precede the {a} rows "
                f"({parts[a].name}: {span_text(fa, la)}); give files that follow each other in time"
            )


def load_file_splits(
    dataset: str,
    val_dataset: str | None,
    test_dataset: str | None,
    *,
    sidecar: str | None,
    timezone: str | None,
    drop_channels: list[str],
) -> dict[str, SensorLog]:
    """{'train', 'val'[, 'test']} from separate files (module docstring); no calendar channels yet."""
    kw = dict(sidecar=sidecar, timezone=timezone, drop_channels=drop_channels)
    main = load_file(dataset, what="--dataset", **kw)  # type: ignore[arg-type]
    if val_dataset:
        parts = {"train": main, "val": load_file(val_dataset, what="--val-dataset", **kw)}  # type: ignore[arg-type]
        check_same_columns(main, parts["val"], "--val-dataset")
    else:
        cut = int(round(len(main) * (1 - VAL_FRACTION)))
        if not 0 < cut < len(main):
            raise DataError(
                f"--dataset {main.name}: {len(main)} rows are too few to keep 15 % for validation"
            )
        parts = {
            "train": slice_log(main, 0, cut, f"{main.name}:train"),
            "val": slice_log(main, cut, len(main), f"{main.name}:val"),
        }
    if test_dataset:
        parts["test"] = load_file(test_dataset, what="--test-dataset", **kw)  # type: ignore[arg-type]
        check_same_columns(main, parts["test"], "--test-dataset")
    check_order(parts)
    return parts


def split_rule_text(
    dataset: str,
    split: str | None,
    val_dataset: str | None,
    test_dataset: str | None,
    holdout_days: float | None,
) -> str:
    if val_dataset or test_dataset:
        return "files" + ("" if val_dataset else "; validation = the last 15 % of the training file")
    if dataset == UCI_NAME:
        return "uci-occupancy files (train, test, test2); validation = the last 15 % of train"
    if dataset.startswith("db:"):
        days = "the catalog's holdout_days" if holdout_days is None else f"{holdout_days:g} days"
        return f"held-out last {days} = test; validation = the last 15 % of the rest"
    from training.data.splits import DEFAULT_SPLIT, _parse_bounds

    spec = split or DEFAULT_SPLIT
    kind, _ = _parse_bounds(spec)
    if kind == "date":
        return f"dates {spec} (first day of validation, first day of test; local time)"
    return f"fractions {spec} (train = first {spec.split(',')[0]}, test from {spec.split(',')[1]})"


def split_record(
    rule: str, parts: dict[str, SensorLog], sources: dict[str, str], rows: dict[str, int] | None = None
) -> SplitRecord:
    """The manifest's record of the split: rule and per part source, first/last row (UTC), rows."""
    out = {}
    for name, log in parts.items():
        if len(log) == 0:
            out[name] = SplitPart(source=sources.get(name, ""), rows=0)
            continue
        f, la = span(log)
        out[name] = SplitPart(
            source=sources.get(name, ""), first=iso(f), last=iso(la), rows=(rows or {}).get(name, len(log))
        )
    return SplitRecord(rule=rule, parts=out)


def check_not_training(scored: SensorLog, what: str, train_first: str, train_last: str) -> None:
    """DataError if any row of `scored` falls in the training span [train_first, train_last] (ISO UTC)."""
    f, la = span(scored)
    tf = datetime.fromisoformat(train_first).timestamp()
    tl = datetime.fromisoformat(train_last).timestamp()
    if f <= tl and la >= tf:
        raise DataError(
            f"{what} {scored.name}: its rows {span_text(f, la)} overlap the bundle's training span "
            f"{span_text(train_first, train_last)}; score data the model did not train on (e.g. a later file)"
        )
