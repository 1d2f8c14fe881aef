"""Calendar inputs and the home's time zone: the one definition training and the runtime share.

Calendar channels are not sensors: both sides compute them from the time of each step in the **home's**
IANA time zone (config `timezone`, recorded in the bundle's manifest), never from the process's local time:
`calendar.tod_sin` / `calendar.tod_cos` = sin/cos(2*pi*hour_of_day/24), `calendar.dow_sin` /
`calendar.dow_cos` = sin/cos(2*pi*weekday/7), hour_of_day fractional, weekday Monday = 0.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

CALENDAR_CHANNELS: tuple[str, ...] = (
    "calendar.tod_sin",
    "calendar.tod_cos",
    "calendar.dow_sin",
    "calendar.dow_cos",
)
DEFAULT_ZONE = "UTC"


def system_zone_name() -> str:
    """The system's IANA zone: $TZ, else the /etc/localtime link, else /etc/timezone, else UTC."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz and _valid_zone(tz):
        return tz
    link = Path("/etc/localtime")
    try:
        target = str(link.resolve())
        if "zoneinfo/" in target:
            name = target.split("zoneinfo/", 1)[1]
            if _valid_zone(name):
                return name
    except OSError:
        pass
    try:
        name = Path("/etc/timezone").read_text(encoding="utf-8").strip()
        if name and _valid_zone(name):
            return name
    except OSError:
        pass
    return DEFAULT_ZONE


def _valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def load_zone(name: str) -> ZoneInfo:
    """ZoneInfo for an IANA name (raises ValueError naming it)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name such as 'Europe/Brussels' or 'UTC'"
        ) from None


def utc_offset(zone: ZoneInfo, t: float) -> float:
    """Seconds east of UTC in `zone` at epoch time `t`."""
    off = dt.datetime.fromtimestamp(t, zone).utcoffset()
    return off.total_seconds() if off is not None else 0.0


def local_seconds(times: np.ndarray, zone: ZoneInfo) -> np.ndarray:
    """Epoch times [T] -> local wall-clock seconds [T] in `zone` (exact across a DST change)."""
    times = np.asarray(times, dtype=np.float64)
    if times.size == 0:
        return times
    first, last = utc_offset(zone, float(times[0])), utc_offset(zone, float(times[-1]))
    if first == last:  # the usual case: no DST change inside the span
        return times + first
    return times + np.array([utc_offset(zone, float(t)) for t in times])


def calendar_values(names: Sequence[str], local: np.ndarray) -> np.ndarray:
    """Calendar channel values [len(names), T] at local wall-clock seconds `local` [T]."""
    local = np.asarray(local, dtype=np.float64)
    days = np.floor(local / 86400.0)
    hour = (local - days * 86400.0) / 3600.0
    weekday = np.mod(days + 3.0, 7.0)  # 1970-01-01 was a Thursday (Monday = 0)
    out = np.zeros((len(names), local.shape[0]), dtype=np.float64)
    for i, n in enumerate(names):
        if n == "calendar.tod_sin":
            out[i] = np.sin(2 * np.pi * hour / 24.0)
        elif n == "calendar.tod_cos":
            out[i] = np.cos(2 * np.pi * hour / 24.0)
        elif n == "calendar.dow_sin":
            out[i] = np.sin(2 * np.pi * weekday / 7.0)
        elif n == "calendar.dow_cos":
            out[i] = np.cos(2 * np.pi * weekday / 7.0)
        else:
            raise KeyError(f"unknown calendar channel {n!r} (known: {', '.join(CALENDAR_CHANNELS)})")
    return out
