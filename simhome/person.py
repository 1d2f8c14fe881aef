"""The simulated person operating devices live: overrides of a controller, and manual operation.

Pure: `Person.tick(now, device, actual, preferred, present, awake, source)` returns the value the person
sets by hand at `now` (or None), from plain values and the sim clock; the MQTT driver calls it every sim
step and the retraining work can reuse it to judge a controller offline.

Rules. The person notices a device whose state differs from their preference while they are present
(in its room; at home for the heating) and awake, or have just left (within `leave_grace`: they switch
off behind them). After a human delay they set it to what they then prefer, if it still differs. What they
decided while there is done even if the delay runs past their leaving or falling asleep (the light switched
off on the way out, the heating turned down at bedtime): a person's own routine expresses their preference.
- A state set by the controller (`source="controller"`) that they change back is an *override*.
- Otherwise (state they set, or nobody set) they act only if `manual_operation` is on: with an agent in
  auto mode the demo turns it off so the agent acts first.

Human mistakes (`mistake_p`, seeded on their own stream, 0 by default): an action goes wrong with that
probability. A fan or setpoint is set to a neighbouring value (a level next to the one wanted, the setpoint
1 degree off); a switch is pressed twice (the wanted state, then back to the other state a few seconds
later). Either way the state then differs from what they want, so they correct it after a human delay if
they notice (present and awake, or just left), by the rule above. Every value they set counts as an action
(`override_count` / `manual_count`); the wrong ones are also counted in `mistake_count`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simhome.layout import DEVICES, Device
from simhome.preference import Preference, human_lag_seconds

KIND = {d.name: d.kind for d in DEVICES}
SPEC = {d.name: d for d in DEVICES}
BOUNCE_SECONDS = (1.0, 4.0)  # a switch pressed twice: the second press this long after the first
SETPOINT_SLIP = 1.0  # degrees a mistaken setpoint is off by


def wrong_value(spec: Device, preferred: float, actual: float, rng: np.random.Generator) -> float | None:
    """A neighbouring value of `preferred` that is not `actual` (a fan level, a setpoint 1 degree off), or
    None when there is none (a switch: its other state is where it already is)."""
    if spec.kind == "binary":
        return None
    if spec.kind == "level":
        cands = [preferred - 1.0, preferred + 1.0]
        cands = [c for c in cands if 0 <= c <= spec.levels - 1 and round(c) != round(actual)]
    else:
        lo = spec.min_value if spec.min_value is not None else -np.inf
        hi = spec.max_value if spec.max_value is not None else np.inf
        cands = [preferred - SETPOINT_SLIP, preferred + SETPOINT_SLIP]
        cands = [c for c in cands if lo <= c <= hi and abs(c - actual) > 1e-6]
    if not cands:
        return None
    return float(cands[int(rng.integers(len(cands)))])


@dataclass
class Person:
    pref: Preference = field(default_factory=Preference)
    seed: int = 0
    overrides: bool = True  # change back what a controller set against their preference
    manual_operation: bool = True  # operate devices themselves when nobody else does
    leave_grace: float = 120.0  # seconds after leaving during which they still act (switch off behind them)
    mistake_p: float = 0.0  # probability that an action goes wrong (see the module docstring)
    rng: np.random.Generator = field(init=False)
    slip_rng: np.random.Generator = field(init=False)
    bounce: dict[str, tuple[float, float]] = field(default_factory=dict)  # device -> (when, wrong value)
    pending: dict[str, float] = field(default_factory=dict)  # device -> when they will act
    last_seen: dict[str, float] = field(default_factory=dict)  # device -> last time present and awake
    override_count: dict[str, int] = field(default_factory=dict)
    manual_count: dict[str, int] = field(default_factory=dict)
    mistake_count: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng([self.seed, 4_242])
        self.slip_rng = np.random.default_rng([self.seed, 4_243])  # mistakes: their own stream

    def would_act(self, source: str) -> tuple[bool, bool]:
        """(acts at all, counts as an override) for a differing state set by `source`."""
        if source == "controller":
            return self.overrides, True
        return self.manual_operation, False

    def tick(
        self,
        now: float,
        device: str,
        actual: float,
        preferred: float,
        present: bool,
        awake: bool,
        source: str = "person",
    ) -> float | None:
        """The value the person sets on `device` now, or None. `source` = who set the current state."""
        if present and awake:
            self.last_seen[device] = now
        if device in self.bounce:  # the second press of a switch pressed twice
            when, wrong = self.bounce[device]
            if now < when:
                return None
            del self.bounce[device]
            return self._count(device, source == "controller", wrong, mistake=True)
        near = now - self.last_seen.get(device, -np.inf) <= self.leave_grace
        differs = self.pref.differs(KIND[device], actual, preferred)
        if not differs:
            self.pending.pop(device, None)
            return None
        acts, is_override = self.would_act(source)
        due = self.pending.get(device)
        if not acts or (not near and due is None):
            self.pending.pop(device, None)
            return None
        if due is None:
            self.pending[device] = now + human_lag_seconds(self.rng, KIND[device])
            return None
        if now < due:
            return None
        del self.pending[device]
        if self.mistake_p > 0 and self.slip_rng.random() < self.mistake_p:
            wrong = wrong_value(SPEC[device], preferred, actual, self.slip_rng)
            if wrong is not None:
                return self._count(device, is_override, wrong, mistake=True)
            self.bounce[device] = (now + float(self.slip_rng.uniform(*BOUNCE_SECONDS)), actual)
        return self._count(device, is_override, preferred)

    def _count(self, device: str, is_override: bool, value: float, mistake: bool = False) -> float:
        counts = self.override_count if is_override else self.manual_count
        counts[device] = counts.get(device, 0) + 1
        if mistake:
            self.mistake_count[device] = self.mistake_count.get(device, 0) + 1
        return value

    def actions(self) -> int:
        """Every value they set so far (overrides and manual operation, mistakes included)."""
        return sum(self.override_count.values()) + sum(self.manual_count.values())
