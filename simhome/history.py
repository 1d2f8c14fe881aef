"""Long simulated history in the generic CSV format (`edge_agent.dataformat`): wide CSV + JSON sidecar.

One row per step (default 60 s) with the local time and its UTC offset (`2022-03-27T03:00:00+02:00`, so
DST is visible), one column per channel (empty cell = the sensor was not reporting) and one per device
(by default the state in effect: the person's own operation, i.e. their preference with human lag; with
`labels="preference"` the person's hidden preference itself, the label a controller should learn: the state in
effect lags the preference and, for lights, is visible in the illuminance it causes, so a model trained on it
learns to mirror the lamp instead of the person). Hours when the
hub was down are absent (a gap). Generated day by day (vectorized) and written in chunks, so years of
history take bounded memory.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge_agent.dataformat import ColumnSpec, Sidecar
from simhome.home import DayFrame, SimHome
from simhome.layout import CHANNELS, DEFAULT_TIMEZONE, DEVICES
from simhome.physics import DECIMALS

log = logging.getLogger(__name__)

TIME_COLUMN = "time"
_DEVICE_DECIMALS = np.array([1 if d.kind == "setpoint" else 0 for d in DEVICES])


def sidecar_path(csv_path: Path) -> Path:
    return Path(str(csv_path) + ".sidecar.json")


def make_sidecar(timezone: str = DEFAULT_TIMEZONE, step_seconds: float = 60.0) -> Sidecar:
    columns: dict[str, ColumnSpec] = {
        c.name: ColumnSpec(role="channel", kind=c.kind, unit=c.unit) for c in CHANNELS
    }
    for d in DEVICES:
        columns[d.name] = ColumnSpec(role="device", device_kind=d.kind, unit=d.unit, levels=d.levels)
    return Sidecar(
        timestamp_column=TIME_COLUMN,
        timezone=timezone,
        step_seconds=step_seconds,
        ffill_limit_seconds=max(300.0, step_seconds),
        columns=columns,
    )


def header() -> str:
    return ",".join([TIME_COLUMN, *(c.name for c in CHANNELS), *(d.name for d in DEVICES)])


def _offset_text(offset: np.ndarray) -> np.ndarray:
    """'+HH:MM' per row."""
    out = np.empty(offset.shape[0], dtype=object)
    for off in np.unique(offset):
        sign = "+" if off >= 0 else "-"
        h, m = divmod(abs(int(off)) // 60, 60)
        out[offset == off] = f"{sign}{h:02d}:{m:02d}"
    return out


def _column_text(x: np.ndarray, decimals: int) -> list[str]:
    """Strings for one column: fixed decimals (0 = integer), '' where NaN."""
    missing = np.isnan(x)
    if decimals == 0:
        s = np.where(missing, 0, np.round(x)).astype(np.int64).astype(str)
    else:
        s = np.round(np.where(missing, 0.0, x), decimals).astype(str)
    if missing.any():
        s = np.where(missing, "", s)
    return s.tolist()


def format_rows(frame: DayFrame, labels: str = "state") -> str:
    """CSV text (no header) of a simulated day; rows when the hub was down are left out.

    `labels`: device columns hold the state in effect (`state`) or the person's preference (`preference`).
    """
    plan = frame.plan
    keep = plan.hub_ok
    if not keep.any():
        return ""
    t, off = plan.t[keep], plan.offset[keep]
    local = (np.round(t).astype(np.int64) + off).astype("datetime64[s]")
    stamps = np.char.add(np.datetime_as_string(local, unit="s").astype(object), _offset_text(off))
    cols: list[list[str]] = [stamps.tolist()]
    vals = frame.readings[keep]
    devs = (frame.preferred if labels == "preference" else frame.devices)[keep]
    cols += [_column_text(vals[:, j], int(DECIMALS[j])) for j in range(vals.shape[1])]
    cols += [_column_text(devs[:, j], int(_DEVICE_DECIMALS[j])) for j in range(devs.shape[1])]
    return "\n".join(map(",".join, zip(*cols, strict=True))) + "\n"


def parse_start(text: str | None, timezone: str) -> dt.datetime:
    """'2022-01-01' (local midnight) or an ISO datetime -> aware datetime in `timezone`."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(timezone)
    if not text:
        return dt.datetime(2022, 1, 1, tzinfo=tz)
    value = dt.datetime.fromisoformat(text)
    return value.replace(tzinfo=tz) if value.tzinfo is None else value.astimezone(tz)


def write_history(
    path: str | Path,
    days: int,
    seed: int = 0,
    start: dt.datetime | str | None = None,
    timezone: str = DEFAULT_TIMEZONE,
    step_seconds: float = 60.0,
    *,
    n_occupants: int = 1,
    dropouts: bool = True,
    labels: str = "state",
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write `days` local days of simulated history to `path` (CSV) and `<path>.sidecar.json`.

    Returns the CSV path. `start` is an aware datetime or 'YYYY-MM-DD' (local midnight); history starts
    at local midnight of its date.
    """
    if days < 1:
        raise ValueError(f"days must be >= 1 (got {days})")
    if labels not in ("state", "preference"):
        raise ValueError(f"labels must be 'state' or 'preference' (got {labels!r})")
    path = Path(path)
    begin = start if isinstance(start, dt.datetime) else parse_start(start, timezone)
    if begin.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    home = SimHome(seed, begin, n_occupants, timezone=timezone, dropouts=dropouts, step_seconds=step_seconds)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    rows = 0
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(header() + "\n")
            for k, frame in enumerate(home.days(days)):
                f.write(format_rows(frame, labels))
                rows += int(frame.plan.hub_ok.sum())
                if progress is not None:
                    progress(k + 1, days)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    sidecar_path(path).write_text(
        make_sidecar(timezone, step_seconds).model_dump_json(indent=2) + "\n", encoding="utf-8"
    )
    log.info("wrote %s rows (%s days, seed %s) to %s", rows, days, seed, path)
    return path
