"""Per-device decision threshold of a binary head, chosen on validation (stored in `DeviceSpec.threshold`)."""

from __future__ import annotations

import numpy as np

GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)  # candidate thresholds


def _scores(p: np.ndarray, y: np.ndarray, thr: np.ndarray, metric: str) -> np.ndarray:
    pred = p[None, :] >= thr[:, None]  # [K, N]
    pos = y[None, :] == 1
    tp = (pred & pos).sum(1).astype(np.float64)
    fp = (pred & ~pos).sum(1)
    fn = (~pred & pos).sum(1)
    tn = (~pred & ~pos).sum(1)
    if metric == "f1":
        return np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros_like(tp), where=(2 * tp + fp + fn) > 0)
    if metric == "balanced_accuracy":
        tpr = np.divide(tp, tp + fn, out=np.zeros_like(tp), where=(tp + fn) > 0)
        tnr = np.divide(tn, tn + fp, out=np.zeros_like(tp), where=(tn + fp) > 0)
        return (tpr + tnr) / 2
    if metric == "accuracy":
        return (tp + tn) / max(len(y), 1)
    raise ValueError(f"unknown threshold metric {metric!r}; use balanced_accuracy, f1 or accuracy")


def choose_threshold(p: np.ndarray, y: np.ndarray, metric: str = "balanced_accuracy") -> tuple[float, float]:
    """(threshold, validation score): the best of GRID for `metric`; 0.5 when y has a single class.

    Ties (plateaus are common on clean data) resolve to the middle of the best plateau nearest 0.5, so the
    threshold is not pushed to the edge of a range the validation set happens not to populate.
    """
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if y.size == 0 or np.all(y == y[0]):
        return 0.5, float("nan")
    s = _scores(p, y, GRID, metric)
    best = s.max()
    good = np.flatnonzero(s >= best - 1e-9)
    # contiguous runs of best thresholds; take the run nearest 0.5, then its middle
    runs = np.split(good, np.flatnonzero(np.diff(good) > 1) + 1)
    run = min(runs, key=lambda r: float(np.min(np.abs(GRID[r] - 0.5))))
    return float(GRID[run[len(run) // 2]]), float(best)
