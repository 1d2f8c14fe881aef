"""Local calendar time per row (hour of day, weekday) and the `calendar.*` channels, from UTC + per-row offset.

Local time of row i = t0 + i·step + utc_offset_seconds[i] (offset None = UTC). hour_of_day is fractional in
[0, 24); weekday is Monday = 0. The channel formulas are `edge_agent.calendar_features.calendar_values`, which the
runtime uses on its own clock in the home's time zone, so training and runtime agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from edge_agent.calendar_features import CALENDAR_CHANNELS, calendar_values
from training.sensorlog import ChannelInfo, SensorLog

DEFAULT_CALENDAR = ("calendar.tod_sin", "calendar.tod_cos")


def zone_offsets(t0: float, step_seconds: float, n: int, zone: ZoneInfo) -> np.ndarray:
    """int32 [n] UTC offset (seconds) in `zone` at each grid time t0 + i·step (t0 epoch seconds UTC)."""
    us = np.round((t0 + np.arange(n, dtype=np.float64) * step_seconds) * 1e6).astype(np.int64)
    utc = pd.DatetimeIndex(us.view("datetime64[us]")).tz_localize("UTC")
    local = utc.tz_convert(zone).tz_localize(None).as_unit("us").asi8
    return ((local - us) // 1_000_000).astype(np.int32)


def local_seconds(log: SensorLog) -> np.ndarray:
    """float64 [N] local wall-clock seconds since 1970-01-01 00:00 local (times + offsets)."""
    t = log.times()
    if log.utc_offset_seconds is not None:
        t = t + log.utc_offset_seconds.astype(np.float64)
    return t


def hour_and_weekday(log: SensorLog) -> tuple[np.ndarray, np.ndarray]:
    """(hour_of_day float64 [N] fractional 0..24, weekday int64 [N] Monday = 0) in the log's local time."""
    loc = local_seconds(log)
    days = np.floor(loc / 86400.0)
    hour = (loc - days * 86400.0) / 3600.0
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday (3)
    return hour, weekday


def calendar_columns(log: SensorLog, names: Sequence[str] = DEFAULT_CALENDAR) -> np.ndarray:
    """float32 [N, len(names)] values of the given calendar channels (the runtime's formulas)."""
    if not names:
        return np.zeros((len(log), 0), np.float32)
    try:
        vals = calendar_values(names, local_seconds(log))  # [len(names), N]
    except KeyError:
        bad = [n for n in names if n not in CALENDAR_CHANNELS]
        raise ValueError(
            f"unknown calendar channel {bad[0]!r}; known: {', '.join(CALENDAR_CHANNELS)}"
        ) from None
    return vals.T.astype(np.float32)


def add_calendar_channels(log: SensorLog, names: Sequence[str] = DEFAULT_CALENDAR) -> SensorLog:
    """A new SensorLog with the calendar channels appended (kind 'calendar'); existing ones are not repeated."""
    have = {c.name for c in log.channels}
    names = [n for n in names if n not in have]
    if not names:
        return log
    extra = calendar_columns(log, names)
    values = np.concatenate([log.values, extra], axis=1)  # [N, C + k]
    chans = [*log.channels, *(ChannelInfo(n, "", "calendar") for n in names)]
    return replace(log, values=values, channels=chans, stats=dict(log.stats))
