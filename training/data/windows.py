"""Lazy fixed-length windows over a SensorLog: window-end indices and batches gathered on demand.

Never materializes all [N, C, T] windows: `batch(ends)` gathers B windows from the resampled arrays.

Window ending at row e: rows e-T+1 .. e (oldest first, newest last), T = `window`; label = labels[e].

Mask rule (the runtime's stale rule, in grid steps): channel c is masked (mask 0) in a window when its last
`stale_steps` steps are all missing (NaN). The loader already turns "no reading for longer than the sidecar's
`ffill_limit_seconds`" into NaN, so with the default `stale_steps=1` a channel is masked exactly when it has
not reported within that limit at the window's newest step; the runtime should use the same limit as its
stale limit. For a live channel, NaNs inside the window are forward-filled from the previous value, and
leading NaNs (before its first value in the window) back-filled from its first value, so live rows hold no NaN.

Values in `x` are raw physical units. Masked rows hold exactly 0.0 in every step (raw, NOT a normalized 0):
normalize with `normalize(x, mask, mean, std)` (the runtime's `edge_agent.features.normalize`), which gives
(x - mean) / std on live rows and 0 on masked rows, as the bundle contract (edge_agent/manifest.py) requires;
`coarsen_time` is the runtime's `edge_agent.features.pool_time`.

Valid ends (`.ends`): e >= T-1, at least one device label known at e (labels of other devices may be NaN;
mask them out of the loss), and at least one channel live at e.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from edge_agent.features import normalize, pool_time
from training.sensorlog import SensorLog

__all__ = ["WindowSampler", "channel_moments", "coarsen_time", "normalize"]

# The runtime's definitions (edge_agent.features), used as they are: training feeds what the daemon feeds.
coarsen_time = pool_time  # [B, C, T] -> [B, C, T // f] per kind (event [C]), the newest step whole

_BLOCK = 1 << 18  # rows per block when scanning for valid ends (bounds transient memory)


class WindowSampler:
    """Windows of `window` steps over `log`; see the module docstring for the mask and fill rules."""

    def __init__(self, log: SensorLog, window: int, *, stale_steps: int = 1) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if not 1 <= stale_steps <= window:
            raise ValueError(f"stale_steps must be in 1..window ({window}), got {stale_steps}")
        self.log = log
        self.window = int(window)
        self.stale_steps = int(stale_steps)
        self.values = log.values  # float32 [N, C], not copied
        self.labels = log.labels  # float32 [N, D]
        self._offsets = np.arange(-self.window + 1, 1, dtype=np.int64)  # [T]
        self.ends = self._valid_ends()  # int64 [M]

    @property
    def n_channels(self) -> int:
        return int(self.values.shape[1])

    @property
    def n_devices(self) -> int:
        return int(self.labels.shape[1])

    def __len__(self) -> int:
        return int(self.ends.size)

    def _live_at(self, ends: np.ndarray) -> np.ndarray:
        """bool [B, C]: channel has a value in the last stale_steps steps before each end."""
        idx = ends[:, None] + np.arange(-self.stale_steps + 1, 1, dtype=np.int64)  # [B, s]
        return ~np.isnan(self.values[idx]).all(axis=1)

    def _valid_ends(self) -> np.ndarray:
        n = len(self.log)
        parts = []
        for start in range(self.window - 1, n, _BLOCK):
            cand = np.arange(start, min(start + _BLOCK, n), dtype=np.int64)  # [b]
            labelled = (
                ~np.isnan(self.labels[cand]).all(axis=1) if self.n_devices else np.zeros(cand.size, bool)
            )
            live = self._live_at(cand).any(axis=1)
            parts.append(cand[labelled & live])
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def batch(self, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x float32 [B, C, T] raw units, mask float32 [B, C], labels float32 [B, D]) for these window ends."""
        ends = np.asarray(ends, dtype=np.int64)
        if ends.size and (ends.min() < self.window - 1 or ends.max() >= len(self.log)):
            raise IndexError(f"window ends must be in {self.window - 1}..{len(self.log) - 1}")
        t = self.window
        x = self.values[ends[:, None] + self._offsets].transpose(0, 2, 1).copy()  # [B, C, T]
        mask = np.ones(x.shape[:2], dtype=bool)  # [B, C]
        holes = np.isnan(x).any(axis=-1)  # [B, C]; most rows of a clean log have none: no work
        if holes.any():
            bi, ci = np.nonzero(holes)
            w = x[bi, ci]  # [H, T] only the rows with a missing step
            valid = ~np.isnan(w)
            live = valid[:, t - self.stale_steps :].any(axis=-1)  # [H]
            pos = np.where(valid, np.arange(t, dtype=np.int64), -1)
            np.maximum.accumulate(pos, axis=-1, out=pos)  # last valid step at or before each step
            first = np.argmax(valid, axis=-1)  # [H] first valid step (leading NaNs back-filled from it)
            pos = np.where(pos < 0, first[:, None], pos)
            filled = np.take_along_axis(w, pos, axis=-1)
            filled[~live] = 0.0
            x[bi, ci] = filled
            mask[bi, ci] = live
        return x, mask.astype(np.float32), self.labels[ends].astype(np.float32, copy=True)

    def iter_batches(
        self,
        batch_size: int,
        *,
        ends: np.ndarray | None = None,
        shuffle: bool = False,
        rng: np.random.Generator | None = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Yield (ends [B], x, mask, labels) over `ends` (default all valid ends), optionally shuffled."""
        e = self.ends if ends is None else np.asarray(ends, dtype=np.int64)
        if shuffle:
            e = (rng or np.random.default_rng()).permutation(e)
        for i in range(0, e.size, batch_size):
            sel = e[i : i + batch_size]
            yield (sel, *self.batch(sel))


def channel_moments(log: SensorLog) -> tuple[np.ndarray, np.ndarray]:
    """(mean float32 [C], std float32 [C]) over non-missing readings; std floored at 1e-6 (manifest needs > 0)."""
    n_ch = log.values.shape[1]
    mean, std = np.full(n_ch, np.nan), np.full(n_ch, np.nan)
    for c in range(n_ch):  # one column at a time: the transient copy is [N], not [N, C]
        col = log.values[:, c]
        col = col[~np.isnan(col)].astype(np.float64)
        if col.size:
            mean[c], std[c] = col.mean(), col.std()
    mean = np.nan_to_num(mean, nan=0.0)
    std = np.where(np.isfinite(std) & (std > 1e-6), std, 1e-6)
    return mean.astype(np.float32), std.astype(np.float32)
