"""A fresh install: the Controller with no bundle observes (records every channel and every device change,
attributed), channels the bundle lacks are recorded, pause switches, and readiness caps (fake clock)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import agent_config_dict
from testbundle import home_bundle

from edge_agent.config import parse_config
from edge_agent.controller import Controller
from edge_agent.effects import (
    DecisionRecord,
    DeviceChangeRecord,
    OverrideRecord,
    ReadingRecord,
    StateRecord,
    SwitchRecord,
)
from edge_agent.inference import Bundle
from edge_agent.manifest import read_manifest, write_manifest

T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC
LIGHT, FAN, HEAT = "zigbee2mqtt/living_light", "zigbee2mqtt/bedroom_fan", "zigbee2mqtt/living_thermostat"
MOTION = "zigbee2mqtt/living_motion"
CO2 = "zigbee2mqtt/kitchen_air"


def msg(topic: str, obj: Any) -> tuple[str, bytes, float, bool]:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return topic, raw, 0.0, False


def config(tmp_path: Path, bundle: Path | None, **over: Any) -> Any:
    data = agent_config_dict(bundle or Path("x"), 1883, tmp_path, **({"timezone": "UTC"} | over))
    if bundle is None:
        data.pop("bundle")
    data["channels"] = data["channels"] + [
        {"topic": CO2, "channel": "kitchen.co2", "field": "co2", "kind": "co2"}
    ]
    return parse_config(data)


def initial(c: Controller, now: float = T0) -> list[Any]:
    fx = c.handle(
        [
            msg(LIGHT, {"state": "OFF"}),
            msg(FAN, {"fan_mode": "off"}),
            msg(HEAT, {"occupied_heating_setpoint": 20}),
        ],
        now,
    )
    return fx.of(DeviceChangeRecord)


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return home_bundle(tmp_path_factory.mktemp("b") / "home")


def test_no_bundle_records_everything_and_decides_nothing(tmp_path: Path) -> None:
    c = Controller(config(tmp_path, None, mode="auto"), None, now=T0)
    assert c.version == "none" and c.tier == "none"
    assert [r.source for r in initial(c)] == ["initial"] * 3
    readings: list[ReadingRecord] = []
    for i in range(5):  # one reading a minute on every sensor, motion toggling
        t = T0 + 60 * i + 1
        fx = c.handle(
            [msg(MOTION, {"occupancy": i % 2 == 0, "illuminance": 10 * i}), msg(CO2, {"co2": 400 + i})], t
        )
        assert fx.commands == [] and fx.decisions == []
        fx.extend(c.poll(t))
        readings += fx.of(ReadingRecord)
    assert {r.channel for r in readings} == {"living.motion", "living.illuminance", "kitchen.co2"}
    # a person switches the light on: recorded as theirs, held, an override row, a label collected
    fx = c.handle([msg(LIGHT, {"state": "ON"})], T0 + 400)
    ch = fx.of(DeviceChangeRecord)
    assert [(r.device, r.value, r.previous, r.source, r.learning_paused) for r in ch] == [
        ("living.light", 1.0, 0.0, "person", False)
    ]
    assert len(fx.of(OverrideRecord)) == 1 and c.devices[0].tracker.held(T0 + 401)
    assert c.stats()["devices"]["living.light"]["labels_collected"] == 1
    assert c.stats()["devices"]["living.light"]["mode"] == "observe"
    assert "no model yet" in c.stats()["devices"]["living.light"]["reason"]
    assert c.handle([msg(LIGHT, {"state": "ON"})], T0 + 401).of(DeviceChangeRecord) == []  # a repeat
    cat = [r for r in c.start_records(T0) if isinstance(r, StateRecord) and r.key == "catalog"][0].value
    assert (
        cat["channels"]["kitchen.co2"]["kind"] == "co2"
        and cat["channels"]["living.motion"]["room"] == "living"
    )
    assert cat["devices"]["bedroom.fan"] == {
        "kind": "level",
        "levels": 4,
        "unit": "",
        "min_value": None,
        "max_value": None,
        "room": "bedroom",
    }


def test_channels_the_bundle_lacks_are_recorded_and_listed(tmp_path: Path, bundle_dir: Path) -> None:
    c = Controller(config(tmp_path, bundle_dir), Bundle.load(bundle_dir), now=T0)
    initial(c)
    assert c.stats()["unmodelled_channels"] == ["kitchen.co2"]
    c.handle([msg(CO2, {"co2": 500})], T0 + 1)
    fx = c.handle([msg(CO2, {"co2": 510}), msg(MOTION, {"occupancy": True, "illuminance": 5})], T0 + 61)
    assert [r.value for r in fx.of(ReadingRecord) if r.channel == "kitchen.co2"] == [500.0]
    assert fx.commands  # the bundle's channels still decide (motion in the dark)
    assert c.counters.unknown_topic == 0


def test_other_automations_are_not_the_person(tmp_path: Path) -> None:
    learning = {
        "automations": [
            {
                "name": "thermostat schedule",
                "devices": ["living.heating"],
                "at": ["06:30"],
                "window_seconds": 300,
            },
            {"name": "ha night", "devices": ["living.light"], "topic": "homeassistant/script/night/fired"},
            {"name": "fan timer", "devices": ["bedroom.fan"], "always": True},
        ]
    }
    c = Controller(config(tmp_path, None, learning=learning, timezone="Europe/Brussels"), None, now=T0)
    initial(c)
    six30 = 1_800_000_000.0 - 8 * 3600 + 6.5 * 3600 - 3600 + 86400  # 06:30 Brussels (UTC+1) the next day
    fx = c.handle([msg(HEAT, {"occupied_heating_setpoint": 21})], six30 + 60)
    assert [r.source for r in fx.of(DeviceChangeRecord)] == ["automation:thermostat schedule"]
    assert fx.of(OverrideRecord) == [] and c.devices[2].tracker.held(six30 + 61)  # held, not a label
    fx = c.handle([msg(HEAT, {"occupied_heating_setpoint": 19})], six30 + 3 * 3600)
    assert [r.source for r in fx.of(DeviceChangeRecord)] == ["person"]
    fx = c.handle([msg("homeassistant/script/night/fired", b"1"), msg(LIGHT, {"state": "ON"})], T0 + 10)
    assert [r.source for r in fx.of(DeviceChangeRecord)] == ["automation:ha night"]
    fx = c.handle([msg(LIGHT, {"state": "OFF"})], T0 + 10 + 600)  # long after the script: a person
    assert [r.source for r in fx.of(DeviceChangeRecord)] == ["person"]
    fx = c.handle([msg(FAN, {"fan_mode": "high"})], T0 + 20)
    assert [r.source for r in fx.of(DeviceChangeRecord)] == ["automation:fan timer"]
    assert c.counters.unknown_topic == 0
    assert c.stats()["devices"]["living.light"]["labels_collected"] == 1


def test_pause_learning_and_pause_control(tmp_path: Path, bundle_dir: Path) -> None:
    c = Controller(config(tmp_path, bundle_dir), Bundle.load(bundle_dir), now=T0)
    initial(c)
    fx = c.handle([msg("edge-agent/t1/pause_learning/set", b"ON")], T0 + 1)
    assert [(r.name, r.value) for r in fx.of(SwitchRecord)] == [("pause_learning", True)]
    assert [(p.topic, p.payload, p.retain) for p in fx.publications] == [
        ("edge-agent/t1/pause_learning", b"ON", True)
    ]
    assert any(isinstance(r, StateRecord) and r.key == "switches" and r.urgent for r in fx.records)
    fx = c.handle([msg(LIGHT, {"state": "ON"})], T0 + 2)
    assert [r.learning_paused for r in fx.of(DeviceChangeRecord)] == [True]
    assert c.stats()["devices"]["living.light"]["labels_collected"] == 0
    # pause control: the model still decides (recorded), nothing is sent
    c.handle([msg("edge-agent/t1/pause_control/set", b'{"state": "on"}')], T0 + 3)
    fx = c.handle([msg("zigbee2mqtt/bedroom_climate", {"humidity": 90})], T0 + 900)
    fx.extend(c.poll(T0 + 1000))
    assert fx.commands == [] and any(d.reason == "paused" for d in fx.of(DecisionRecord))
    assert c.handle([msg("edge-agent/t1/pause_control/set", b"maybe")], T0 + 1001).of(SwitchRecord) == []
    assert c.counters.invalid == 1
    c.handle([msg("edge-agent/t1/pause_control/set", b"OFF")], T0 + 1002)
    later = Controller(
        config(tmp_path, bundle_dir), Bundle.load(bundle_dir), now=T0, state={"switches": c.switches.state}
    )
    assert later.switches.state == {"pause_learning": True, "pause_control": False}


def test_readiness_caps_the_mode(tmp_path: Path, bundle_dir: Path) -> None:
    home = tmp_path / "trained"
    shutil.copytree(bundle_dir, home)
    man = read_manifest(home)
    metrics = dict(man.metrics)
    metrics.update(
        {"label_events.living.light": 3, "label_events.bedroom.fan": 80, "holdout_agreement.bedroom.fan": 0.9}
    )
    metrics.update({"label_events.living.heating": 80, "holdout_agreement.living.heating": 0.99})
    write_manifest(home, man.model_copy(update={"metrics": metrics}))
    c = Controller(config(tmp_path, home), Bundle.load(home), now=T0)
    views = c.stats()["devices"]
    assert (
        views["living.light"]["mode"] == "observe" and "need 10 for shadow" in views["living.light"]["reason"]
    )
    assert views["bedroom.fan"]["mode"] == "suggest" and views["living.heating"]["mode"] == "auto"
    initial(c)
    fx = c.handle([msg(MOTION, {"occupancy": True, "illuminance": 5})], T0 + 1)
    assert [d.device for d in fx.decisions] == ["bedroom.fan", "living.heating"]  # the light only observed
    assert all(cmd.device == "living.heating" for cmd in fx.commands)


def test_device_state_is_a_model_input(tmp_path: Path) -> None:
    """A bundle with a `<device>.state` channel is fed the device's reported state (known until it changes)."""
    import numpy as np
    from testbundle import HOME_CHANNELS, HOME_DEVICES, build_bundle

    from edge_agent.manifest import ChannelSpec

    chans = [*HOME_CHANNELS, ChannelSpec(name="living.light.state", kind="device_state", mean=0.0, std=1.0)]
    w = np.zeros((len(chans), len(HOME_DEVICES)))
    w[-1, 0] = 8.0  # the light follows its own state: sigmoid(8 * state - 4)
    path = build_bundle(
        tmp_path / "b",
        chans,
        HOME_DEVICES,
        w,
        np.array([-4.0, 0.0, 0.0]),
        scale=np.array([1.0, 3.0, 10.0]),
        offset=np.array([0.0, 0.0, 15.0]),
    )
    c = Controller(config(tmp_path, path, mode="shadow"), Bundle.load(path), now=T0)
    initial(c)

    def light_output(t: float, motion: bool) -> float:
        fx = c.handle([msg(MOTION, {"occupancy": motion, "illuminance": 5})], t)
        return next(d.output for d in fx.decisions if d.device == "living.light")

    assert light_output(T0 + 10, True) < 0.1
    c.handle([msg(LIGHT, {"state": "ON"})], T0 + 20)
    assert light_output(T0 + 30, False) > 0.9
