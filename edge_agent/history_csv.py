"""A `History` (edge_agent.history) -> the generic CSV + sidecar (edge_agent.dataformat), stdlib csv + numpy.

Columns: `time` (ISO 8601 with the home's UTC offset at that instant, so DST is right), the sensor channels,
the `<device>.state` inputs, then one label column per device (role 'device'). Per-column forward-fill
limits make the CSV loader mask exactly as the runtime does: a channel is carried for its kind's stale limit
(edge_agent.kinds.stale_limit), a state input until its next value (Infinity), a label never (0).

A device with no label in the span is left out (the loader refuses an empty column) and named in one warning.
Written to a temporary file next to the target and renamed; on any OSError (disk full, no permission) the
temporary files are removed and `HistoryError` says what and the fix.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import os
from pathlib import Path

import numpy as np

from edge_agent.calendar_features import load_zone
from edge_agent.dataformat import ColumnSpec, Sidecar
from edge_agent.history import History, HistoryError
from edge_agent.kinds import KINDS, stale_limit

logger = logging.getLogger(__name__)

TIME_COLUMN = "time"
SIDECAR_SUFFIX = ".sidecar.json"


def sidecar_path(csv_path: Path) -> Path:
    return csv_path.with_name(csv_path.name + SIDECAR_SUFFIX)


def labelled_devices(hist: History) -> list[int]:
    """Indices of the devices with at least one label (warns once naming the others)."""
    counts = (~np.isnan(hist.targets)).sum(axis=0)
    keep = [k for k in range(len(hist.devices)) if counts[k] > 0]
    empty = [hist.devices[k].name for k in range(len(hist.devices)) if k not in keep]
    if empty:
        logger.warning("no label in the span for device(s) %s: left out of the dataset", ", ".join(empty))
    return keep


def make_sidecar(hist: History, devices: list[int]) -> Sidecar:
    cols: dict[str, ColumnSpec] = {}
    for c in hist.channels:
        kind = c.kind if c.kind in KINDS else "generic"
        cols[c.name] = ColumnSpec(
            role="channel", kind=kind, unit=c.unit, ffill_limit_seconds=stale_limit(kind)
        )
    for k in devices:
        d = hist.devices[k]
        cols[d.name] = ColumnSpec(
            role="device",
            device_kind=d.kind if d.kind in ("binary", "level", "setpoint") else "binary",  # type: ignore[arg-type]
            levels=max(2, d.levels),
            unit=d.unit,
            ffill_limit_seconds=0.0,
        )
    return Sidecar(
        timestamp_column=TIME_COLUMN,
        timezone=hist.timezone,
        step_seconds=hist.step,
        ffill_limit_seconds=0.0,
        columns=cols,
    )


def _stamps(times: np.ndarray, timezone: str) -> list[str]:
    zone = load_zone(timezone)
    return [dt.datetime.fromtimestamp(float(t), zone).isoformat(timespec="seconds") for t in times]


def _cells(col: np.ndarray) -> list[str]:
    return ["" if np.isnan(v) else format(float(v), ".7g") for v in col.tolist()]


def write_history_csv(
    hist: History, out: Path, devices: list[int] | None = None
) -> tuple[Path, Path, Sidecar]:
    """Write `out` and `<out>.sidecar.json` atomically (`devices`: indices to write, default every labelled
    one); returns (csv, sidecar, the sidecar model)."""
    out = Path(out)
    devices = labelled_devices(hist) if devices is None else devices
    sc = make_sidecar(hist, devices)
    header = [TIME_COLUMN, *sc.columns]
    columns = [_stamps(hist.times, hist.timezone)]
    columns += [_cells(hist.values[:, i]) for i in range(hist.values.shape[1])]
    columns += [_cells(hist.targets[:, k]) for k in devices]
    side = sidecar_path(out)
    tmp_csv = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp_side = side.with_name(f".{side.name}.tmp-{os.getpid()}")
    try:
        with tmp_csv.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(zip(*columns, strict=True))
            f.flush()
            os.fsync(f.fileno())
        # Infinity (a state input is carried until its next value) is valid for the loader's json module
        tmp_side.write_text(json.dumps(sc.model_dump(), indent=2), encoding="utf-8")
        os.replace(tmp_csv, out)
        os.replace(tmp_side, side)
    except OSError as e:
        for p in (tmp_csv, tmp_side):
            p.unlink(missing_ok=True)
        raise HistoryError(
            f"cannot write {out} ({e.strerror or e}); free space there or choose another --out"
        ) from None
    logger.info(
        "wrote %s: %d rows of %gs, %d channels, %d devices (%s labels)",
        out,
        len(hist),
        hist.step,
        len(hist.channels),
        len(devices),
        hist.mode,
    )
    return out, side, sc
