"""Timestamp column -> UTC microseconds, chunk by chunk, with DST handled without shifting or duplicating rows.

Two modes, fixed by the first timestamp seen and checked on every later row (mixing them is a DataError):

* ISO 8601 with a UTC offset (`2024-10-27T02:30:00+02:00`, `...Z`): converted to UTC exactly. The per-row
  offset is kept (for calendar features) unless a time zone is given, which then defines local time.
* naive local time (`2024-10-27 02:30:00`) in the sidecar's / `--timezone` zone (IANA name; none = UTC):
  - spring-forward: local times that do not exist (02:30 on the day clocks jump 02:00 -> 03:00) cannot have
    been written by a correct logger; such rows are dropped and counted (`nonexistent_times`), never shifted.
  - fall-back: local times that occur twice (02:00-02:59 when clocks go 03:00 -> 02:00) are resolved from
    row order: per transition, rows are taken as the first (summer-time) occurrence until local time first
    jumps backwards inside the repeated hour; from then on they are the second (standard-time) occurrence.
    Counted in `ambiguous_times`. (A row that is out of order inside the repeated hour can flip it early.)

Unparseable or empty timestamps are dropped and counted (`bad_timestamps`); if most of a chunk is bad the
column is not a timestamp column and a DataError names it and the first bad row.
"""

from __future__ import annotations

import logging
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from training.data.errors import DataError

log = logging.getLogger(__name__)

US = 1_000_000
_OFFSET_RE = re.compile(r"\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?\s*(?:Z|z|[+-]\d\d(?::?\d\d)?)$")
_OFFSET_PART = r"(Z|z|[+-]\d\d(?::?\d\d)?)$"


def get_zone(name: str | None, where: str) -> ZoneInfo | None:
    """ZoneInfo for an IANA name (None -> None). Raises DataError naming `where` on an unknown zone."""
    if name is None or name == "":
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise DataError(
            f"{where}: unknown time zone {name!r}; use an IANA name such as 'Europe/Brussels' or 'UTC'"
        ) from None


def _as_us(idx: pd.DatetimeIndex) -> np.ndarray:
    """int64 [n] microseconds since the epoch; NaT -> iNaT (int64 min)."""
    return idx.as_unit("us").asi8.copy()


def _offset_seconds(txt: str) -> int:
    if txt in ("", "Z", "z"):
        return 0
    sign = -1 if txt[0] == "-" else 1
    digits = txt[1:].replace(":", "")
    return sign * (int(digits[:2]) * 3600 + (int(digits[2:4]) * 60 if len(digits) >= 4 else 0))


def _offsets_from_strings(s: pd.Series) -> np.ndarray:
    """int32 [n] UTC offset in seconds parsed from the strings' suffixes (0 for 'Z' or missing)."""
    part = s.str.extract(_OFFSET_PART, expand=False).fillna("").to_numpy(dtype=object).astype(str)
    uniq, inv = np.unique(part, return_inverse=True)  # a log has a handful of distinct offsets
    return np.array([_offset_seconds(u) for u in uniq], dtype=np.int32)[inv]


class TimestampParser:
    """Stateful per-file parser: call `parse` on each chunk in file order."""

    def __init__(self, zone: ZoneInfo | None, source: str, column: str) -> None:
        self.zone = zone
        self.source = source
        self.column = column
        self.mode: str | None = None  # "offset" or "naive"
        self.bad = 0
        self.nonexistent = 0
        self.ambiguous = 0
        self._fold_state: dict[int, tuple[bool, int]] = {}  # local day -> (switched to fold 1, last wall us)
        self._last_nonexistent = np.zeros(0, dtype=bool)

    def parse(self, s: pd.Series, first_line: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Parse one chunk of timestamp strings.

        Returns (utc_us int64 [m], offset_s int32 [m] or None, ok bool [m]); rows with ok False are to be dropped.
        offset_s is None when local time comes from the zone (or is UTC) rather than from the strings.
        `first_line` is the file line number of the chunk's first row (for messages).
        """
        s = s.astype("str").str.strip()
        present = s.notna().to_numpy() & (s.str.len().fillna(0).to_numpy() > 0)
        has_off = s.str.contains(_OFFSET_RE, na=False).to_numpy()
        if self.mode is None and present.any():
            self.mode = "offset" if has_off[np.argmax(present)] else "naive"
            log.info(
                "%s: timestamps are %s",
                self.source,
                "ISO 8601 with offsets"
                if self.mode == "offset"
                else f"naive local time in {self.zone.key if self.zone else 'UTC'}",
            )
        if self.mode is not None:
            wrong = present & (has_off if self.mode == "naive" else ~has_off)
            if wrong.any():
                i = int(np.argmax(wrong))
                raise DataError(
                    f"{self.source}: column {self.column!r} line {first_line + i}: timestamp {s.iloc[i]!r} "
                    f"{'has' if self.mode == 'naive' else 'lacks'} a UTC offset while earlier ones "
                    f"{'do not' if self.mode == 'naive' else 'do'}; write all timestamps one way"
                )
        offsets: np.ndarray | None = None
        if self.mode == "offset":
            utc = _as_us(pd.DatetimeIndex(pd.to_datetime(s, format="ISO8601", utc=True, errors="coerce")))
            if self.zone is None:
                offsets = _offsets_from_strings(s)
            ok = utc != np.iinfo(np.int64).min
        else:
            wall = _as_us(pd.DatetimeIndex(pd.to_datetime(s, format="ISO8601", errors="coerce")))
            ok = wall != np.iinfo(np.int64).min
            utc = wall if self.zone is None else self._localize(wall, ok)
            ok &= utc != np.iinfo(np.int64).min
        ok &= s.str.match(r"\d{4}-\d\d-\d\d", na=False).to_numpy()  # pandas also parses 'now', 'today'
        n_bad_parse = int((~ok).sum())
        if n_bad_parse:
            bad_parse = ~ok
            if self.mode == "naive" and self.zone is not None and self._last_nonexistent.size == len(s):
                # rows whose wall time parsed but do not exist locally were counted in _localize
                bad_parse &= ~self._last_nonexistent
            nb = int(bad_parse.sum())
            self.bad += nb
            if nb and nb * 2 > len(s):
                i = int(np.argmax(bad_parse))
                raise DataError(
                    f"{self.source}: column {self.column!r}: {nb} of {len(s)} timestamps from line {first_line} "
                    f"are not ISO 8601 (first: line {first_line + i}, {s.iloc[i]!r}); "
                    "write times as YYYY-MM-DD HH:MM:SS[+HH:MM] or set timestamp_column in the sidecar"
                )
        return utc, offsets, ok

    def _localize(self, wall: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """Naive local wall-clock us -> UTC us, DST-aware (see module docstring). iNaT where not resolvable."""
        idx = pd.DatetimeIndex(wall.view("datetime64[us]"))
        n = len(idx)
        summer = _as_us(idx.tz_localize(self.zone, ambiguous=np.ones(n, bool), nonexistent="NaT"))
        winter = _as_us(idx.tz_localize(self.zone, ambiguous=np.zeros(n, bool), nonexistent="NaT"))
        nat = np.iinfo(np.int64).min
        self._last_nonexistent = ok & (summer == nat)
        n_nonexist = int(self._last_nonexistent.sum())
        if n_nonexist:
            self.nonexistent += n_nonexist
            log.warning(
                "%s: %d local times fall in a daylight-saving gap (do not exist); dropped",
                self.source,
                n_nonexist,
            )
        amb = np.flatnonzero(ok & (summer != winter) & (summer != nat))
        utc = summer.copy()
        if amb.size:
            self.ambiguous += int(amb.size)
            day_us = 86400 * US
            for i in amb:  # a handful of rows per fall-back transition
                w = int(wall[i])
                day = w // day_us
                switched, last = self._fold_state.get(day, (False, w))
                if not switched and w < last:
                    switched = True
                if switched:
                    utc[i] = winter[i]
                self._fold_state[day] = (switched, max(last, w))
        return utc
