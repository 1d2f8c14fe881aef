"""Policy: model output -> the value a device should have, and whether a command may go out now (pure).

Binary: hysteresis around `DeviceSpec.threshold`. Level: round the expected level with a margin. Setpoint:
round to the configured step with a dead band. Then clamps (config limits inside hard limits per kind),
minimum dwell since the last change, a per-device rate limit (commands per rolling hour), never on a stale
basis, never while a person's override holds the device. Takes plain values and the clock value `now`.

`decide_values(spec, outputs)` / `decide_value` is the manifest's decision rule alone (no hysteresis, no config): the value
`target_value` starts from, and what training's evaluation scores (vectorised over windows), so the two
cannot drift.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from edge_agent.config import DeviceConfig
from edge_agent.manifest import DeviceSpec

# Absolute limits that no config can widen (last line of defence against a model or config bug).
HARD_SETPOINT_LIMITS: dict[str, tuple[float, float]] = {
    "°C": (5.0, 30.0),
    "C": (5.0, 30.0),
    "°F": (41.0, 86.0),
}
HARD_SETPOINT_DEFAULT = (-100.0, 1000.0)  # a setpoint in an unknown unit: still no 1e308


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """What the policy wants: `target` (the decided value), and whether to `send` a command now."""

    target: float
    send: bool
    reason: str  # why (not): 'change', 'no-change', 'stale', 'held', 'dwell', 'rate-limit', 'unknown-state'


def spec_limits(spec: DeviceSpec) -> tuple[float, float]:
    """(lo, hi) a level/setpoint value may take by the manifest alone, inside the hard limits of its kind."""
    if spec.kind == "binary":
        return 0.0, 1.0
    if spec.kind == "level":
        return 0.0, float(spec.levels - 1)
    lo, hi = HARD_SETPOINT_LIMITS.get(spec.unit, HARD_SETPOINT_DEFAULT)
    if spec.min_value is not None:
        lo = max(lo, spec.min_value)
    if spec.max_value is not None:
        hi = min(hi, spec.max_value)
    return lo, hi


def decide_values(spec: DeviceSpec, outputs: np.ndarray, step: float | None = None) -> np.ndarray:
    """The manifest's decision rule for model outputs (any shape), no hysteresis, float64 of the same shape:

    binary -> 1.0 when output >= threshold else 0.0; level -> floor(output + 0.5) clipped to 0..levels-1;
    setpoint -> output rounded to `step` (None = not rounded), clipped to `spec_limits`.
    """
    v = np.asarray(outputs, dtype=np.float64)
    if spec.kind == "binary":
        return np.where(v >= spec.threshold, 1.0, 0.0)
    if spec.kind == "level":
        v = np.floor(v + 0.5)
    elif step:
        v = np.round(v / step) * step
    lo, hi = spec_limits(spec)
    return np.minimum(np.maximum(v, lo), hi)


def decide_value(spec: DeviceSpec, output: float, step: float | None = None) -> float:
    """`decide_values` for one output: what `target_value` starts from when the current state is unknown."""
    return float(decide_values(spec, np.asarray(output, dtype=np.float64), step))


def clamp_value(spec: DeviceSpec, cfg: DeviceConfig, value: float) -> float:
    """Clamp a command value to the config limits, inside the hard limits of the device kind."""
    if spec.kind == "binary":
        return 1.0 if value >= 0.5 else 0.0
    lo, hi = spec_limits(spec)
    if cfg.min_value is not None:
        lo = max(lo, cfg.min_value)
    if cfg.max_value is not None:
        hi = min(hi, cfg.max_value)
    v = min(max(value, lo), hi)
    if spec.kind == "level":
        v = float(round(v))
    return v


def target_value(spec: DeviceSpec, cfg: DeviceConfig, output: float, current: float | None) -> float:
    """The value the model asks for, with hysteresis relative to `current` (None = unknown)."""
    if spec.kind == "binary":
        h = cfg.hysteresis
        if current is None:
            return decide_value(spec, output)
        if current >= 0.5:
            return 0.0 if output < spec.threshold - h else 1.0
        return 1.0 if output > spec.threshold + h else 0.0
    if spec.kind == "level":
        rounded = clamp_value(spec, cfg, decide_value(spec, output))
        if current is None or abs(output - current) > 0.5 + cfg.hysteresis:
            return rounded
        return clamp_value(spec, cfg, current)
    step = cfg.setpoint_step
    rounded = clamp_value(spec, cfg, decide_value(spec, output, step))
    if current is None or abs(output - current) > step / 2 + cfg.hysteresis:
        return rounded
    return current


class DevicePolicy:
    """Per-device policy state: last change time and the command times of the last hour."""

    def __init__(self, spec: DeviceSpec, cfg: DeviceConfig) -> None:
        self.spec = spec
        self.cfg = cfg
        self.last_change: float = -math.inf  # last state change (ours or a person's), clock seconds
        self._sent: deque[float] = deque()  # clock times of commands in the last hour

    def note_change(self, now: float) -> None:
        """A state change happened (a person's override or our command's echo): dwell counts from here."""
        self.last_change = now

    def note_sent(self, now: float) -> None:
        self._sent.append(now)
        self.last_change = now

    def commands_last_hour(self, now: float) -> int:
        while self._sent and self._sent[0] <= now - 3600.0:
            self._sent.popleft()
        return len(self._sent)

    def decide(
        self,
        output: float,
        now: float,
        *,
        current: float | None,
        basis_fresh: bool,
        held_until: float = -math.inf,
    ) -> PolicyResult:
        """Decide for one model output; `current` is the device's reported (or last commanded) value."""
        target = target_value(self.spec, self.cfg, output, current)
        if not basis_fresh:
            return PolicyResult(target, False, "stale")
        if now < held_until:
            return PolicyResult(target, False, "held")
        if current is not None and target == current:
            return PolicyResult(target, False, "no-change")
        if now - self.last_change < self.cfg.min_dwell_seconds:
            return PolicyResult(target, False, "dwell")
        if self.commands_last_hour(now) >= self.cfg.max_commands_per_hour:
            return PolicyResult(target, False, "rate-limit")
        return PolicyResult(target, True, "change")
