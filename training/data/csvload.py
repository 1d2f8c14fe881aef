"""The generic wide-CSV loader (edge_agent/dataformat.py): chunked, float32, bounded memory, counted defects.

`load_csv(path, sidecar=None, timezone=None) -> SensorLog`

Reading: pandas `read_csv` in chunks of `chunksize` rows; clean numeric columns take the C parser's fast path.
Rows are written into arrays preallocated from a line count, so memory is bounded per row:

    peak ≈ bytes_per_row(K) · rows + one chunk,   bytes_per_row(K) = 8·K + 64
           (raw rows: 8 time + 4·K values + 4 offset; grid: 4·K values + 4 offset + 8 slot index;
            one column's resampling transients ~40), K = channel + device columns, for a log with about one
           row per step; one chunk ≈ 100·K·chunksize bytes of pandas frame, independent of the file length.

e.g. 2M rows × 22 columns ≈ 0.5 GB. The result keeps only rows · (4·K + 4) bytes.

Cell policy:
* empty / NA cell: missing (NaN). A CHANNEL is carried forward up to the column's `ffill_limit_seconds`
  (else the sidecar's; Infinity = until the next value); a DEVICE label is never carried: an empty label cell
  stays unknown (its row is not trained or scored on that device), whatever the limits say.
* non-numeric cell (e.g. "err"): counted per column (`non_numeric`, `non_numeric.<column>`), masked (NaN)
  with a warning naming the first bad line; a column where more than half of the non-empty cells of a chunk
  are non-numeric is a DataError (it is not a numeric column). Device columns also accept on/off/true/false.
* device values: binary must be 0/1, level an integer in 0..levels-1, else DataError naming the line.
* a channel or device column with no value at all: DataError (drop it or set its role to "ignore").

Timestamps: see `training.data.timestamps` (offsets or naive local + zone; DST; bad rows counted, dropped).
Resampling: see `training.data.resample` (as-of, limited forward fill, gaps = NaN, never filled).

`SensorLog.stats` keys: rows_in, rows, bad_timestamps, nonexistent_times, ambiguous_times, out_of_order,
duplicates, gaps, gap_rows, masked_rows, masked_cells, unlabeled_rows, non_numeric, non_numeric.<column>.
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from edge_agent.dataformat import Sidecar
from training.data.calendar import zone_offsets
from training.data.errors import DataError
from training.data.resample import US, coverage_stats, grid_index, resample_column, row_stats, sort_rows
from training.data.sidecar import find_sidecar, read_sidecar
from training.data.timestamps import TimestampParser, get_zone
from training.sensorlog import ChannelInfo, DeviceInfo, SensorLog

log = logging.getLogger(__name__)

CHUNKSIZE = 200_000
_BOOL_WORDS = {"on": 1.0, "off": 0.0, "true": 1.0, "false": 0.0}


def bytes_per_row(k: int) -> int:
    """Documented bound on peak loader memory per row, for K channel + device columns (see module doc)."""
    return 8 * k + 64


def count_lines(path: Path) -> int:
    """Number of newline-terminated lines (+1 for a last line without newline): an upper bound on rows + 1."""
    opener = gzip.open if path.suffix == ".gz" else open
    n = 0
    last = b"\n"
    with opener(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")


def _check_columns(path: Path, sc_path: Path, sc: Sidecar, header: list[str]) -> None:
    if sc.timestamp_column not in header:
        raise DataError(
            f"{path}: timestamp column {sc.timestamp_column!r} (from sidecar {sc_path.name}) is not in the CSV header "
            f"{header[:8]}; set timestamp_column in the sidecar to the CSV's time column"
        )
    for col in header:
        if col != sc.timestamp_column and col not in sc.columns:
            raise DataError(
                f"{path}: column {col!r} is in the CSV but not in the sidecar {sc_path.name}; add it under "
                "'columns' with role 'channel', 'device' or 'ignore'"
            )
    for col in sc.columns:
        if col not in header:
            raise DataError(
                f"sidecar {sc_path}: column {col!r} is not in the CSV header of {path.name}; remove it from the "
                "sidecar or fix its name"
            )
    if not sc.channel_columns():
        raise DataError(
            f"sidecar {sc_path}: no column has role 'channel'; declare at least one sensor channel"
        )


def _to_float(
    col: pd.Series, name: str, is_device: bool, path: Path, line0: int, counts: dict[str, int]
) -> np.ndarray:
    """One chunk column -> float32 [m]; non-numeric cells -> NaN, counted (DataError if most are bad)."""
    if col.dtype.kind in "fiub":
        return col.to_numpy(dtype=np.float32, na_value=np.nan)
    text = col.astype("str").str.strip()
    if is_device:
        text = text.str.lower().replace(_BOOL_WORDS)
    num = pd.to_numeric(text, errors="coerce")
    bad = (text.notna() & (text.str.len() > 0) & num.isna()).to_numpy()
    n_bad = int(bad.sum())
    if n_bad:
        i = int(np.argmax(bad))
        nonempty = int((text.notna() & (text.str.len() > 0)).sum())
        if n_bad * 2 > nonempty:
            raise DataError(
                f"{path}: column {name!r} is mostly non-numeric ({n_bad} of {nonempty} cells from line {line0}, "
                f"first line {line0 + i}: {col.iloc[i]!r}); fix the column or set its role to 'ignore'"
            )
        if name not in counts:
            log.warning(
                "%s: column %r line %d: non-numeric value %r masked as missing",
                path,
                name,
                line0 + i,
                col.iloc[i],
            )
        counts[name] = counts.get(name, 0) + n_bad
    return num.to_numpy(dtype=np.float32, na_value=np.nan)


def _check_device(v: np.ndarray, dev: DeviceInfo, path: Path, line0: int) -> None:
    ok = np.isnan(v)
    if dev.kind == "binary":
        ok |= (v == 0) | (v == 1)
        want = "0 or 1"
    elif dev.kind == "level":
        ok |= (v >= 0) & (v <= dev.levels - 1) & (v == np.round(v))
        want = f"an integer level 0..{dev.levels - 1}"
    else:
        ok |= np.isfinite(v)
        want = "a finite number"
    if not ok.all():
        i = int(np.argmin(ok))
        raise DataError(
            f"{path}: device column {dev.name!r} line {line0 + i}: value {float(v[i]):g} is not {want}; "
            "fix the value or the device kind/levels in the sidecar"
        )


def load_csv(
    path: Path, *, sidecar: Path | None = None, timezone: str | None = None, chunksize: int = CHUNKSIZE
) -> SensorLog:
    """Load a generic wide CSV + sidecar into a resampled SensorLog (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: CSV file not found; pass an existing file, or a built-in dataset name")
    sc_path = Path(sidecar) if sidecar is not None else find_sidecar(path)
    sc = read_sidecar(sc_path)
    zone_name = timezone if timezone is not None else sc.timezone
    zone = get_zone(zone_name, f"{'--timezone' if timezone is not None else f'sidecar {sc_path}'}")
    try:
        header = [str(c) for c in pd.read_csv(path, nrows=0).columns]
    except (pd.errors.EmptyDataError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise DataError(
            f"{path}: cannot read a CSV header ({err}); the file must be a CSV with a header row"
        ) from None
    _check_columns(path, sc_path, sc, header)

    ch_names, dev_names = sc.channel_columns(), sc.device_columns()
    channels = [ChannelInfo(n, sc.columns[n].unit, sc.columns[n].kind) for n in ch_names]
    devices = [
        DeviceInfo(n, sc.columns[n].device_kind, sc.columns[n].unit, sc.columns[n].levels) for n in dev_names
    ]
    names = ch_names + dev_names
    n_max = max(count_lines(path) - 1, 0)
    t_us = np.empty(n_max, dtype=np.int64)  # [n]
    vals = np.empty((n_max, len(names)), dtype=np.float32, order="F")  # [n, K], column-major
    offs: np.ndarray | None = None  # int32 [n], only when offsets come from the strings
    parser = TimestampParser(zone, str(path), sc.timestamp_column)
    non_numeric: dict[str, int] = {}
    pos = rows_in = 0
    reader = pd.read_csv(
        path,
        usecols=[sc.timestamp_column, *names],
        dtype={sc.timestamp_column: "str"},
        chunksize=chunksize,
        skip_blank_lines=True,
    )
    try:
        for chunk in reader:
            line0 = rows_in + 2
            m = len(chunk)
            rows_in += m
            if pos + m > n_max:  # cannot happen unless the file grows while being read
                raise DataError(f"{path}: file changed while reading (more rows than lines); load it again")
            ts, off, ok = parser.parse(chunk[sc.timestamp_column], line0)
            k_ok = int(ok.sum())
            t_us[pos : pos + k_ok] = ts[ok]
            if off is not None:
                if offs is None:
                    offs = np.zeros(n_max, dtype=np.int32)
                offs[pos : pos + k_ok] = off[ok]
            for k, name in enumerate(names):
                is_dev = k >= len(ch_names)
                v = _to_float(chunk[name], name, is_dev, path, line0, non_numeric)
                if is_dev:
                    _check_device(v, devices[k - len(ch_names)], path, line0)
                vals[pos : pos + k_ok, k] = v[ok]
            pos += k_ok
    except pd.errors.ParserError as err:
        raise DataError(
            f"{path}: malformed CSV after line {rows_in + 1} ({str(err).strip()}); fix the row"
        ) from None
    finally:
        reader.close()
    if pos == 0:
        raise DataError(f"{path}: no data rows with a valid timestamp; the CSV needs at least one row")
    t_us, vals = t_us[:pos], vals[:pos]
    offs = None if offs is None else offs[:pos]
    sortable = [vals] if offs is None else [vals, offs]
    stats = sort_rows(t_us, sortable)
    return build_log(path, sc, zone, t_us, vals, offs, channels, devices, parser, non_numeric, rows_in, stats)


def limit_steps(seconds: float, step: float, n_grid: int) -> int:
    """Grid steps a value is carried for a forward-fill limit in seconds (Infinity: the whole grid)."""
    if not np.isfinite(seconds):
        return n_grid
    return int(np.floor(seconds / step + 1e-9))


def build_log(
    path: Path,
    sc: Sidecar,
    zone,
    t_us: np.ndarray,
    vals: np.ndarray,
    offs: np.ndarray | None,
    channels: list[ChannelInfo],
    devices: list[DeviceInfo],
    parser: TimestampParser,
    non_numeric: dict[str, int],
    rows_in: int,
    stats: dict[str, int],
) -> SensorLog:
    """Sorted rows (t_us int64 [n], vals float32 [n, C + D]) -> resampled SensorLog with stats (shared with uci)."""
    step_us = int(round(sc.step_seconds * US))
    t0, n_grid, g = grid_index(t_us, step_us)
    limit = limit_steps(sc.ffill_limit_seconds, sc.step_seconds, n_grid)
    n_ch = len(channels)
    values = np.empty((n_grid, n_ch), dtype=np.float32)  # [G, C]
    labels = np.empty((n_grid, len(devices)), dtype=np.float32)  # [G, D]
    names = [c.name for c in channels] + [d.name for d in devices]
    for k in range(vals.shape[1]):
        # inputs are carried up to their limit; labels never (only the grid slot a row falls in)
        lim = limit_steps(sc.ffill_limit(names[k]), sc.step_seconds, n_grid) if k < n_ch else 0
        out = resample_column(g, vals[:, k], n_grid, lim)
        if k < n_ch:
            values[:, k] = out
        else:
            labels[:, k - n_ch] = out
        if np.isnan(out).all():
            what = "channel" if k < n_ch else "device"
            name = channels[k].name if k < n_ch else devices[k - n_ch].name
            raise DataError(
                f"{path}: {what} column {name!r} has no value in any row; remove it from the sidecar or set its "
                "role to 'ignore'"
            )
    if zone is not None:
        utc_off: np.ndarray | None = zone_offsets(t0 / US, sc.step_seconds, n_grid, zone)
    elif offs is not None:
        utc_off = resample_column(g, offs.astype(np.float32), n_grid, None).astype(np.int32)
    else:
        utc_off = None
    stats.update(coverage_stats(g, n_grid, limit))
    stats.update(row_stats(values, labels))
    stats.update(
        rows_in=rows_in,
        bad_timestamps=parser.bad,
        nonexistent_times=parser.nonexistent,
        ambiguous_times=parser.ambiguous,
        non_numeric=sum(non_numeric.values()),
    )
    stats.update({f"non_numeric.{k}": v for k, v in non_numeric.items()})
    log.info(
        "%s: %d rows -> %d steps of %gs (%s)",
        path,
        rows_in,
        n_grid,
        sc.step_seconds,
        ", ".join(f"{k}={v}" for k, v in stats.items() if v and k not in ("rows", "rows_in")),
    )
    return SensorLog(
        name=path.name,
        step_seconds=float(sc.step_seconds),
        t0=t0 / US,
        values=values,
        labels=labels,
        channels=channels,
        devices=devices,
        utc_offset_seconds=utc_off,
        stats=stats,
        timezone=getattr(zone, "key", None),
    )
