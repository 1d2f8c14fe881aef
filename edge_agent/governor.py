"""The tier governor: chooses the model tier on the bundle's ladder from whether the agent itself keeps up.

Pure logic: the agent feeds it plain measurements (`observe`) and asks for a decision (`update`) every
`sample_seconds`; time comes only from the injected clock, so it is tested without sleeping and without psutil.

A cheaper tier is a cost to the home (coarser answers), so the governor pays it only when the agent is falling
behind: a busy machine whose agent still meets its latency budget keeps the best tier.

Rules (defaults in `GovernorSettings`):
- Step *down* one tier, fast, when any signal has been bad for `down_after_seconds` on the current tier. The
  agent's own signals: decision latency p99 (over `latency_window_seconds`, at least `latency_min_samples`
  samples, all taken on the current tier) > the latency limit (the budget); queue depth > `queue_down_depth`;
  the agent process's own CPU (% of one core, smoothed) > `own_cpu_down_percent`. The machine's signal:
  smoothed system CPU > `cpu_down_percent` AND that costs the agent latency: its p99 is above
  `cpu_latency_fraction` x the limit (it is eating into the budget; `cpu_latency_fraction: null` = system CPU
  alone steps down, the old rule). High system CPU with the agent's latency inside that share, or with no
  decisions to measure, keeps the tier.
- Step *up* one tier, slowly, when every signal has been good for `up_after_seconds` on the current tier: system
  CPU < `cpu_up_percent` (or, with a latency rule, the latency low enough that CPU costs nothing) AND latency
  p99 < `latency_up_fraction` x the limit AND queue depth <= `queue_up_depth` AND own CPU <
  `own_cpu_up_percent`. Missing signals (never observed) count as good.
- The reason is recorded either way: `state()["reason"]` says, after every `update`, why the tier is what it
  is (a change, a bad signal still within `down_after_seconds`, or "keeping: system CPU x% but latency within
  budget"), and every change carries its reason and signal.
- The gap between the down and up thresholds is the hysteresis: a load sitting at one threshold can push the
  tier down, never back up, so it cannot oscillate. At least `min_seconds_per_tier` between two changes.
- A step down soon after a step up (within `up_after_seconds`) means the upper tier did not hold: the quiet time
  required for the next step up doubles (up to x`max_up_backoff`), and resets after a long calm stay.
- Latency samples belong to the tier they were measured on: the window is cleared on every change, so a cheap
  tier's fast decisions never count for (or against) another tier.
- A latency the tier cannot fix is not chased down the ladder: when the p99 on the tier reached by a latency
  step is not at least `LATENCY_MIN_GAIN` lower than the p99 that caused it, latency is marked "not tier-bound"
  (one log line) and ignored in both directions until it recovers below the step-up level.
- `pinned_tier` fixes the tier (a name not in the ladder: one warning, the best tier); `enabled=False` keeps
  the best tier.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge_agent.stats import percentile

logger = logging.getLogger(__name__)

LATENCY_WINDOW_MAX_SAMPLES = 4096  # bound on the latency window's memory whatever the decision rate
LATENCY_MIN_GAIN = 0.1  # a latency step down must cut p99 by 10 % or latency is judged not tier-bound
SIGNALS = ("latency", "queue", "own_cpu", "cpu")  # the agent's own first; the machine's only with a cost


class GovernorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Let the governor move between tiers; false = best tier")
    pinned_tier: str | None = Field(
        default=None, description="Always this tier (no switching); null = governed"
    )
    sample_seconds: float = Field(
        default=1.0, gt=0, le=60, description="Seconds between CPU samples/decisions"
    )
    cpu_down_percent: float = Field(
        default=85.0, gt=0, le=100, description="Smoothed system CPU %: step down above"
    )
    cpu_up_percent: float = Field(
        default=60.0, ge=0, lt=100, description="Smoothed system CPU %: step up below"
    )
    cpu_smoothing_seconds: float = Field(
        default=3.0, ge=0, description="CPU EWMA time constant (0 = raw samples)"
    )
    cpu_latency_fraction: float | None = Field(
        default=0.8,
        ge=0,
        le=1,
        description="System CPU above cpu_down_percent steps down only while the agent's latency p99 is above "
        "this fraction of the latency limit (the load costs it latency); null = CPU alone steps down",
    )
    own_cpu_down_percent: float = Field(
        default=90.0, gt=0, description="The agent's own CPU (% of one core, smoothed): step down above"
    )
    own_cpu_up_percent: float = Field(
        default=50.0, ge=0, description="The agent's own CPU (% of one core): step up only below"
    )
    latency_down_ms: float = Field(
        default=25.0, gt=0, description="Own decision latency p99 (ms): step down above"
    )
    latency_tier_factor: float | None = Field(
        default=20.0, gt=1, description="Also step down when p99 > this x the tier's manifest p99; null = off"
    )
    latency_floor_ms: float = Field(
        default=10.0, ge=0, description="The tier-relative limit is never below this"
    )
    latency_up_fraction: float = Field(
        default=0.5, gt=0, lt=1, description="Step up only while latency p99 < this fraction of the limit"
    )
    latency_window_seconds: float = Field(
        default=10.0, gt=0, description="p99 over the decisions of this window"
    )
    latency_min_samples: int = Field(
        default=20, ge=1, description="Fewer decisions in the window: latency ignored"
    )
    queue_down_depth: int = Field(default=50, ge=1, description="Agent queue depth: step down above")
    queue_up_depth: int = Field(default=0, ge=0, description="Step up only while the queue depth is <= this")
    down_after_seconds: float = Field(
        default=5.0, ge=0, description="A signal bad this long on the tier: step down"
    )
    up_after_seconds: float = Field(
        default=60.0, ge=0, description="All signals good this long on the tier: step up"
    )
    min_seconds_per_tier: float = Field(default=10.0, ge=0, description="Minimum seconds between two changes")
    max_up_backoff: float = Field(
        default=8.0, ge=1, description="Cap on the up_after factor after failed step-ups"
    )

    @model_validator(mode="after")
    def _check_hysteresis(self) -> GovernorSettings:
        if self.cpu_up_percent >= self.cpu_down_percent:
            raise ValueError(
                f"cpu_up_percent ({self.cpu_up_percent}) must be below cpu_down_percent "
                f"({self.cpu_down_percent}): the gap is the hysteresis"
            )
        if self.own_cpu_up_percent >= self.own_cpu_down_percent:
            raise ValueError(
                f"own_cpu_up_percent ({self.own_cpu_up_percent}) must be below own_cpu_down_percent "
                f"({self.own_cpu_down_percent})"
            )
        if self.queue_up_depth >= self.queue_down_depth:
            raise ValueError(
                f"queue_up_depth ({self.queue_up_depth}) must be below queue_down_depth ({self.queue_down_depth})"
            )
        return self


@dataclass
class TierChange:
    """One tier change: from `old` to `new` at clock time `at`, because `signal` had `value` (`reason` in words)."""

    old: str
    new: str
    reason: str
    signal: str
    value: float
    at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Governor:
    """Chooses the current tier among `tiers` (the bundle's ladder, best first). See the module docstring."""

    def __init__(
        self,
        settings: GovernorSettings,
        tiers: Sequence[str],
        clock: Callable[[], float],
        *,
        tier_p99_ms: Mapping[str, float] | None = None,
    ) -> None:
        if not tiers:
            raise ValueError("the tier ladder is empty")
        self.settings = settings
        self.tiers = list(tiers)
        self._clock = clock
        self._tier_p99_ms = dict(tier_p99_ms or {})
        now = clock()
        self._index = 0
        self._pinned = False
        if settings.pinned_tier is not None:
            self._pinned = True
            if settings.pinned_tier in self.tiers:
                self._index = self.tiers.index(settings.pinned_tier)
            else:
                logger.warning(
                    "governor: pinned_tier %r is not in the bundle's ladder %s; using the best tier %r",
                    settings.pinned_tier,
                    self.tiers,
                    self.tiers[0],
                )
        self._since = now
        self._changed_at: float | None = (
            None  # min_seconds_per_tier counts from the last change, not the start
        )
        self._last_reason = "start"
        self._last_up_at: float | None = None
        self._up_backoff = 1.0
        # signals
        self._cpu: float | None = None
        self._cpu_at: float | None = None
        self._own: float | None = None
        self._own_at: float | None = None
        self._queue: int | None = None
        self._latency: deque[tuple[float, float]] = deque(maxlen=LATENCY_WINDOW_MAX_SAMPLES)
        self._bad_since: dict[str, float | None] = {n: None for n in SIGNALS}
        self._reason = "start: best tier"
        self._good_since: float | None = None
        self._lat_ref: float | None = None  # p99 that caused the last latency step down, until judged
        self._lat_futile = False  # latency judged not tier-bound: ignored until it recovers
        self._warned: set[str] = set()

    # ---------------------------------------------------------------- inputs

    @property
    def tier(self) -> str:
        return self.tiers[self._index]

    @property
    def frozen(self) -> bool:
        """True when the tier never changes (pinned, disabled or a ladder of one)."""
        return self._pinned or not self.settings.enabled or len(self.tiers) == 1

    def _valid(self, name: str, value: float, low: float, high: float) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float) or not (low <= value <= high):
            if name not in self._warned:
                self._warned.add(name)
                logger.warning("governor: ignoring invalid %s value %r (logged once)", name, value)
            return False
        return True

    def observe(
        self,
        *,
        cpu_percent: float | None = None,
        latency_ms: float | None = None,
        queue_depth: int | None = None,
        own_cpu_percent: float | None = None,
    ) -> None:
        """Record measurements: system CPU % (0..100), one decision's latency (ms), the agent's queue depth,
        the agent process's own CPU (% of one core: 0..100 x cores)."""
        now = self._clock()
        if cpu_percent is not None and self._valid("cpu_percent", cpu_percent, 0.0, 100.0):
            self._cpu, self._cpu_at = self._smooth(self._cpu, self._cpu_at, float(cpu_percent), now)
        if own_cpu_percent is not None and self._valid("own_cpu_percent", own_cpu_percent, 0.0, 1e5):
            self._own, self._own_at = self._smooth(self._own, self._own_at, float(own_cpu_percent), now)
        if latency_ms is not None and self._valid("latency_ms", latency_ms, 0.0, 3.6e6):
            horizon = now - self.settings.latency_window_seconds
            while self._latency and self._latency[0][0] < horizon:
                self._latency.popleft()
            self._latency.append((now, float(latency_ms)))
        if queue_depth is not None and self._valid("queue_depth", queue_depth, 0, 1 << 62):
            self._queue = int(queue_depth)

    def _smooth(self, old: float | None, at: float | None, value: float, now: float) -> tuple[float, float]:
        """EWMA with time constant `cpu_smoothing_seconds` (0: the raw sample)."""
        tau = self.settings.cpu_smoothing_seconds
        if old is None or at is None or tau <= 0:
            return value, now
        return old + (1.0 - math.exp(-max(0.0, now - at) / tau)) * (value - old), now

    # ---------------------------------------------------------------- signals

    def latency_limit_ms(self) -> float:
        """Current latency p99 limit: the absolute one, tightened by the tier-relative one when known."""
        limit = self.settings.latency_down_ms
        factor = self.settings.latency_tier_factor
        ref = self._tier_p99_ms.get(self.tier)
        if factor is not None and ref is not None and ref > 0:
            limit = min(limit, max(self.settings.latency_floor_ms, factor * ref))
        return limit

    def latency_p99_ms(self) -> float | None:
        """p99 of the decisions in the window on the current tier; None with too few samples.

        Read-only (a copy of the window), so a live view may call `state()` from another thread."""
        horizon = self._clock() - self.settings.latency_window_seconds
        recent = [v for t, v in tuple(self._latency) if t >= horizon]
        if len(recent) < self.settings.latency_min_samples:
            return None
        return percentile(recent, 99.0)

    def _cpu_costs_latency(self, p99: float | None) -> bool:
        """Does the machine's load cost the agent latency? (always, with `cpu_latency_fraction: null`)"""
        frac = self.settings.cpu_latency_fraction
        if frac is None:
            return True
        return p99 is not None and not self._lat_futile and p99 > frac * self.latency_limit_ms()

    def _bad_signals(self, p99: float | None) -> dict[str, tuple[float, str]]:
        s = self.settings
        bad: dict[str, tuple[float, str]] = {}
        limit = self.latency_limit_ms()
        if p99 is not None and p99 > limit and not self._lat_futile:
            bad["latency"] = (p99, f"decision latency p99 {p99:.2f} ms > budget {limit:.2f} ms")
        if self._queue is not None and self._queue > s.queue_down_depth:
            bad["queue"] = (float(self._queue), f"queue depth {self._queue} > {s.queue_down_depth}")
        if self._own is not None and self._own > s.own_cpu_down_percent:
            bad["own_cpu"] = (
                self._own,
                f"agent CPU {self._own:.1f}% of a core > {s.own_cpu_down_percent:g}%",
            )
        if self._cpu is not None and self._cpu > s.cpu_down_percent and self._cpu_costs_latency(p99):
            cost = "" if s.cpu_latency_fraction is None else f" costing latency (p99 {p99:.2f} ms)"
            bad["cpu"] = (self._cpu, f"system CPU {self._cpu:.1f}% > {s.cpu_down_percent:g}%{cost}")
        return bad

    def _all_good(self, p99: float | None) -> bool:
        s = self.settings
        if s.cpu_latency_fraction is None:
            cpu_ok = self._cpu is None or self._cpu < s.cpu_up_percent
        else:  # the load is harmless while the agent's latency sits well inside the budget
            cpu_ok = (
                self._cpu is None
                or self._cpu < s.cpu_up_percent
                or p99 is None
                or p99 < s.latency_up_fraction * s.cpu_latency_fraction * self.latency_limit_ms()
            )
        lat_ok = p99 is None or self._lat_futile or p99 < s.latency_up_fraction * self.latency_limit_ms()
        queue_ok = self._queue is None or self._queue <= s.queue_up_depth
        own_ok = self._own is None or self._own < s.own_cpu_up_percent
        return cpu_ok and lat_ok and queue_ok and own_ok

    def _holding_reason(self, p99: float | None, bad: dict[str, tuple[float, str]]) -> str:
        """Why the tier stays what it is (for `state()`): the reason is recorded either way."""
        s = self.settings
        if self.frozen:
            why = "pinned" if self._pinned else ("disabled" if not s.enabled else "a ladder of one tier")
            return f"keeping {self.tier}: {why}"
        if bad:
            words = "; ".join(w for _, w in bad.values())
            return f"keeping {self.tier} for now: {words} (steps down after {s.down_after_seconds:g}s)"
        lat = "no decisions measured" if p99 is None else f"latency p99 {p99:.2f} ms"
        lat += f", budget {self.latency_limit_ms():.2f} ms"
        if self._cpu is not None and self._cpu > s.cpu_down_percent:
            return f"keeping {self.tier}: system CPU {self._cpu:.1f}% but the agent keeps up ({lat})"
        return f"keeping {self.tier}: the agent keeps up ({lat})"

    # ---------------------------------------------------------------- decision

    def update(self) -> TierChange | None:
        """Decide: returns the change made now, or None. Call every `sample_seconds`, after `observe`."""
        now = self._clock()
        p99 = self.latency_p99_ms()
        self._judge_latency(p99)
        bad = self._bad_signals(p99)
        for name in self._bad_since:
            if name in bad:
                if self._bad_since[name] is None:
                    self._bad_since[name] = now
            else:
                self._bad_since[name] = None
        if bad:
            self._good_since = None
        elif self._all_good(p99):
            if self._good_since is None:
                self._good_since = now
        else:
            self._good_since = None

        self._reason = self._holding_reason(p99, bad)
        if self.frozen:
            return None
        if self._changed_at is not None and now - self._changed_at < self.settings.min_seconds_per_tier:
            return None
        s = self.settings
        # Step down: the worst-lasting bad signal, measured on the current tier only.
        if self._index < len(self.tiers) - 1:
            for name, (value, words) in bad.items():
                started = self._bad_since[name]
                assert started is not None
                held = now - max(started, self._since)
                if held >= s.down_after_seconds:
                    if (
                        self._last_up_at is not None
                        and now - self._last_up_at < s.up_after_seconds * self._up_backoff
                    ):
                        self._up_backoff = min(s.max_up_backoff, self._up_backoff * 2.0)
                    judged = name == "latency" or (name == "cpu" and s.cpu_latency_fraction is not None)
                    self._lat_ref = p99 if judged else None
                    return self._change(self._index + 1, f"{words} for {held:.0f}s", name, value, now)
        # Step up: everything quiet for the (backed-off) quiet time on the current tier.
        if self._index > 0 and self._good_since is not None:
            quiet = now - max(self._good_since, self._since)
            if quiet >= s.up_after_seconds * self._up_backoff:
                value = self._cpu if self._cpu is not None else 0.0
                words = f"quiet for {quiet:.0f}s (CPU {value:.1f}%, the agent's latency, queue and CPU fine)"
                self._last_up_at = now
                self._lat_ref = None
                return self._change(self._index - 1, words, "quiet", value, now)
        # A long calm stay forgives earlier failed step-ups.
        if self._up_backoff > 1.0 and now - self._since >= s.up_after_seconds * s.max_up_backoff:
            self._up_backoff = 1.0
        return None

    def _judge_latency(self, p99: float | None) -> None:
        """After a latency step down: did the cheaper tier cut p99? If not, latency is not tier-bound."""
        if p99 is None:
            return
        if self._lat_futile and p99 < self.settings.latency_up_fraction * self.latency_limit_ms():
            self._lat_futile = False
            logger.info(
                "governor: decision latency p99 %.2f ms recovered; latency steers the tier again", p99
            )
        if self._lat_ref is not None:
            if p99 > (1.0 - LATENCY_MIN_GAIN) * self._lat_ref:
                self._lat_futile = True
                logger.info(
                    "governor: latency p99 %.2f ms on tier %s vs %.2f ms before the step down: not "
                    "tier-bound (scheduling or I/O?), latency no longer steers the tier until it recovers",
                    p99,
                    self.tier,
                    self._lat_ref,
                )
            self._lat_ref = None

    def _change(self, index: int, reason: str, signal: str, value: float, now: float) -> TierChange:
        change = TierChange(self.tier, self.tiers[index], reason, signal, float(value), now)
        self._index = index
        self._since = now
        self._changed_at = now
        self._last_reason = reason
        self._reason = f"{change.old} -> {change.new}: {reason}"
        self._latency.clear()  # samples belong to the tier they were measured on
        logger.info("tier %s -> %s: %s", change.old, change.new, reason)
        return change

    def state(self) -> dict[str, Any]:
        """Snapshot for the stats topic: tier, smoothed signals, since, last reason."""
        p99 = self.latency_p99_ms()
        return {
            "tier": self.tier,
            "tier_index": self._index,
            "ladder": list(self.tiers),
            "since": self._since,
            "last_reason": self._last_reason,
            "reason": self._reason,
            "pinned": self._pinned,
            "enabled": self.settings.enabled,
            "cpu_percent": None if self._cpu is None else round(self._cpu, 2),
            "own_cpu_percent": None if self._own is None else round(self._own, 2),
            "latency_p99_ms": None if p99 is None else round(p99, 3),
            "latency_limit_ms": round(self.latency_limit_ms(), 3),
            "latency_tier_bound": not self._lat_futile,
            "queue_depth": self._queue,
            "up_backoff": self._up_backoff,
        }
