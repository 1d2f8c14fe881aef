"""The `focused` tier's channel set: a running mean of attention per channel, and its top-k.

Score of a channel in one decision = the **max over devices** of its attention weight (not the mean: a channel
that drives one device strongly, e.g. the bathroom humidity for the bathroom fan, must stay even if every other
device ignores it; a mean over 10 devices would dilute it below channels that matter a little to all).

Only the channels that were fed to the model are updated. When a tier was fed a subset of C_fed of the
manifest's C channels, its attention rows sum to 1 over C_fed channels, so the scores are scaled by C_fed / C
to stay comparable with scores from full-channel tiers (a uniform attention maps to 1/C either way); the
channels not fed keep their last mean. Before any update every channel has the uniform prior 1/C.

`top_k(k)` returns exactly min(k, C) channel indices, sorted by index (stable input ordering): first the
`always` channels (fast event channels, so motion still triggers decisions), then the highest running means.
A channel already selected is kept unless a newcomer beats it by more than `stickiness` (relative), so two
near-equal channels do not swap the input set on every call.

The agent persists it (`to_json` / `from_json`) in its `agent_state` table across restarts; a corrupt or
mismatched value logs one line and starts fresh.

With `per_device` (the daemon's tracker) a running mean per device is kept too, and after the `always` channels
each device's own top channel beyond the always and free ones comes first (devices in order, one each, while the budget lasts), then the highest
max-over-devices means: a ranking by the max alone let the temperatures and CO2 fill the budget and dropped
every illuminance, and a light decided without its room's light level turned on in daylight (the demo
bundle's event test). A channel not fed keeps its means, so a device's top channel, always fed, stays current.

`free` channels (the calendar: computed from the clock, never stale, no sensor behind them) are fed on top of
the budget by `edge_agent.tiering.select_channels`, never ranked out: without the time of day a budgeted tier
answered the heating's setpoint from the daytime pattern at night (the demo bundle's event test: most of
focused's wrong setpoints).

`rooms` (`room_groups`: channels sharing the name prefix, `living.*`) are the channels fed with a channel
whose event triggered the decision (`select_channels`): a light decided on its room's motion without its room's
light level switched on in daylight (the demo bundle's event test: with the full model on the budget, 11 of
its 17 missed commands); with the trigger's room whole the budgeted tiers went from 89.5 to 97.9 % (focused).

`runtime_tracker(manifest)` is THE tracker the daemon keeps for a bundle (always = the fast-kind channels,
free = the calendar channels, `edge_agent.kinds`; default alpha and stickiness); training's evaluation builds the same one to choose the
focused tier's channel set, so the reported focused/sparse figures are for channels the daemon feeds.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from edge_agent.kinds import FAST_KINDS
from edge_agent.manifest import Manifest

logger = logging.getLogger(__name__)

STATE_FORMAT = 1


class AttentionTracker:
    """Running mean of per-channel attention (max over devices); see the module docstring."""

    def __init__(
        self,
        n_channels: int,
        *,
        alpha: float = 0.02,
        always: Sequence[int] = (),
        names: Sequence[str] | None = None,
        stickiness: float = 0.1,
        free: Sequence[int] = (),
        per_device: bool = False,
        rooms: Sequence[Sequence[int]] | None = None,
    ) -> None:
        if n_channels < 1:
            raise ValueError(f"n_channels must be >= 1, got {n_channels}")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        if names is not None and len(names) != n_channels:
            raise ValueError(f"{len(names)} channel names for {n_channels} channels")
        bad = [c for c in always if not 0 <= int(c) < n_channels]
        if bad:
            raise ValueError(f"always channels {bad} out of range 0..{n_channels - 1}")
        self.n_channels = n_channels
        self.alpha = float(alpha)
        self.always = sorted({int(c) for c in always})
        bad = [c for c in free if not 0 <= int(c) < n_channels]
        if bad:
            raise ValueError(f"free channels {bad} out of range 0..{n_channels - 1}")
        self.free = sorted({int(c) for c in free})  # fed on top of the budget (select_channels)
        self.per_device = bool(per_device)
        if rooms is not None and len(rooms) != n_channels:
            raise ValueError(f"{len(rooms)} room groups for {n_channels} channels")
        # per channel, the channels of its room (itself included): fed with it when it triggers (select_channels)
        self.rooms = [
            sorted({int(c) for c in g} | {i}) for i, g in enumerate(rooms or [[] for _ in range(n_channels)])
        ]
        bad = [c for g in self.rooms for c in g if not 0 <= c < n_channels]
        if bad:
            raise ValueError(f"room channels {bad} out of range 0..{n_channels - 1}")
        self.dev_mean: np.ndarray | None = None  # [D, C] per-device running means (per_device), lazily sized
        self.names = list(names) if names is not None else None
        self.stickiness = float(stickiness)
        self.mean = np.full(n_channels, 1.0 / n_channels, dtype=np.float64)
        self.updates = 0
        self._selected: list[int] = []
        self._warned = False

    def _warn_once(self, msg: str, *args: Any) -> None:
        if not self._warned:
            self._warned = True
            logger.warning(msg + " (logged once)", *args)

    def update(self, attention: np.ndarray, channel_ids: np.ndarray) -> None:
        """Fold one decision's attention [n_devices, C_fed] (or [1, n_devices, C_fed]) for channels `channel_ids`."""
        att = np.asarray(attention, dtype=np.float64)
        ids = np.asarray(channel_ids).reshape(-1)
        if att.ndim == 3 and att.shape[0] == 1:
            att = att[0]
        if att.ndim == 1:
            att = att[None, :]
        if att.ndim != 2 or att.shape[1] != ids.shape[0] or att.shape[0] == 0 or ids.shape[0] == 0:
            self._warn_once(
                "attention tracker: shape mismatch attention %s vs channel_ids %s, update ignored",
                np.shape(attention),
                np.shape(channel_ids),
            )
            return
        if not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0 or ids.max() >= self.n_channels:
            self._warn_once(
                "attention tracker: channel_ids outside 0..%s, update ignored", self.n_channels - 1
            )
            return
        if not np.all(np.isfinite(att)):
            self._warn_once("attention tracker: non-finite attention, update ignored")
            return
        score = att.max(axis=0) * (ids.shape[0] / self.n_channels)
        a = self.alpha
        ids = ids.astype(np.int64)
        self.mean[ids] = (1.0 - a) * self.mean[ids] + a * score
        if self.per_device:
            if self.dev_mean is None or self.dev_mean.shape[0] != att.shape[0]:
                self.dev_mean = np.full((att.shape[0], self.n_channels), 1.0 / self.n_channels)
            scaled = att * (ids.shape[0] / self.n_channels)  # [D, C_fed]
            self.dev_mean[:, ids] = (1.0 - a) * self.dev_mean[:, ids] + a * scaled
        self.updates += 1

    def top_k(self, k: int) -> list[int]:
        """min(k, C) channel indices sorted by index: `always` first, then the highest running means."""
        k = max(0, min(int(k), self.n_channels))
        prev = set(self._selected)
        boosted = self.mean * np.array(
            [1.0 + self.stickiness if c in prev else 1.0 for c in range(self.n_channels)]
        )
        # rank: highest boosted mean first, ties by lower index
        ranked = sorted(range(self.n_channels), key=lambda c: (-boosted[c], c))
        always_set = set(self.always)
        always = [c for c in ranked if c in always_set]
        if len(always) > k:
            self._warn_once(
                "attention tracker: %s always-channels exceed the budget k=%s; keeping the top ones",
                len(always),
                k,
            )
        chosen = always[:k]
        if self.per_device and self.dev_mean is not None:
            free = set(self.free)  # fed anyway: not worth a slot
            for d in range(self.dev_mean.shape[0]):
                if len(chosen) >= k:
                    break
                dm = self.dev_mean[d] * np.array(
                    [1.0 + self.stickiness if c in prev else 1.0 for c in range(self.n_channels)]
                )
                for c in sorted(range(self.n_channels), key=lambda c: (-dm[c], c)):
                    if c not in free and c not in always_set:  # its top channel beyond the always-fed ones
                        if c not in chosen:
                            chosen.append(c)
                        break
            ranked = [c for c in ranked if c not in free] + [c for c in ranked if c in free]
        for c in ranked:
            if len(chosen) >= k:
                break
            if c not in chosen:
                chosen.append(c)
        self._selected = sorted(chosen)
        return list(self._selected)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": STATE_FORMAT,
                "n_channels": self.n_channels,
                "names": self.names,
                "updates": self.updates,
                "mean": [float(v) for v in self.mean],
                "selected": self._selected,
                "dev_mean": None if self.dev_mean is None else [[float(v) for v in r] for r in self.dev_mean],
            }
        )

    @classmethod
    def from_json(cls, s: str | None, n_channels: int, **kw: Any) -> AttentionTracker:
        """Restore a persisted tracker; a corrupt or mismatched value logs one line and returns a fresh one."""
        fresh = cls(n_channels, **kw)
        if s is None:
            return fresh
        try:
            d = json.loads(s)
            if not isinstance(d, dict) or d.get("format") != STATE_FORMAT:
                raise ValueError(
                    f"unknown format {d.get('format') if isinstance(d, dict) else type(d).__name__}"
                )
            if d.get("n_channels") != n_channels:
                raise ValueError(f"saved for {d.get('n_channels')} channels, bundle has {n_channels}")
            if fresh.names is not None and d.get("names") is not None and d["names"] != fresh.names:
                raise ValueError("saved for a different channel list")
            mean = d.get("mean")
            if not isinstance(mean, list) or len(mean) != n_channels:
                raise ValueError("mean is not a list of one value per channel")
            if not all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= 1
                for v in mean
            ):
                raise ValueError("mean holds a value outside 0..1 or not a number")
            updates = d.get("updates", 0)
            if not isinstance(updates, int) or isinstance(updates, bool) or updates < 0:
                raise ValueError("updates is not a non-negative integer")
            selected = d.get("selected", [])
            if not isinstance(selected, list) or not all(
                isinstance(c, int) and not isinstance(c, bool) and 0 <= c < n_channels for c in selected
            ):
                raise ValueError("selected holds an invalid channel index")
        except (ValueError, TypeError) as e:  # json.JSONDecodeError is a ValueError
            logger.warning("attention tracker: persisted state unusable (%s); starting fresh", e)
            return fresh
        fresh.dev_mean = _dev_mean(d.get("dev_mean"), n_channels) if fresh.per_device else None
        fresh.mean = np.asarray(mean, dtype=np.float64)
        fresh.updates = updates
        fresh._selected = sorted(set(selected))
        return fresh


def _dev_mean(v: Any, n_channels: int) -> np.ndarray | None:
    """The persisted per-device means [D, C], or None (absent, or not a list of rows of C values in 0..1)."""
    try:
        arr = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    ok = arr.ndim == 2 and arr.shape[0] > 0 and arr.shape[1] == n_channels and np.all(np.isfinite(arr))
    return arr if ok and np.all((arr >= 0) & (arr <= 1)) else None


def fast_channels(kinds: Sequence[str]) -> list[int]:
    """Sorted indices of the channels whose kind is fast (events trigger a decision; always fed)."""
    return [i for i, k in enumerate(kinds) if k in FAST_KINDS]


def free_channels(kinds: Sequence[str]) -> list[int]:
    """Sorted indices of the calendar channels (from the clock: fed to every budgeted tier, on top of k)."""
    return [i for i, k in enumerate(kinds) if k == "calendar"]


def room_groups(names: Sequence[str], kinds: Sequence[str]) -> list[list[int]]:
    """Per channel, the sorted indices of the channels in its room: the same name prefix before the first
    '.' (`living.motion` and `living.illuminance`); a channel without a prefix, and a calendar channel, is
    alone in its room."""
    prefix = [
        n.split(".", 1)[0] if "." in n and k != "calendar" else None
        for n, k in zip(names, kinds, strict=True)
    ]
    return [
        [j for j, q in enumerate(prefix) if q is not None and q == p] if p is not None else [i]
        for i, p in enumerate(prefix)
    ]


def runtime_tracker(manifest: Manifest, state: str | None = None) -> AttentionTracker:
    """The tracker the daemon keeps for `manifest`'s channels, restored from `state` (`to_json`) if usable."""
    names = [c.name for c in manifest.channels]
    kinds = [c.kind for c in manifest.channels]
    return AttentionTracker.from_json(
        state,
        len(names),
        always=fast_channels(kinds),
        names=names,
        free=free_channels(kinds),
        per_device=True,
        rooms=room_groups(names, kinds),
    )
