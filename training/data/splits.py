"""Chronological train/validation/test split of one SensorLog, by local dates or by fractions.

`split_log(log, "2024-06-30,2024-09-30")`: train = rows before 2024-06-30 00:00 local time, val = from then to
before 2024-09-30 00:00, test = the rest. Boundaries may also be ISO date-times ("2024-06-30T12:00").
Local time = UTC + the row's offset; a boundary is the first row whose local time is >= it.
`split_log(log, "0.7,0.85")` (or None, the default): first 70 % of rows train, next 15 % val, last 15 % test.
Each part is a SensorLog view (no copy) with its own stats: rows, masked_rows, masked_cells, unlabeled_rows.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import numpy as np

from training.data.calendar import local_seconds
from training.data.errors import DataError
from training.data.resample import row_stats
from training.sensorlog import SensorLog

DEFAULT_SPLIT = "0.7,0.85"
PARTS = ("train", "val", "test")


def slice_log(log: SensorLog, start: int, stop: int, name: str) -> SensorLog:
    """Rows start..stop-1 of `log` as a SensorLog sharing its arrays."""
    off = None if log.utc_offset_seconds is None else log.utc_offset_seconds[start:stop]
    values, labels = log.values[start:stop], log.labels[start:stop]
    return replace(
        log,
        name=name,
        t0=log.t0 + start * log.step_seconds,
        values=values,
        labels=labels,
        utc_offset_seconds=off,
        stats=row_stats(values, labels),
    )


def _parse_bounds(split: str) -> tuple[str, list[float] | list[datetime]]:
    parts = [p.strip() for p in split.split(",")]
    if len(parts) != 2 or not all(parts):
        raise DataError(
            f"--split {split!r}: give two boundaries 'A,B' (dates 2024-06-30,2024-09-30 or "
            "fractions 0.7,0.85)"
        )
    try:
        fr = [float(p) for p in parts]
    except ValueError:
        fr = None
    if fr is not None:
        if not 0.0 < fr[0] < fr[1] < 1.0:
            raise DataError(f"--split {split!r}: fractions must satisfy 0 < A < B < 1, e.g. 0.7,0.85")
        return "fraction", fr
    try:
        dt = [datetime.fromisoformat(p) for p in parts]
    except ValueError:
        raise DataError(
            f"--split {split!r}: not dates (YYYY-MM-DD) nor fractions; e.g. 2024-06-30,2024-09-30 or 0.7,0.85"
        ) from None
    if any(d.tzinfo is not None for d in dt):
        raise DataError(
            f"--split {split!r}: give local dates without a UTC offset (the log's local time is used)"
        )
    if not dt[0] < dt[1]:
        raise DataError(f"--split {split!r}: the first date must be before the second")
    return "date", dt


def split_bounds(log: SensorLog, split: str | None) -> tuple[int, int]:
    """Row indices (i, j): train = [0, i), val = [i, j), test = [j, N). DataError if a part would be empty."""
    spec = split or DEFAULT_SPLIT
    kind, b = _parse_bounds(spec)
    n = len(log)
    if kind == "fraction":
        i, j = int(round(b[0] * n)), int(round(b[1] * n))
    else:
        loc = local_seconds(log)  # float64 [N]
        epoch = datetime(1970, 1, 1)
        secs = [(d - epoch).total_seconds() for d in b]
        i, j = (int(np.argmax(loc >= s)) if (loc >= s).any() else n for s in secs)
    if not 0 < i < j < n:
        span = _span(log)
        raise DataError(
            f"--split {spec!r} leaves an empty part of {log.name} ({n} rows, {span}; train {i}, val "
            f"{max(j - i, 0)}, test {max(n - j, 0)} rows); choose boundaries inside the span"
        )
    return i, j


def _span(log: SensorLog) -> str:
    loc = local_seconds(log)
    fmt = "%Y-%m-%d %H:%M"
    first = np.datetime64(int(loc[0]), "s").astype(datetime).strftime(fmt)
    last = np.datetime64(int(loc[-1]), "s").astype(datetime).strftime(fmt)
    return f"{first} to {last} local"


def split_log(log: SensorLog, split: str | None = None) -> dict[str, SensorLog]:
    """{'train', 'val', 'test'} chronological parts of `log` (see the module docstring)."""
    i, j = split_bounds(log, split)
    bounds = {"train": (0, i), "val": (i, j), "test": (j, len(log))}
    return {p: slice_log(log, a, z, f"{log.name}:{p}") for p, (a, z) in bounds.items()}
