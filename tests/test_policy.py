"""Policy: hysteresis, level/setpoint rounding, clamps, dwell, rate limit, stale basis, hold (fake clock)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edge_agent.config import DeviceConfig
from edge_agent.manifest import DeviceSpec
from edge_agent.policy import DevicePolicy, clamp_value, target_value

LIGHT = DeviceSpec(name="l", kind="binary", threshold=0.5)
FAN = DeviceSpec(name="f", kind="level", levels=4)
HEAT = DeviceSpec(name="h", kind="setpoint", unit="°C", min_value=10, max_value=28)


def cfg(**kw: object) -> DeviceConfig:
    return DeviceConfig(name="x", state_topic="t", **kw)  # type: ignore[arg-type]


def test_binary_hysteresis() -> None:
    """Around the threshold the current state is kept; it flips only beyond the margin."""
    c = cfg(hysteresis=0.1)
    assert target_value(LIGHT, c, 0.55, current=0.0) == 0.0
    assert target_value(LIGHT, c, 0.65, current=0.0) == 1.0
    assert target_value(LIGHT, c, 0.45, current=1.0) == 1.0
    assert target_value(LIGHT, c, 0.35, current=1.0) == 0.0
    assert target_value(LIGHT, c, 0.55, current=None) == 1.0


def test_level_rounding_with_margin_and_clamp() -> None:
    """Expected level 1.6 from 1 stays (margin), 1.8 moves to 2; config max clamps."""
    c = cfg(hysteresis=0.2)
    assert target_value(FAN, c, 1.6, current=1.0) == 1.0
    assert target_value(FAN, c, 1.8, current=1.0) == 2.0
    assert target_value(FAN, cfg(max_value=2), 3.0, current=0.0) == 2.0


def test_setpoint_rounding_and_hard_clamp() -> None:
    """Setpoints round to 0.5 and clamp to config inside the hard range; config cannot widen it."""
    c = cfg(hysteresis=0.0)
    assert target_value(HEAT, c, 21.3, current=None) == 21.5
    assert target_value(HEAT, c, 21.2, current=21.0) == 21.0  # inside the dead band
    assert clamp_value(HEAT, cfg(min_value=0, max_value=40), 35.0) == 28.0
    assert clamp_value(DeviceSpec(name="h", kind="setpoint", unit="°C"), cfg(max_value=99), 60) == 30.0


def test_stale_held_dwell_rate_limit() -> None:
    """Each guard blocks a command and says why; a free change is sent."""
    p = DevicePolicy(LIGHT, cfg(min_dwell_seconds=60, max_commands_per_hour=2))
    assert p.decide(0.9, 0.0, current=0.0, basis_fresh=False).reason == "stale"
    assert p.decide(0.9, 0.0, current=0.0, basis_fresh=True, held_until=10.0).reason == "held"
    r = p.decide(0.9, 0.0, current=0.0, basis_fresh=True)
    assert r.send and r.target == 1.0
    p.note_sent(0.0)
    assert p.decide(0.1, 30.0, current=1.0, basis_fresh=True).reason == "dwell"
    assert p.decide(0.1, 61.0, current=1.0, basis_fresh=True).send
    p.note_sent(61.0)
    assert p.decide(0.9, 200.0, current=0.0, basis_fresh=True).reason == "rate-limit"
    assert p.decide(0.9, 3601.0, current=0.0, basis_fresh=True).send
    assert p.decide(0.9, 3601.0, current=1.0, basis_fresh=True).reason == "no-change"


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 120)), max_size=60))
def test_rate_limit_never_exceeded(steps: list[tuple[float, float]]) -> None:
    """Whatever the model says, no more than max_commands_per_hour commands go out in any hour."""
    p = DevicePolicy(LIGHT, cfg(min_dwell_seconds=0, max_commands_per_hour=3))
    now, cur, sent = 0.0, 0.0, []
    for out, dt in steps:
        now += dt
        r = p.decide(out, now, current=cur, basis_fresh=True)
        if r.send:
            p.note_sent(now)
            sent.append(now)
            cur = r.target
    for t in sent:
        assert sum(1 for s in sent if t - 3600 < s <= t) <= 3


@given(st.floats(-1e3, 1e3, allow_nan=False))
def test_clamped_always_in_range(v: float) -> None:
    """Any model value becomes a command within the clamps."""
    assert 10 <= clamp_value(HEAT, cfg(), v) <= 28
    assert clamp_value(FAN, cfg(), v) in (0, 1, 2, 3)
