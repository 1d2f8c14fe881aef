"""Output heads of the level and setpoint devices: what each head's raw outputs mean, and how they are decoded.

A head owns `DeviceHead.n_out` raw outputs of the model's additive readout (each raw output is an exact
attention-weighted sum of per-channel terms, so every head stays faithful by construction). Modes:

  binary                 1 logit -> P(on)
  level    softmax       L class logits -> the expected level (legacy; the bundle's first format)
  level    ordinal       L-1 cumulative logits r_j, P(y > j) = sigmoid(r_j) -> the MEDIAN level
                         (count of P(y > j) >= 1/2), i.e. the decision does not average two far classes
  setpoint regression    1 normalized value (y - mean) / std (legacy)
  setpoint classes       V logits over the training label's distinct values (quantile-bin medians when
                         there are more than MAX_CLASSES) -> the most probable value

Every decoded output is in device units (bundle contract, `edge_agent.manifest`): a level head emits a level
whose runtime rounding (`edge_agent.policy.decide_values`: floor(v + 0.5)) is its decision, a setpoint head
a value in the device's unit. Discrete heads add a bounded sub-step offset toward the expectation
(|offset| <= OFFSET x one level, or SETPOINT_OFFSET of the value range) so the output still moves
continuously when a channel is masked (faithfulness is measured on output changes) while the runtime's
rounding and the setpoint error stay those of the discrete decision.

`head_loss(head, raw [N, n_out], y [N], class_weight)` is the training loss of one head (per-window class
weights balance the classes; balanced accuracy is the level metric).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

MAX_CLASSES = 16  # a setpoint head with more distinct training values uses this many quantile bins
OFFSET = 0.45  # level heads: the output stays within this many levels of the decision (< 1/2: rounding)
SETPOINT_OFFSET = 0.01  # setpoint classes: at most this share of the value range away from the chosen value


def setpoint_values(y: np.ndarray, max_classes: int = MAX_CLASSES) -> list[float]:
    """The class values of a setpoint head from its training labels y [N] (no NaN): the distinct values
    (rounded to 0.01), or the medians of `max_classes` quantile bins when there are more."""
    v = np.unique(np.round(y.astype(np.float64), 2))
    if v.size <= max_classes:
        return [float(a) for a in v]
    edges = np.quantile(y, np.linspace(0, 1, max_classes + 1))
    bins = np.clip(np.searchsorted(edges, y, side="right") - 1, 0, max_classes - 1)
    return sorted({float(np.round(np.median(y[bins == b]), 2)) for b in np.unique(bins)})


def value_index(values: list[float], y: torch.Tensor) -> torch.Tensor:
    """Index [N] of the class value nearest to each label y [N]."""
    v = torch.tensor(values, dtype=y.dtype)
    return (y[:, None] - v[None, :]).abs().argmin(-1)


def ordinal_class_probs(r: torch.Tensor) -> torch.Tensor:
    """Class probabilities [N, L] from cumulative logits r [N, L-1] (clipped at 0 where r is not monotone)."""
    p = torch.sigmoid(r)  # [N, L-1] P(y > j)
    one = torch.ones_like(p[:, :1])
    upper = torch.cat([one, p], -1)  # P(y > j - 1), j = 0..L-1
    lower = torch.cat([p, torch.zeros_like(one)], -1)  # P(y > j)
    return (upper - lower).clamp_min(0.0)


def decode_level(r: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(level [N, 1] in levels, confidence [N, 1]) from the head's raw outputs r [N, n_out]."""
    if mode == "ordinal":
        p = torch.sigmoid(r)  # [N, L-1]
        levels = r.shape[-1]  # L - 1
        median = (p >= 0.5).to(r.dtype).sum(-1, keepdim=True)  # [N, 1]
        expected = p.sum(-1, keepdim=True)  # [N, 1]
        out = median + OFFSET * (expected - median) / max(levels, 1)
        return out, ordinal_class_probs(r).max(-1, keepdim=True).values
    probs = torch.softmax(r, -1)  # [N, L]
    levels_t = torch.arange(r.shape[-1], dtype=probs.dtype)
    return (probs * levels_t).sum(-1, keepdim=True), probs.max(-1, keepdim=True).values


def decode_setpoint_classes(r: torch.Tensor, values: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """(value [N, 1] in device units, confidence [N, 1]) from class logits r [N, V]."""
    probs = torch.softmax(r, -1)  # [N, V]
    v = torch.tensor(values, dtype=r.dtype)  # [V]
    chosen = v[probs.argmax(-1)].unsqueeze(-1)  # [N, 1]
    expected = (probs * v).sum(-1, keepdim=True)
    out = chosen + SETPOINT_OFFSET * (expected - chosen)  # |offset| <= SETPOINT_OFFSET x value range
    return out, probs.max(-1, keepdim=True).values


def level_class_weights(y: np.ndarray, levels: int, power: float) -> torch.Tensor:
    """Per-class weights [L] ~ (N / count) ** power, mean 1 over the classes (+1 smoothing on counts)."""
    counts = np.bincount(y.astype(int), minlength=levels).astype(np.float64) + 1.0
    w = (counts.sum() / counts) ** power
    return torch.tensor(w / w.mean(), dtype=torch.float32)


def ordinal_loss(r: torch.Tensor, y: torch.Tensor, class_weight: torch.Tensor | None) -> torch.Tensor:
    """Cumulative-logit loss: BCE of r [N, L-1] against (y > j), each window weighted by its class weight."""
    j = torch.arange(r.shape[-1], dtype=y.dtype)
    target = (y[:, None] > j[None, :]).to(r.dtype)  # [N, L-1]
    per = F.binary_cross_entropy_with_logits(r, target, reduction="none").sum(-1)  # [N]
    if class_weight is None:
        return per.mean()
    w = class_weight[y.long()]
    return (per * w).sum() / w.sum()
