"""Per-device metrics shared by the model evaluation and the baselines (one definition of each number).

`device_metrics(kind, y_true, y_pred, scores=None, levels=2) -> dict[str, float]`, rows with unknown labels
(NaN) dropped, keys by device kind:

  binary    accuracy, balanced_accuracy, f1 (of the ON class), average_precision (from `scores` = P(on);
            from the 0/1 decisions if no scores), majority_rate (share of the most common class), n, positives
  level     accuracy, balanced_accuracy (mean recall over present classes), f1 (macro over present classes),
            average_precision (macro one-vs-rest from `scores` [n, levels] class probabilities; NaN without),
            majority_rate, mae (in levels), n
  setpoint  accuracy (share within ±SETPOINT_TOLERANCE of the true value, in the device's unit), mae, rmse,
            balanced_accuracy/f1/average_precision/majority_rate = NaN (not defined), n

A metric that is undefined on the data (e.g. AP with no positive label) is NaN.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.metrics import average_precision_score, balanced_accuracy_score, f1_score

SETPOINT_TOLERANCE = 0.5
NAN = float("nan")


def _known(y_true: np.ndarray, *arrays: np.ndarray | None) -> list[np.ndarray | None]:
    y = np.asarray(y_true, dtype=np.float64)
    keep = ~np.isnan(y)
    return [y[keep], *(None if a is None else np.asarray(a)[keep] for a in arrays)]


def device_metrics(
    kind: str, y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray | None = None, levels: int = 2
) -> dict[str, float]:
    """Metrics of one device over windows; y_true [n] (NaN = unknown), y_pred [n], scores [n] or [n, levels]."""
    y, p, s = _known(y_true, y_pred, scores)
    n = int(y.size)
    if kind == "setpoint":
        err = np.abs(p.astype(np.float64) - y) if n else np.zeros(0)
        return {
            "accuracy": float((err <= SETPOINT_TOLERANCE).mean()) if n else NAN,
            "mae": float(err.mean()) if n else NAN,
            "rmse": float(math.sqrt((err**2).mean())) if n else NAN,
            "balanced_accuracy": NAN,
            "f1": NAN,
            "average_precision": NAN,
            "majority_rate": NAN,
            "n": float(n),
        }
    if n == 0:
        return {
            k: NAN for k in ("accuracy", "balanced_accuracy", "f1", "average_precision", "majority_rate")
        } | {"n": 0.0}
    yi = np.rint(y).astype(np.int64)
    pi = np.rint(p).astype(np.int64)
    counts = np.bincount(yi, minlength=levels)
    out = {"accuracy": float((yi == pi).mean()), "majority_rate": float(counts.max() / n), "n": float(n)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # single-class splits: sklearn warns, values are still defined
        out["balanced_accuracy"] = float(balanced_accuracy_score(yi, pi))
        if kind == "binary":
            out["f1"] = float(f1_score(yi, pi, pos_label=1, zero_division=0.0))
            out["positives"] = float(counts[1] if counts.size > 1 else 0)
            sc = (s if s is not None else pi).astype(np.float64)
            out["average_precision"] = float(average_precision_score(yi, sc)) if 0 < counts[1] < n else NAN
        else:
            present = np.flatnonzero(counts)
            out["f1"] = float(f1_score(yi, pi, labels=present, average="macro", zero_division=0.0))
            out["mae"] = float(np.abs(yi - pi).mean())
            if s is not None and s.ndim == 2 and present.size > 1:
                aps = [average_precision_score(yi == c, s[:, c]) for c in present if counts[c] < n]
                out["average_precision"] = float(np.mean(aps))
            else:
                out["average_precision"] = NAN
    return out
