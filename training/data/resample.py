"""Irregular rows -> a fixed time grid, as-of semantics, limited forward fill, gaps left missing (NaN).

The value of a column at grid time g is its last non-missing reading at or before g (the same thing the
runtime sees at a tick), carried forward for at most `floor(ffill_limit / step)` further grid steps; past that
it is NaN (missing, later masked), never filled. Readings are mapped to the first grid point at or after them,
so a reading carries at most one step (< step seconds) longer than `ffill_limit` in the worst case.
Rows with equal timestamps: the later row in the file wins per cell (non-missing cells only).

Grid points are multiples of `step` since the epoch (UTC), from the first reading to the last.

Memory: the output is float32 [G, K] (4·K bytes per grid row); transient per column: ~24 bytes per grid row.
"""

from __future__ import annotations

import numpy as np

US = 1_000_000


def sort_rows(t_us: np.ndarray, cols: list[np.ndarray]) -> dict[str, int]:
    """Stable-sort rows by time in place (t_us int64 [n], each col [n]); return out_of_order/duplicates counts.

    out_of_order: rows earlier in time than some row before them in the file.
    duplicates: rows whose timestamp equals another row's (each extra copy counts once).
    """
    n = t_us.size
    stats = {"out_of_order": 0, "duplicates": 0}
    if n == 0:
        return stats
    runmax = np.maximum.accumulate(t_us)
    ooo = int((t_us[1:] < runmax[:-1]).sum())
    del runmax
    stats["out_of_order"] = ooo
    if ooo:
        order = np.argsort(t_us, kind="stable")  # int64 [n]
        t_us[:] = t_us[order]
        for c in cols:
            c[:] = c[order]
        del order
    stats["duplicates"] = int((t_us[1:] == t_us[:-1]).sum())
    return stats


def grid_index(t_us: np.ndarray, step_us: int) -> tuple[int, int, np.ndarray]:
    """(t0_us, G, g int64 [n]): grid start (multiple of step), grid length, each sorted row's grid slot."""
    first, last = int(t_us[0]), int(t_us[-1])
    t0 = -((-first) // step_us) * step_us  # ceil to a multiple of the step
    g = -((t0 - t_us) // step_us)  # ceil((t - t0) / step)
    n_grid = int(g[-1]) + 1 if last >= t0 else 1
    return t0, n_grid, g


def resample_column(
    g: np.ndarray, v: np.ndarray, n_grid: int, limit_steps: int | None, out: np.ndarray | None = None
) -> np.ndarray:
    """One column onto the grid: g int64 [n] sorted slots, v [n] values (NaN = missing) -> float32 [G].

    `limit_steps` None = carry forward without limit and back-fill the start (used for UTC offsets).
    """
    ok = ~np.isnan(v) if v.dtype.kind == "f" else np.ones(v.size, bool)
    gk = g[ok]
    vk = v[ok]
    src = np.full(n_grid, np.nan, dtype=np.float32 if out is None else out.dtype)
    if gk.size:
        last = np.empty(gk.size, dtype=bool)
        last[:-1] = gk[1:] != gk[:-1]
        last[-1] = True
        src[gk[last]] = vk[last]
    del gk, vk, ok
    filled = ffill(src, limit_steps)
    if out is None:
        return filled
    out[:] = filled
    return out


def ffill(src: np.ndarray, limit_steps: int | None) -> np.ndarray:
    """Forward-fill NaNs in a 1-D array at most `limit_steps` steps (None: unlimited, and back-fill the start)."""
    n = src.size
    idx = np.arange(n, dtype=np.int64)
    pos = np.where(np.isnan(src), -1, idx)
    np.maximum.accumulate(pos, out=pos)
    if limit_steps is None:
        valid = pos >= 0
        if not valid.any():
            return src
        pos[~valid] = int(np.argmax(valid))
        return src[pos]
    keep = (pos >= 0) & (idx - pos <= limit_steps)
    out = src[np.maximum(pos, 0)]
    out[~keep] = np.nan
    return out


def coverage_stats(g: np.ndarray, n_grid: int, limit_steps: int) -> dict[str, int]:
    """gaps (runs of grid points no row reaches within the fill limit) and gap_rows (their total length)."""
    present = np.full(n_grid, np.nan, dtype=np.float32)
    present[g] = 1.0
    covered = ~np.isnan(ffill(present, limit_steps))
    uncovered = ~covered
    starts = uncovered & np.concatenate(([True], covered[:-1]))
    return {"gaps": int(starts.sum()), "gap_rows": int(uncovered.sum())}


def row_stats(values: np.ndarray, labels: np.ndarray) -> dict[str, int]:
    """rows, masked_rows (any channel missing), masked_cells, unlabeled_rows (every device label missing)."""
    miss = np.isnan(values)  # bool [N, C]
    out = {
        "rows": int(values.shape[0]),
        "masked_rows": int(miss.any(axis=1).sum()),
        "masked_cells": int(miss.sum()),
    }
    out["unlabeled_rows"] = int(np.isnan(labels).all(axis=1).sum()) if labels.shape[1] else out["rows"]
    return out
