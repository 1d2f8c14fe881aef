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

CALENDAR_BLOCK = 512  # steps of calendar rows computed at once (a new block every 512 - W steps, not 2W - W)


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
            None  # (first step, calendar rows [C_cal, 2W]) from that step on (`_calendar_rows`)
        )
        # the forward-filled ring: slot s % W holds the channel's value at step s for s in (cur - W, cur]
        # (gaps filled on `update`), so a snapshot is one gather plus the fill past `cur` / before `_first`
        self._ff = np.full((c, self.length), np.nan, dtype=np.float32)  # [C, W]
        self._first = np.full(c, -1, dtype=np.int64)  # [C] first step ever written
        self._rows = np.arange(c)
        # the snapshot's gather, with no per-call allocation but its result: column views of the per-channel
        # state (they follow its in-place updates), the step index buffer, the steps of the last window
        self._rows_col = self._rows[:, None]  # [C, 1]
        self._first_col = self._first[:, None]  # [C, 1]
        self._cur_col = self._cur_step[:, None]  # [C, 1]
        self._idx = np.zeros((c, self.length), dtype=np.int64)  # [C, W]
        self._steps_cache: tuple[int, np.ndarray] | None = None  # (s_now, steps [1, W] oldest first)
        # the mask's stale limit: a calendar row's is infinite (always live), without a fancy assignment per call
        self._live_limit = self._stale_after.copy()
        self._live_limit[self._calendar] = np.inf

    def update(
        self, ch: int, value: float, t: float, *, fresh: bool = True, seen: float | None = None
    ) -> ClosedStep | None:
        """Write a reading; returns the channel's previous step if this reading moved past it.

        `fresh=False` (a retained message: its age is unknown) fills the window but does not make the
        channel live: it stays masked until a live report proves the sensor is there. `seen` is the steady
        (monotonic) time of the report, default `t`: a wall-clock step never makes a silent channel live."""
        s = int(t // self.step)
        w = self.length
        slot = s % w
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
            ff = self._ff[ch]
            if prev >= 0:  # steps prev+1 .. s-1 carry the value of step prev (at most the last W of them)
                lo = max(prev + 1, s - w + 1)
                if lo < s:  # slots lo % w .. (s - 1) % w, wrapping at most once
                    a, b = lo % w, (s - 1) % w + 1
                    v = ff[prev % w]
                    if a < b:
                        ff[a:b] = v
                    else:
                        ff[a:] = v
                        ff[:b] = v
            else:
                self._first[ch] = s
            ff[slot] = self._buf[ch, slot]
            self._cur_step[ch] = s
        elif s == prev:
            self._ff[ch, slot] = self._buf[ch, slot]
        else:  # a late reading (the clock went back): rebuild the channel's filled ring from the raw one
            self._refill(ch)
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
                self._first[dst] = old._first[src]
                self._refill(dst)
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
        return (now - self.last_seen) <= self._live_limit

    def snapshot(self, now: float, seen_now: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw values x [C, W] float32 (NaN where never reported) and mask [C] float32 (1 live, 0 stale).

        Steps oldest first ending with the step of `now`: gaps forward-filled, steps before a channel's first
        value back-filled with it (or its last value from before the window). Read off the filled ring in one
        gather: window step s of channel c carries the ring's value at step clip(s, first[c], cur[c]) (past
        the newest step the newest value, before the first one the first), every one of them in the ring."""
        s_now = int(now // self.step)
        if len(self._rows) == 0 or int(self._cur_step.max()) > s_now:  # a reading newer than `now`: raw path
            return self.snapshot_reference(now, seen_now)
        sc = self._steps_cache
        if sc is None or sc[0] != s_now:
            steps = np.arange(s_now - self.length + 1, s_now + 1, dtype=np.int64)[None, :]  # [1, W]
            sc = self._steps_cache = (s_now, steps)
        idx = self._idx
        np.maximum(sc[1], self._first_col, out=idx)  # [C, W] the step each cell carries ...
        np.minimum(idx, self._cur_col, out=idx)
        np.remainder(idx, self.length, out=idx)  # ... and its slot (a never-written row: -1, all NaN)
        x = self._ff[self._rows_col, idx]  # [C, W] float32, a new array
        return self._finish(x, now, seen_now, self._calendar_rows(s_now) if self._calendar else None)

    def _refill(self, ch: int) -> None:
        """Rebuild channel `ch`'s filled ring from the raw ring (after a late reading or a copied history)."""
        cur = int(self._cur_step[ch])
        if cur < 0:
            self._ff[ch] = np.nan
            return
        row = self._raw_filled(cur, np.array([ch]))[0]  # [W], steps cur-W+1 .. cur
        steps = np.arange(cur - self.length + 1, cur + 1)
        self._ff[ch, steps % self.length] = row
        self._first[ch] = min(int(self._first[ch]), cur - self.length + 1)  # every slot now holds its step

    def snapshot_reference(self, now: float, seen_now: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """`snapshot` computed from the raw ring alone (what the filled ring must equal; tests compare)."""
        x = self._raw_filled(int(now // self.step), self._rows)
        return self._finish(x, now, seen_now)

    def _raw_filled(self, s_now: int, rows: np.ndarray) -> np.ndarray:
        """float64 [len(rows), W]: the window ending at step `s_now` from the raw ring, filled forward and back."""
        w = self.length
        steps = np.arange(s_now - w + 1, s_now + 1, dtype=np.int64)  # [W] oldest first
        slots = steps % w
        buf, buf_step = self._buf[rows], self._buf_step[rows]  # [R, W]
        vals = buf[:, slots]  # [R, W]
        valid = buf_step[:, slots] == steps[None, :]  # [R, W]
        pos = np.where(valid, np.arange(w)[None, :], -1)
        np.maximum.accumulate(pos, axis=1, out=pos)  # index of the last valid step at or before each step
        ffilled = np.take_along_axis(vals, np.maximum(pos, 0), axis=1)  # [C, W]
        # value just before the window: newest ring entry older than the window, or the evicted carry
        start = s_now - w + 1
        old_steps = np.where((buf_step >= 0) & (buf_step < start), buf_step, -1)  # [R, W]
        j = np.argmax(old_steps, axis=1)  # [R]
        r = np.arange(len(rows))
        pre_step = old_steps[r, j]
        pre_val = np.where(pre_step >= 0, buf[r, j], np.nan)
        carry_step = self._carry_step[rows]
        use_carry = (carry_step > pre_step) & (carry_step < start)
        pre_val = np.where(use_carry, self._carry_val[rows], pre_val)  # [R]
        first_idx = np.argmax(valid, axis=1)  # [R]
        first_val = np.where(valid.any(axis=1), vals[r, first_idx], np.nan)  # [R]
        before = np.where(np.isnan(pre_val), first_val, pre_val)  # [R]
        return np.where(pos >= 0, ffilled, before[:, None])  # [R, W]

    def _finish(
        self, x: np.ndarray, now: float, seen_now: float | None, cal: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The calendar rows (`cal` [C_cal, W], default computed for the whole window) and the mask on a
        filled window x [C, W]."""
        if self._calendar:
            s_now = int(now // self.step)
            x[self._calendar] = (
                cal if cal is not None else self._calendar_at(np.arange(s_now - self.length + 1, s_now + 1))
            )
        live = self.live(now if seen_now is None else seen_now)
        live &= np.isfinite(x[:, -1])  # never feed NaN as live
        return x.astype(np.float32, copy=False), live.astype(np.float32)

    def _calendar_at(self, steps: np.ndarray) -> np.ndarray:
        """Calendar rows [C_cal, len(steps)] at the start of each step, in the home's zone."""
        times = steps.astype(np.float64) * self.step
        return calendar_values([self.names[i] for i in self._calendar], local_seconds(times, self.zone))

    def _calendar_rows(self, s_now: int) -> np.ndarray:
        """Calendar rows [C_cal, W] of the window ending at `s_now`, a view of a block computed for
        max(2W, CALENDAR_BLOCK) steps at once (the values are per step: the same numbers as `_calendar_at` on
        the window alone)."""
        w = self.length
        lo = s_now - w + 1
        cache = self._cal_cache
        if cache is None or not (cache[0] <= lo and s_now < cache[0] + cache[1].shape[1]):
            cache = self._cal_cache = (lo, self._calendar_at(np.arange(lo, lo + max(2 * w, CALENDAR_BLOCK))))
        return cache[1][:, lo - cache[0] : lo - cache[0] + w]
