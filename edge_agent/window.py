"""The rolling window: a per-channel ring buffer on the bundle's time step, with the stale mask (pure).

Readings land in the step `floor(t / step_seconds)`. Event channels (motion, contact) keep the max within a
step, others the last value. A snapshot at time `now` covers the `window` steps ending with the step that
holds `now`, oldest first; gaps are forward-filled, and the steps before a channel's first value are
back-filled (or filled with its last value from before the window). A channel is live while its last report
is at most `stale_after` seconds old; `calendar.*` channels are computed from the clock in the home's time
zone (`zone`) and are always live. Every method takes clock values; nothing here reads the time or sleeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np

from edge_agent.calendar_features import calendar_values, local_seconds
from edge_agent.kinds import EVENT_KINDS


@dataclass(frozen=True, slots=True)
class ClosedStep:
    """A step a channel has moved past: one downsampled reading for the recorder."""

    channel: int
    ts: float  # start of the step, epoch seconds
    value: float


class Window:
    """Ring buffer of `length` steps for every channel."""

    def __init__(
        self,
        names: Sequence[str],
        kinds: Sequence[str],
        step_seconds: float,
        length: int,
        stale_after: Sequence[float],
        zone: ZoneInfo | None = None,
    ) -> None:
        self.names = list(names)
        self.step = float(step_seconds)
        self.length = int(length)
        self.zone = zone or ZoneInfo("UTC")  # the home's time zone: calendar inputs are computed in it
        c = len(self.names)
        self._event = np.array([k in EVENT_KINDS for k in kinds], dtype=bool)
        self._calendar = [i for i, k in enumerate(kinds) if k == "calendar"]
        self._stale_after = np.asarray(stale_after, dtype=np.float64)  # [C]
        self._buf = np.full((c, self.length), np.nan)  # [C, W] value per slot
        self._buf_step = np.full((c, self.length), -1, dtype=np.int64)  # [C, W] absolute step held by slot
        self._cur_step = np.full(c, -1, dtype=np.int64)  # [C] newest step written
        self._carry_step = np.full(c, -1, dtype=np.int64)  # [C] newest step evicted from the ring
        self._carry_val = np.full(c, np.nan)
        self.last_time = np.full(c, -np.inf)  # [C] time of the last live report (clock time)
        self.last_seen = np.full(c, -np.inf)  # [C] the same on the steady clock: staleness is measured on it
        self.last_value = np.full(c, np.nan)  # [C]
        self._cal_cache: tuple[int, np.ndarray] | None = (
            None  # (step, calendar rows [C_cal, W]) of the last snapshot
        )

    def update(
        self, ch: int, value: float, t: float, *, fresh: bool = True, seen: float | None = None
    ) -> ClosedStep | None:
        """Write a reading; returns the channel's previous step if this reading moved past it.

        `fresh=False` (a retained message: its age is unknown) fills the window but does not make the
        channel live: it stays masked until a live report proves the sensor is there. `seen` is the steady
        (monotonic) time of the report, default `t`: a wall-clock step never makes a silent channel live."""
        s = int(t // self.step)
        slot = s % self.length
        closed = None
        prev = int(self._cur_step[ch])
        if prev >= 0 and s > prev:
            closed = ClosedStep(ch, prev * self.step, float(self._buf[ch, prev % self.length]))
        held = int(self._buf_step[ch, slot])
        if held == s:
            old = self._buf[ch, slot]
            self._buf[ch, slot] = max(old, value) if self._event[ch] else value
        elif held < s:
            if held >= 0 and held > self._carry_step[ch]:
                self._carry_step[ch] = held
                self._carry_val[ch] = self._buf[ch, slot]
            self._buf[ch, slot] = value
            self._buf_step[ch, slot] = s
        # else: a late reading older than the slot's step: dropped (the ring has moved on)
        if s > prev:
            self._cur_step[ch] = s
        if fresh:
            self.last_time[ch] = t
            self.last_seen[ch] = t if seen is None else seen
        self.last_value[ch] = value  # arrival order is time order
        return closed

    def adopt(self, old: Window, pairs: Sequence[tuple[int, int]]) -> None:
        """Take over channel history from `old` (a bundle swap): `pairs` of (old index, new index).

        Same step and length: the ring rows are copied as they are. Otherwise each channel's last reading is
        replayed at its time (the window refills on the new step as readings come in)."""
        same = old.step == self.step and old.length == self.length
        for src, dst in pairs:
            if same:
                for name in (
                    "_buf",
                    "_buf_step",
                    "_cur_step",
                    "_carry_step",
                    "_carry_val",
                    "last_time",
                    "last_seen",
                    "last_value",
                ):
                    getattr(self, name)[dst] = getattr(old, name)[src]
            elif np.isfinite(old.last_time[src]) and not np.isnan(old.last_value[src]):
                self.update(
                    dst, float(old.last_value[src]), float(old.last_time[src]), seen=float(old.last_seen[src])
                )

    def open_steps(self) -> list[ClosedStep]:
        """The newest (still open) step of every channel that has one: flushed to the recorder on stop."""
        out = []
        for ch in np.nonzero(self._cur_step >= 0)[0]:
            s = int(self._cur_step[ch])
            out.append(ClosedStep(int(ch), s * self.step, float(self._buf[ch, s % self.length])))
        return out

    def mask(self, ch: int) -> None:
        """Mask `ch` at once (its sensor went offline): live again only with its next fresh report."""
        self.last_seen[ch] = -np.inf

    def is_live(self, ch: int, now: float) -> bool:
        """`now` on the steady clock (see `update`)."""
        return bool(now - self.last_seen[ch] <= self._stale_after[ch])

    def live(self, now: float) -> np.ndarray:
        """[C] bool: reported within its stale limit (calendar channels always live)."""
        live = (now - self.last_seen) <= self._stale_after
        live[self._calendar] = True
        return live

    def snapshot(self, now: float, seen_now: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw values x [C, W] float32 (NaN where never reported) and mask [C] float32 (1 live, 0 stale)."""
        w = self.length
        s_now = int(now // self.step)
        steps = np.arange(s_now - w + 1, s_now + 1, dtype=np.int64)  # [W] oldest first
        slots = steps % w
        vals = self._buf[:, slots]  # [C, W]
        valid = self._buf_step[:, slots] == steps[None, :]  # [C, W]
        pos = np.where(valid, np.arange(w)[None, :], -1)
        np.maximum.accumulate(pos, axis=1, out=pos)  # index of the last valid step at or before each step
        ffilled = np.take_along_axis(vals, np.maximum(pos, 0), axis=1)  # [C, W]
        # value just before the window: newest ring entry older than the window, or the evicted carry
        start = s_now - w + 1
        old_steps = np.where((self._buf_step >= 0) & (self._buf_step < start), self._buf_step, -1)  # [C, W]
        j = np.argmax(old_steps, axis=1)  # [C]
        rows = np.arange(len(self.names))
        pre_step = old_steps[rows, j]
        pre_val = np.where(pre_step >= 0, self._buf[rows, j], np.nan)
        use_carry = (self._carry_step > pre_step) & (self._carry_step < start)
        pre_val = np.where(use_carry, self._carry_val, pre_val)  # [C]
        first_idx = np.argmax(valid, axis=1)  # [C]
        first_val = np.where(valid.any(axis=1), vals[rows, first_idx], np.nan)  # [C]
        before = np.where(np.isnan(pre_val), first_val, pre_val)  # [C]
        x = np.where(pos >= 0, ffilled, before[:, None])  # [C, W]
        if self._calendar:
            if self._cal_cache is None or self._cal_cache[0] != s_now:  # the same for every call in a step
                times = steps.astype(np.float64) * self.step
                names = [self.names[i] for i in self._calendar]
                self._cal_cache = (s_now, calendar_values(names, local_seconds(times, self.zone)))
            x[self._calendar] = self._cal_cache[1]
        live = self.live(now if seen_now is None else seen_now) & np.isfinite(
            x[:, -1]
        )  # never feed NaN as live
        mask = live.astype(np.float32)
        return x.astype(np.float32), mask
