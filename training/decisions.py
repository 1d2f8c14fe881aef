"""Model outputs -> device decisions, exactly as the manifest defines them, and decision agreement.

The rule is the daemon's (`edge_agent.policy.decide_values`, what `target_value` starts from, without the
home's hysteresis): binary ON when P(on) >= the device's threshold; level: floor(expected level + 0.5) clipped
to the levels; setpoint: the value clipped to the device's (and the unit's hard) limits, not rounded to a
step (the step is home config, not in the manifest). Two decisions of a setpoint agree when within
SETPOINT_AGREE of each other.
"""

from __future__ import annotations

import numpy as np

from edge_agent.manifest import DeviceSpec
from edge_agent.policy import decide_values

SETPOINT_AGREE = 0.25  # °C: half the evaluation tolerance; int8 noise is ~0.05


def decide(out: np.ndarray, devices: list[DeviceSpec]) -> np.ndarray:
    """float32 [N, D] decisions from `devices` outputs [N, D]: the runtime's rule (`edge_agent.policy`)."""
    dec = np.empty(out.shape, dtype=np.float32)
    for k, d in enumerate(devices):
        dec[:, k] = decide_values(d, out[:, k])
    return dec


def agree(a: np.ndarray, b: np.ndarray, devices: list[DeviceSpec]) -> np.ndarray:
    """bool [N, D]: decision a equals decision b (setpoints: within SETPOINT_AGREE)."""
    same = np.empty(a.shape, dtype=bool)
    for k, d in enumerate(devices):
        if d.kind == "setpoint":
            same[:, k] = np.abs(a[:, k] - b[:, k]) <= SETPOINT_AGREE
        else:
            same[:, k] = a[:, k] == b[:, k]
    return same


def agreement(out_a: np.ndarray, out_b: np.ndarray, devices: list[DeviceSpec]) -> float:
    """Fraction of (window, device) decisions that agree between two `devices` outputs [N, D]."""
    if out_a.size == 0:
        return float("nan")
    return float(agree(decide(out_a, devices), decide(out_b, devices), devices).mean())
