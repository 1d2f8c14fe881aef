"""Devices: absolute payloads from templates, state parsing, echo vs manual override, hold."""

from __future__ import annotations

import json

import pytest

from edge_agent.config import DeviceConfig
from edge_agent.devices import DeviceTracker
from edge_agent.ingest import PayloadError
from edge_agent.manifest import DeviceSpec


def light() -> DeviceTracker:
    return DeviceTracker(
        DeviceSpec(name="living.light", kind="binary"),
        DeviceConfig(
            name="living.light",
            state_topic="zigbee2mqtt/living_light",
            echo_window_seconds=5,
            override_hold_seconds=100,
            template={"transition": 1},
        ),
    )


def test_payloads_absolute_and_clamped() -> None:
    """Commands are absolute (never TOGGLE) and clamped again before serialising."""
    d = light()
    assert d.command_topic == "zigbee2mqtt/living_light/set"
    assert json.loads(d.command_bytes(1.0)) == {"transition": 1, "state": "ON"}
    fan = DeviceTracker(
        DeviceSpec(name="f", kind="level", levels=4),
        DeviceConfig(name="f", state_topic="z/f", field="fan_mode", values=["off", "low", "medium", "high"]),
    )
    assert fan.command_payload(7) == {"fan_mode": "high"}
    heat = DeviceTracker(
        DeviceSpec(name="h", kind="setpoint", unit="°C"),
        DeviceConfig(name="h", state_topic="z/h", field="occupied_heating_setpoint", max_value=24),
    )
    assert heat.command_payload(26.0) == {"occupied_heating_setpoint": 24.0}
    assert fan.parse_state(b'{"fan_mode": "Medium"}') == 2.0
    assert heat.parse_state(b'{"occupied_heating_setpoint": 20.5, "x": 1}') == 20.5


def test_echo_is_not_override_but_manual_change_is() -> None:
    """Initial state is not an override; our echo is matched; a later unexplained change holds the device."""
    d = light()
    assert d.on_state(0.0, 0.0).kind == "initial"
    d.note_command(1.0, 10.0)
    assert d.on_state(1.0, 10.2).kind == "echo"
    assert d.on_state(1.0, 11.0).kind == "repeat"
    assert not d.held(11.0)
    ev = d.on_state(0.0, 12.0)
    assert ev.kind == "override" and ev.previous == 1.0
    assert d.held(50.0) and not d.held(112.0)


def test_late_echo_is_an_override() -> None:
    """A matching state long after the command window is a person's doing."""
    d = light()
    d.on_state(0.0, 0.0)
    d.note_command(1.0, 10.0)
    assert d.on_state(1.0, 30.0).kind == "override"


def test_hold_persists() -> None:
    """The hold survives a restart through state()/restore()."""
    d = light()
    d.on_state(0.0, 0.0)
    d.on_state(1.0, 1.0)
    e = light()
    e.restore(json.loads(json.dumps(d.state())))
    assert e.held(50.0)


def test_bad_state_payload() -> None:
    """Malformed state payloads raise PayloadError; a message without the field gives None."""
    d = light()
    with pytest.raises(PayloadError):
        d.parse_state(b"nope")
    with pytest.raises(PayloadError):
        d.parse_state(b'{"state": "blue"}')
    assert d.parse_state(b'{"linkquality": 3}') is None


@pytest.mark.parametrize(
    "payload",
    [
        b'{"state": -5}',
        b'{"state": 2}',
        b'{"state": 0.5}',
        b'{"state": 1e308}',
        b'{"state": "' + b"9" * 400 + b'"}',
        b'{"state": ' + b"9" * 400 + b"}",
        b"[" * 5000 + b"]" * 5000,
        b'{"a":' * 3000 + b"1" + b"}" * 3000,
    ],
)
def test_impossible_light_states_are_invalid_input_not_overrides(payload: bytes) -> None:
    """A light at -5, 2, 0.5, 1e308, a 400-digit number or a deeply nested payload: PayloadError."""
    with pytest.raises(PayloadError):
        light().parse_state(payload)


def test_impossible_fan_and_setpoint_states_are_invalid() -> None:
    fan = DeviceTracker(
        DeviceSpec(name="f", kind="level", levels=4),
        DeviceConfig(name="f", state_topic="z/f", field="fan_mode", values=["off", "low", "medium", "high"]),
    )
    heat = DeviceTracker(
        DeviceSpec(name="h", kind="setpoint", unit="°C"),
        DeviceConfig(name="h", state_topic="z/h", field="occupied_heating_setpoint"),
    )
    for bad in (b'{"fan_mode": 99}', b'{"fan_mode": -1}', b'{"fan_mode": "turbo"}'):
        with pytest.raises(PayloadError):
            fan.parse_state(bad)
    assert fan.parse_state(b'{"fan_mode": 3}') == 3.0
    for bad in (
        b'{"occupied_heating_setpoint": 1e308}',
        b'{"occupied_heating_setpoint": -1e300}',
        b'{"occupied_heating_setpoint": true}',
        b'{"occupied_heating_setpoint": 45}',
    ):
        with pytest.raises(PayloadError):
            heat.parse_state(bad)
    assert heat.parse_state(b'{"occupied_heating_setpoint": 21.5}') == 21.5
    with pytest.raises(PayloadError):
        heat.parse_state(b'{"occupied_heating_setpoint": 20}', max_bytes=10)
