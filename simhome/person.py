"""The simulated person operating devices live: overrides of a controller, and manual operation.

Pure: `Person.tick(now, device, actual, preferred, present, awake, source)` returns the value the person
sets by hand at `now` (or None), from plain values and the sim clock; the MQTT driver calls it every sim
step and the retraining work can reuse it to judge a controller offline.

Rules. The person notices a device whose state differs from their preference while they are present
(in its room; at home for the heating) and awake, or have just left (within `leave_grace`: they switch
off behind them). After a human delay they set it to what they then prefer, if it still differs.
- A state set by the controller (`source="controller"`) that they change back is an *override*.
- Otherwise (state they set, or nobody set) they act only if `manual_operation` is on: with an agent in
  auto mode the demo turns it off so the agent acts first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simhome.layout import DEVICES
from simhome.preference import Preference, human_lag_seconds

KIND = {d.name: d.kind for d in DEVICES}


@dataclass
class Person:
    pref: Preference = field(default_factory=Preference)
    seed: int = 0
    overrides: bool = True  # change back what a controller set against their preference
    manual_operation: bool = True  # operate devices themselves when nobody else does
    leave_grace: float = 120.0  # seconds after leaving during which they still act (switch off behind them)
    rng: np.random.Generator = field(init=False)
    pending: dict[str, float] = field(default_factory=dict)  # device -> when they will act
    last_seen: dict[str, float] = field(default_factory=dict)  # device -> last time present and awake
    override_count: dict[str, int] = field(default_factory=dict)
    manual_count: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng([self.seed, 4_242])

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
        near = now - self.last_seen.get(device, -np.inf) <= self.leave_grace
        differs = self.pref.differs(KIND[device], actual, preferred)
        if not differs:
            self.pending.pop(device, None)
            return None
        acts, is_override = self.would_act(source)
        if not acts or not near:
            self.pending.pop(device, None)
            return None
        due = self.pending.get(device)
        if due is None:
            self.pending[device] = now + human_lag_seconds(self.rng, KIND[device])
            return None
        if now < due:
            return None
        del self.pending[device]
        counts = self.override_count if is_override else self.manual_count
        counts[device] = counts.get(device, 0) + 1
        return preferred
