"""The model's input rules, one definition for the daemon and for training (pure numpy, any batch shape).

* `normalize(x, mask, mean, std)`: (raw - mean) / std per channel, exactly 0 where the channel is masked or
  the value is not finite (the bundle contract, `edge_agent.manifest`).
* `pool_time(x, factor, event)`: the time pooling of a tier with `time_factor` f, per channel kind. The
  pooled window has `T // f` steps: the LAST one is the newest fine step alone (never diluted: an event that
  just happened, the one that triggered the decision, reaches a coarse tier at full size and full resolution,
  and a motion that just stopped reads 0, not a quarter), and the `T // f - 1` steps before it are groups of
  f fine steps ending just before the newest one. Within a group, event channels (`event[c]`: motion,
  contact; `event_rows(kinds)`) keep their max (a blip is not lost), level channels their mean. The oldest
  `T - 1 - (T // f - 1) * f` fine steps are dropped.

Shapes: x [..., C, T] (one window [C, T] in the daemon, a batch [B, C, T] in training), mask [..., C],
mean/std [C] and event [C] (already indexed by the fed channel ids). Max and mean commute with the per-channel
normalization (std > 0), so pooling raw readings (daemon) or normalized ones (training) gives the same input.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge_agent.kinds import EVENT_KINDS


def normalize(
    x: np.ndarray, mask: np.ndarray, mean: np.ndarray, std: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """float32 [..., C, T]: (x - mean[c]) / std[c] on live rows; 0.0 where mask[c] == 0 or non-finite.

    Written into `out` (float32, x's shape) when given, e.g. the daemon's bound model input; else a new array."""
    mean = np.asarray(mean, dtype=np.float32)[:, None]  # [C, 1]
    std = np.asarray(std, dtype=np.float32)[:, None]
    z = np.subtract(np.asarray(x, dtype=np.float32), mean, out=out)
    np.divide(z, std, out=z)
    keep = np.isfinite(z)
    keep &= np.asarray(mask)[..., None] > 0  # [..., C, 1]: live rows
    np.copyto(z, np.float32(0.0), where=~keep)
    return z


def event_rows(kinds: Sequence[str]) -> np.ndarray:
    """bool [C]: True where the channel's kind is an event kind (pooled by max), False for levels (mean)."""
    return np.array([k in EVENT_KINDS for k in kinds], dtype=bool)


def pool_time(x: np.ndarray, factor: int, event: np.ndarray) -> np.ndarray:
    """[..., C, T] -> [..., C, T // factor]: groups of `factor` steps (max for event rows, mean for the others)
    followed by the newest step alone; see the module docstring."""
    if factor <= 1:
        return x
    t = x.shape[-1]
    n = t // factor
    if n < 1:
        raise ValueError(f"pool_time: a window of {t} steps cannot be pooled by {factor}")
    ev = np.asarray(event, dtype=bool)
    if ev.shape != (x.shape[-2],):
        raise ValueError(f"pool_time: event flags {ev.shape} for {x.shape[-2]} channels")
    newest = x[..., t - 1 :]  # [..., C, 1]
    if n == 1:
        return newest
    body = x[..., t - 1 - (n - 1) * factor : t - 1].reshape(*x.shape[:-1], n - 1, factor)  # [..., C, n-1, f]
    groups = np.where(ev[:, None], body.max(axis=-1), body.mean(axis=-1)).astype(x.dtype, copy=False)
    return np.concatenate([groups, newest], axis=-1)
