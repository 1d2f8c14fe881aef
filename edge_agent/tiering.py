"""Feeding a tier: which channels (all, or the channel budget's top-k plus the triggering channels' whole
rooms and the tracker's free calendar channels) and how many
time steps (the tier's `time_factor` pooling), then one run of the bundle. Pure apart from the model run."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from edge_agent.features import pool_time
from edge_agent.focus import AttentionTracker
from edge_agent.inference import Bundle, ModelOutput
from edge_agent.manifest import TierSpec


def select_channels(
    tier: TierSpec, n_channels: int, tracker: AttentionTracker, triggered: Iterable[int]
) -> np.ndarray:
    """Channel ids [C_fed] for `tier`: all, or the tracker's top-k plus the rooms of the channels an event
    fired on (`AttentionTracker.rooms`) and the tracker's `free` ones (the calendar, `free_channels`)."""
    if tier.channel_budget is None or tier.channel_budget >= n_channels:
        return all_channels(n_channels)
    rooms = {c for t in triggered for c in tracker.rooms[t]}  # the triggering channels' rooms, whole
    chosen = set(tracker.top_k(tier.channel_budget)) | rooms | set(tracker.free)
    return np.array(sorted(chosen), dtype=np.int64)


def all_channels(n: int) -> np.ndarray:
    """The ids 0..n-1 (every channel fed), one read-only array per n: not rebuilt per decision."""
    ids = _ALL.get(n)
    if ids is None:
        ids = _ALL[n] = np.arange(n, dtype=np.int64)
        ids.setflags(write=False)
    return ids


_ALL: dict[int, np.ndarray] = {}


def run_tier(
    bundle: Bundle,
    tier: TierSpec,
    x: np.ndarray,
    mask: np.ndarray,
    ids: np.ndarray,
) -> ModelOutput:
    """x [C, W] raw, mask [C]; feeds x[ids] pooled per kind to [C_fed, W // time_factor] (newest step whole).
    Every channel in order (`all_channels`): x and mask as they are, no gather."""
    every = len(ids) == x.shape[0] and ids is _ALL.get(len(ids))
    xs, ms = (x, mask) if every else (x[ids], mask[ids])
    if tier.time_factor > 1:
        xs = pool_time(xs, tier.time_factor, bundle.event[ids])  # [C_fed, W // f]
    return bundle.run(tier.name, xs, ms, ids)
