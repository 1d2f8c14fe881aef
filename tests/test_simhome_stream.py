"""Simulated home, live side without a broker: Zigbee2MQTT payloads, command parsing, the person."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from simhome import CHANNEL_NAMES, SimHome, topology
from simhome.person import Person
from simhome.stream import Z2MStream, decode_command, device_state

TZ = ZoneInfo("Europe/Brussels")
FIELDS = {
    "motion": {"occupancy": bool, "illuminance_lux": int, "battery": int, "linkquality": int},
    "climate": {"temperature": float, "humidity": float},
    "hall_door": {"contact": bool},
    "house_meter": {"power": float},
    "outdoor_sensor": {"temperature": float},
}


def _readings(**over):
    base = {c: 20.0 for c in CHANNEL_NAMES}
    base |= {c: 0.0 for c in CHANNEL_NAMES if c.endswith(".motion") or c == "hall.door"}
    base |= {"living.illuminance": 150.0, "house.power": 432.1}
    return base | over


def _check_payload(topic: str, payload: dict) -> None:
    name = topic.split("/", 1)[1]
    kind = name.split("_", 1)[1] if name.split("_", 1)[1] in ("motion", "climate") else name
    expected = dict(FIELDS[kind])
    if name in ("living_climate", "bedroom_climate"):
        expected["co2"] = int
    assert set(payload) == set(expected), (topic, payload)
    for key, typ in expected.items():
        v = payload[key]
        assert isinstance(v, typ) and (typ is bool or not isinstance(v, bool)), (topic, key, v)


def test_first_poll_reports_every_sensor_with_documented_fields():
    topo = topology()
    stream = Z2MStream(topo, seed=1)
    msgs = stream.poll(1_000_000.0, _readings())
    assert sorted(m.topic for m in msgs) == topo.sensor_topics()
    for m in msgs:
        payload = json.loads(m.encode())
        _check_payload(m.topic, payload)
    door = next(m for m in msgs if m.topic == "zigbee2mqtt/hall_door")
    assert door.payload == {"contact": True}  # hall.door 0 = closed = contact true


def test_real_home_payloads_are_valid_json():
    home = SimHome(4, dt.datetime(2023, 7, 14, 7, 0, tzinfo=TZ))
    stream = Z2MStream(home.topology(), seed=4)
    seen = set()
    for _ in range(120):  # 10 sim-minutes in 5 s steps
        home.step(5.0)
        for m in stream.poll(home.now, home.readings()):
            _check_payload(m.topic, json.loads(m.encode()))
            seen.add(m.topic)
    assert "zigbee2mqtt/house_meter" in seen and "zigbee2mqtt/living_climate" in seen


def test_schedule_change_and_dropout():
    stream = Z2MStream(topology(), seed=2)
    t = 5_000_000.0
    stream.poll(t, _readings())
    assert stream.poll(t + 5, _readings()) == []  # nothing due, nothing changed
    moved = stream.poll(t + 10, _readings(**{"kitchen.motion": 1.0}))
    assert [m.topic for m in moved] == ["zigbee2mqtt/kitchen_motion"] and moved[0].payload[
        "occupancy"
    ] is True
    opened = stream.poll(t + 12, _readings(**{"kitchen.motion": 1.0, "hall.door": 1.0}))
    assert [m.payload for m in opened] == [{"contact": False}]
    silent = _readings(**{"kitchen.motion": 1.0, "house.power": None})
    later = {m.topic for m in stream.poll(t + 200, silent)}
    assert "zigbee2mqtt/house_meter" not in later  # dropout: the meter says nothing
    assert {"zigbee2mqtt/living_climate", "zigbee2mqtt/living_motion"} <= later


def test_device_state_payloads_and_commands():
    topo = topology()
    light, fan, heat = (topo.device(n) for n in ("living.light", "bedroom.fan", "living.heating"))
    assert device_state(light, 1.0).payload == {"state": "ON", "brightness": 254}
    assert device_state(fan, 1.0).payload == {"fan_mode": "low"}
    m = device_state(heat, 20.5, 19.84)
    assert m.topic == "zigbee2mqtt/living_thermostat"
    assert m.payload == {"occupied_heating_setpoint": 20.5, "local_temperature": 19.8}
    assert decode_command(topo, "zigbee2mqtt/bedroom_fan/set", b'{"fan_mode": "medium"}', 0.0)[1] == 2.0
    assert decode_command(topo, "zigbee2mqtt/living_light/set", b'{"state": "TOGGLE"}', 1.0)[1] == 0.0
    assert (
        decode_command(topo, "zigbee2mqtt/living_thermostat/set", b'{"occupied_heating_setpoint": 21}', 0)[1]
        == 21
    )
    with pytest.raises(ValueError, match="not JSON"):
        decode_command(topo, "zigbee2mqtt/living_light/set", b"ON", 0.0)
    with pytest.raises(ValueError, match="no 'fan_mode' key"):
        decode_command(topo, "zigbee2mqtt/bedroom_fan/set", b'{"state": "ON"}', 0.0)
    with pytest.raises(ValueError, match="turbo"):
        decode_command(topo, "zigbee2mqtt/bedroom_fan/set", b'{"fan_mode": "turbo"}', 0.0)


def _run(
    person: Person,
    device: str,
    actual: float,
    preferred: float,
    present=True,
    awake=True,
    source="controller",
    t0=0.0,
    until=3600.0,
):
    """Tick every 5 sim-seconds; return (time, value) of the first manual action, or None."""
    t = t0
    while t <= until:
        v = person.tick(t, device, actual, preferred, present, awake, source)
        if v is not None:
            return t, v
        t += 5.0
    return None


def test_person_overrides_a_disagreeing_controller_after_a_delay():
    p = Person(seed=0, overrides=True, manual_operation=False)
    act = _run(p, "living.light", 1.0, 0.0)
    assert act is not None and act[0] >= 10.0 and act[1] == 0.0
    assert p.override_count == {"living.light": 1} and p.manual_count == {}
    assert _run(p, "living.heating", 20.7, 20.5) is None  # within tolerance: no complaint


def test_person_needs_presence_and_wakefulness():
    p = Person(seed=0)
    assert _run(p, "bedroom.fan", 3.0, 0.0, present=False) is None
    assert _run(p, "bedroom.fan", 3.0, 0.0, awake=False) is None
    assert p.override_count == {}


def test_manual_operation_switch():
    off = Person(seed=1, manual_operation=False)
    assert _run(off, "kitchen.light", 0.0, 1.0, source="person") is None
    on = Person(seed=1, manual_operation=True)
    act = _run(on, "kitchen.light", 0.0, 1.0, source="person")
    assert act is not None and on.manual_count == {"kitchen.light": 1} and on.override_count == {}
    no_override = Person(seed=1, overrides=False, manual_operation=True)
    assert _run(no_override, "kitchen.light", 1.0, 0.0, source="controller") is None


def test_person_switches_off_behind_them_but_not_later():
    p = Person(seed=2, leave_grace=600.0)
    assert p.tick(0.0, "living.light", 1.0, 1.0, True, True, "person") is None  # in the room, agrees
    act = _run(p, "living.light", 1.0, 0.0, present=False, source="person", t0=5.0, until=600.0)
    assert act is not None and act[1] == 0.0 and p.manual_count == {"living.light": 1}
    late = Person(seed=2, leave_grace=600.0)
    late.tick(0.0, "living.light", 1.0, 1.0, True, True, "person")
    assert _run(late, "living.light", 1.0, 0.0, present=False, source="person", t0=700.0) is None


def test_pending_action_is_dropped_when_state_agrees_again():
    p = Person(seed=3)
    assert p.tick(0.0, "living.light", 1.0, 0.0, True, True, "controller") is None
    assert "living.light" in p.pending
    assert p.tick(5.0, "living.light", 0.0, 0.0, True, True, "controller") is None
    assert p.pending == {}
    assert _run(p, "living.light", 0.0, 0.0, t0=10.0) is None
