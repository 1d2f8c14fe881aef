"""The model's input rules, one definition for the daemon and for training (pure numpy, any batch shape).

* `normalize(x, mask, mean, std)`: (raw - mean) / std per channel, exactly 0 where the channel is masked or
  the value is not finite (the bundle contract, `edge_agent.manifest`).
* `pool_time(x, factor)`: the time pooling of a tier with `time_factor` f: mean of f consecutive steps,
  groups aligned at the newest step (the oldest `T % f` steps are dropped).

Shapes: x [..., C, T] (one window [C, T] in the daemon, a batch [B, C, T] in training), mask [..., C],
mean/std [C] (already indexed by the fed channel ids).
"""

from __future__ import annotations

import numpy as np


def normalize(x: np.ndarray, mask: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """float32 [..., C, T]: (x - mean[c]) / std[c] on live rows; 0.0 where mask[c] == 0 or non-finite."""
    mean = np.asarray(mean, dtype=np.float32)[:, None]  # [C, 1]
    std = np.asarray(std, dtype=np.float32)[:, None]
    z = (np.asarray(x, dtype=np.float32) - mean) / std
    live = np.asarray(mask)[..., None] > 0  # [..., C, 1]
    return np.where(live & np.isfinite(z), z, np.float32(0.0)).astype(np.float32, copy=False)


def pool_time(x: np.ndarray, factor: int) -> np.ndarray:
    """[..., T] -> [..., T // factor]: means of `factor` consecutive steps, aligned at the newest step."""
    if factor <= 1:
        return x
    t = x.shape[-1]
    n = t // factor
    return x[..., t - n * factor :].reshape(*x.shape[:-1], n, factor).mean(axis=-1)
