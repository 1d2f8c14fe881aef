"""Hand-made features for the classical baselines, computed batch by batch from a WindowSampler.

* `current_features`: float32 [M, C] the newest reading of each channel at each window end; NaN when the
  channel is masked (stale) in that window.
* `window_features`: float32 [M, 6·C + 2] per channel over the window (after the sampler's fill rules):
  last, mean, std, min, max, slope (least-squares, units per step); NaN for a masked channel; then local
  hour of day (fractional) and weekday (Monday = 0) of the window end. `window_feature_names` names them.

Features are built `batch` windows at a time, so memory is O(M · features), never O(M · C · T).
"""

from __future__ import annotations

import numpy as np

from training.data import WindowSampler, hour_and_weekday

STATS = ("last", "mean", "std", "min", "max", "slope")
BATCH = 4096


def window_feature_names(channels: list[str]) -> list[str]:
    return [f"{c}.{s}" for c in channels for s in STATS] + ["hour_of_day", "weekday"]


def current_features(sampler: WindowSampler, ends: np.ndarray) -> np.ndarray:
    """float32 [M, C]: newest value per channel at each end, NaN where masked (stale)."""
    ends = np.asarray(ends, dtype=np.int64)
    out = np.empty((ends.size, sampler.n_channels), dtype=np.float32)
    s = sampler.stale_steps
    for i in range(0, ends.size, BATCH):
        e = ends[i : i + BATCH]
        recent = sampler.values[e[:, None] + np.arange(-s + 1, 1)]  # [B, s, C]
        ok = ~np.isnan(recent)
        pos = s - 1 - np.argmax(ok[:, ::-1, :], axis=1)  # [B, C] newest non-missing of the last s steps
        val = np.take_along_axis(recent, pos[:, None, :], axis=1)[:, 0, :]
        out[i : i + BATCH] = np.where(ok.any(axis=1), val, np.nan)
    return out


def _stats(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """x float32 [B, C, T], mask [B, C] -> float32 [B, C, 6] (NaN where masked)."""
    t = x.shape[-1]
    steps = np.arange(t, dtype=np.float32) - (t - 1) / 2.0  # centered step index [T]
    mean = x.mean(axis=-1)
    denom = float((steps**2).sum()) or 1.0
    slope = ((x - mean[..., None]) * steps).sum(axis=-1) / denom
    f = np.stack([x[..., -1], mean, x.std(axis=-1), x.min(axis=-1), x.max(axis=-1), slope], axis=-1)
    f[mask == 0] = np.nan
    return f.astype(np.float32, copy=False)


def window_features(sampler: WindowSampler, ends: np.ndarray) -> np.ndarray:
    """float32 [M, 6·C + 2] windowed statistics per channel + hour of day + weekday at each end."""
    ends = np.asarray(ends, dtype=np.int64)
    c = sampler.n_channels
    out = np.empty((ends.size, 6 * c + 2), dtype=np.float32)
    hour, weekday = hour_and_weekday(sampler.log)
    for i in range(0, ends.size, BATCH):
        e = ends[i : i + BATCH]
        x, mask, _ = sampler.batch(e)
        out[i : i + BATCH, : 6 * c] = _stats(x, mask).reshape(e.size, 6 * c)
        out[i : i + BATCH, 6 * c] = hour[e]
        out[i : i + BATCH, 6 * c + 1] = weekday[e]
    return out
