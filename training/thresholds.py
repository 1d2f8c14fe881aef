"""Per-device decision threshold of a binary head, chosen on validation by a named rule.

A threshold is for ACTING (the daemon switches the device at P(on) >= threshold), so the rule says what a
wrong decision costs. Rules (`--threshold-rule`, recorded in the manifest's `threshold_rule`):

  f1              the F1 of the ON class (default for a dataset of device states: rare devices keep recall
                  and precision; balanced accuracy pushed a rare circuit's F1 from .65 to .42)
  accuracy        every wrong decision costs the same (= cost:1/1)
  balanced        mean of the ON and OFF recalls (alias balanced_accuracy); favours rare ONs heavily
  cost:ON/OFF     least expected cost, where a wrong ON (switched on, should be off) costs ON and a wrong
                  OFF (left off, should be on) costs OFF, e.g. cost:1/3 = a dark room is 3x worse than a lit
                  empty one

`choose_threshold(p, y, rule)` returns the best of GRID for the rule, the same function for the model and
every baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)  # candidate thresholds
DEFAULT_RULE = "f1"
RULES_HELP = "f1, accuracy, balanced or cost:ON/OFF (cost of a wrong ON / a wrong OFF, e.g. cost:1/3)"


@dataclass(frozen=True)
class ThresholdRule:
    """A parsed rule: `kind` f1 | accuracy | balanced_accuracy | cost; costs of a wrong ON / wrong OFF."""

    kind: str
    cost_on: float = 1.0
    cost_off: float = 1.0

    @property
    def name(self) -> str:
        """Canonical text, as recorded in the manifest (parse(name) == self)."""
        if self.kind == "cost":
            return f"cost:{self.cost_on:g}/{self.cost_off:g}"
        return self.kind

    @property
    def key(self) -> str:
        """Metric key of the validation score: val_<key>.<device> (cost: minus the mean cost per window)."""
        return self.kind


def parse_rule(text: str | ThresholdRule) -> ThresholdRule:
    """'f1' | 'accuracy' | 'balanced' | 'balanced_accuracy' | 'cost:ON/OFF' -> ThresholdRule (ValueError)."""
    if isinstance(text, ThresholdRule):
        return text
    t = str(text).strip().lower()
    if t in ("f1", "accuracy"):
        return ThresholdRule(t)
    if t in ("balanced", "balanced_accuracy"):
        return ThresholdRule("balanced_accuracy")
    if t.startswith("cost:"):
        try:
            on, off = (float(v) for v in t[5:].split("/"))
        except ValueError:
            raise ValueError(
                f"threshold rule {text!r}: write cost:ON/OFF with two numbers, e.g. cost:1/3"
            ) from None
        if not (on > 0 and off > 0 and np.isfinite(on) and np.isfinite(off)):
            raise ValueError(f"threshold rule {text!r}: both costs must be positive numbers, e.g. cost:1/3")
        return ThresholdRule("cost", on, off)
    raise ValueError(f"unknown threshold rule {text!r}; use {RULES_HELP}")


def _scores(p: np.ndarray, y: np.ndarray, thr: np.ndarray, rule: ThresholdRule) -> np.ndarray:
    pred = p[None, :] >= thr[:, None]  # [K, N]
    pos = y[None, :] == 1
    tp = (pred & pos).sum(1).astype(np.float64)
    fp = (pred & ~pos).sum(1).astype(np.float64)
    fn = (~pred & pos).sum(1).astype(np.float64)
    tn = (~pred & ~pos).sum(1).astype(np.float64)
    if rule.kind == "f1":
        return np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros_like(tp), where=(2 * tp + fp + fn) > 0)
    if rule.kind == "balanced_accuracy":
        tpr = np.divide(tp, tp + fn, out=np.zeros_like(tp), where=(tp + fn) > 0)
        tnr = np.divide(tn, tn + fp, out=np.zeros_like(tp), where=(tn + fp) > 0)
        return (tpr + tnr) / 2
    if rule.kind == "accuracy":
        return (tp + tn) / max(len(y), 1)
    return -(rule.cost_on * fp + rule.cost_off * fn) / max(len(y), 1)  # cost: higher is better


def choose_threshold(
    p: np.ndarray, y: np.ndarray, rule: str | ThresholdRule = DEFAULT_RULE
) -> tuple[float, float]:
    """(threshold, validation score): the best of GRID for `rule`; 0.5 when y has a single class.

    Ties (plateaus are common on clean data) resolve to the middle of the best plateau nearest 0.5, so the
    threshold is not pushed to the edge of a range the validation set happens not to populate.
    """
    r = parse_rule(rule)
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if y.size == 0 or np.all(y == y[0]):
        return 0.5, float("nan")
    s = _scores(p, y, GRID, r)
    best = s.max()
    good = np.flatnonzero(s >= best - 1e-9)
    # contiguous runs of best thresholds; take the run nearest 0.5, then its middle
    runs = np.split(good, np.flatnonzero(np.diff(good) > 1) + 1)
    run = min(runs, key=lambda r_: float(np.min(np.abs(GRID[r_] - 0.5))))
    return float(GRID[run[len(run) // 2]]), float(best)


def sample_ends(ends: np.ndarray, n: int | None) -> np.ndarray:
    """The validation window ends thresholds are chosen on: all (n None or 0), else n evenly strided."""
    if not n or ends.size <= n:
        return ends
    return ends[np.linspace(0, ends.size - 1, n).astype(np.int64)]
