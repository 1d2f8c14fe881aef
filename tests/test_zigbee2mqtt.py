"""Zigbee2MQTT auto-configuration: a realistic bridge/devices payload -> the config a person would write by hand;
and `edge-agent discover` reading it retained from a real mosquitto."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Observer

from edge_agent.cli import main
from edge_agent.config import load_config, parse_config
from edge_agent.zigbee2mqtt import Z2mError, parse_bridge_devices, propose, render_yaml, room_and_rest

FIXTURE = Path(__file__).parent / "data" / "z2m_bridge_devices.json"
Z = "zigbee2mqtt/"

# What a person would write for this home, by hand, reading Zigbee2MQTT's frontend.
BY_HAND: dict[str, Any] = {
    "broker": {"host": "127.0.0.1", "port": 1883},
    "channels": [
        {"topic": Z + "living motion", "channel": "living.motion", "field": "occupancy"},
        {"topic": Z + "living motion", "channel": "living.illuminance", "field": "illuminance"},
        {"topic": Z + "living motion", "channel": "living.temperature", "field": "temperature"},
        {"topic": Z + "hall motion", "channel": "hall.motion", "field": "occupancy"},
        {
            "topic": Z + "hall motion",
            "channel": "hall.illuminance_above_threshold",
            "field": "illuminance_above_threshold",
        },
        {"topic": Z + "bedroom climate", "channel": "bedroom.temperature", "field": "temperature"},
        {"topic": Z + "bedroom climate", "channel": "bedroom.humidity", "field": "humidity"},
        {"topic": Z + "bedroom climate", "channel": "bedroom.pressure", "field": "pressure"},
        # Zigbee2MQTT's contact is true when closed: the channel is 1 = open
        {"topic": Z + "hall door", "channel": "hall.door", "field": "contact", "invert": True},
        {"topic": Z + "office air", "channel": "office.co2", "field": "co2"},
        {"topic": Z + "office air", "channel": "office.temperature", "field": "temperature"},
        {"topic": Z + "office air", "channel": "office.humidity", "field": "humidity"},
        {"topic": Z + "kitchen plug", "channel": "kitchen.plug_power", "field": "power", "kind": "power"},
        {
            "topic": Z + "living thermostat",
            "channel": "living.thermostat_temperature",
            "field": "local_temperature",
            "kind": "temperature",
        },
        {"topic": Z + "bedroom fan", "channel": "bedroom.fan_pm25", "field": "pm25", "kind": "pm25"},
    ],
    "devices": [
        {"name": "living.light", "state_topic": Z + "living light"},
        {"name": "bedroom.light", "state_topic": Z + "bedroom lamp"},
        {"name": "kitchen.plug", "state_topic": Z + "kitchen plug"},
        {
            "name": "living.heating",
            "state_topic": Z + "living thermostat",
            "field": "occupied_heating_setpoint",
            "kind": "setpoint",
            "unit": "°C",
            "min_value": 5,
            "max_value": 35,
            "setpoint_step": 0.5,
        },
        {
            "name": "bedroom.fan",
            "state_topic": Z + "bedroom fan",
            "field": "fan_mode",
            "values": ["off", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
        },
    ],
}


def _devices() -> list[dict[str, Any]]:
    return parse_bridge_devices(FIXTURE.read_bytes())


def _dump(data: dict[str, Any]) -> dict[str, Any]:
    cfg = parse_config({**data, "agent_id": "t", "timezone": "UTC"})
    return cfg.model_dump(mode="json")


def test_proposal_is_what_a_person_writes_by_hand() -> None:
    p = propose(_devices())
    text = render_yaml(p, broker_host="127.0.0.1", broker_port=1883, source="fixture")
    assert _dump(yaml.safe_load(text)) == _dump(BY_HAND)
    # comments a reviewer needs: the inverted contact, the dimmable light, the thermostat's range
    assert "true means closed" in text
    assert "brightness 0..254" in text
    assert "colour and colour temperature" in text


def test_coordinator_remote_and_diagnostics_are_listed_not_used() -> None:
    p = propose(_devices())
    not_used = "\n".join(p.not_used)
    assert "Coordinator: the coordinator" in not_used
    assert "hall remote: only actions (on, off, brightness_move_down" in not_used
    proposed = {c.entry["field"] for c in p.channels}
    assert not proposed & {"linkquality", "battery", "voltage", "energy", "current", "action"}
    assert not any(d.entry["name"].startswith("hall.") for d in p.devices)  # the remote is no device
    left = "\n".join(p.left_out)
    assert "hall door: battery, device_temperature, linkquality, power_outage_count, voltage" in left
    # with --include-diagnostic the battery and link quality become generic channels
    diag = propose(_devices(), include_diagnostic=True)
    extra = {c.entry["channel"]: c.entry for c in diag.channels}
    assert extra["hall.battery"]["field"] == "battery" and "kind" not in extra["hall.battery"]  # generic
    _dump(yaml.safe_load(render_yaml(diag, broker_host="h", broker_port=1, source="x")))


def test_names_and_odd_devices() -> None:
    assert room_and_rest("Living Room/Motion") == ("living", "room_motion")
    assert room_and_rest("hall_door") == ("hall", "door")
    assert room_and_rest("0x00158d0001e8a9f1")[0] == "unnamed"
    dev = json.loads(FIXTURE.read_text())[4]  # the door contact, never renamed in Zigbee2MQTT
    dev["friendly_name"] = dev["ieee_address"]
    lock = {
        "ieee_address": "0x1",
        "type": "EndDevice",
        "friendly_name": "front lock",
        "definition": {
            "exposes": [
                {
                    "type": "lock",
                    "features": [
                        {
                            "type": "binary",
                            "name": "state",
                            "property": "state",
                            "access": 7,
                            "value_on": "LOCK",
                            "value_off": "UNLOCK",
                        }
                    ],
                }
            ]
        },
    }
    unsupported = {"ieee_address": "0x2", "type": "EndDevice", "friendly_name": "mystery", "definition": None}
    wild = {**json.loads(FIXTURE.read_text())[3], "friendly_name": "bed+room"}
    light = json.loads(FIXTURE.read_text())[6]
    light["definition"]["description"] = "Bulb\nmode: [evil"  # a line break must not end the comment
    p = propose([dev, lock, unsupported, wild, light])
    assert any(t.startswith("bed+room: its friendly name holds an MQTT wildcard") for t in p.not_used)
    _dump(yaml.safe_load(render_yaml(p, broker_host="h", broker_port=1, source="x")))
    assert p.channels[0].entry["channel"] == "unnamed.e8a9f1_contact" or p.channels[0].entry[
        "channel"
    ].startswith("unnamed.")
    assert "rename it in Zigbee2MQTT" in p.channels[0].comment
    assert any(t.startswith("front lock: a lock: never proposed") for t in p.not_used)
    assert any(t.startswith("mystery: no definition") for t in p.not_used)
    assert [d.entry["name"] for d in p.devices] == ["living.light"]


@pytest.mark.parametrize("bad", [b"{", b'{"a": 1}', b"[1, 2]", b"\xff\xfe"])
def test_malformed_device_list_is_a_clear_error(bad: bytes) -> None:
    with pytest.raises(Z2mError, match="bridge/devices"):
        parse_bridge_devices(bad)


def test_discover_reads_the_retained_list_on_a_real_broker(
    broker: Any, observer: Observer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    observer.publish("zigbee2mqtt/bridge/devices", FIXTURE.read_bytes(), retain=True, qos=1)
    out = tmp_path / "config.yaml"
    rc = main(["discover", "--broker", f"127.0.0.1:{broker.port}", "--write", str(out), "--timeout", "10"])
    assert rc == 0, capsys.readouterr().err
    assert "15 channels and 5 devices proposed from 12 Zigbee2MQTT devices" in capsys.readouterr().out
    cfg = load_config(out)  # the agent's own loader takes the file as written
    want = parse_config({**BY_HAND, "broker": {"host": "127.0.0.1", "port": broker.port}})
    assert [c.model_dump() for c in cfg.channels] == [c.model_dump() for c in want.channels]
    assert [d.model_dump() for d in cfg.devices] == [d.model_dump() for d in want.devices]
    assert cfg.broker.port == broker.port
    # an existing file is kept; a wrong base topic says what to check, no traceback
    assert main(["discover", "--broker", f"127.0.0.1:{broker.port}", "--write", str(out)]) == 2
    assert "the file exists" in capsys.readouterr().err
    rc = main(["discover", "--broker", f"127.0.0.1:{broker.port}", "--base-topic", "z2m", "--timeout", "0.5"])
    assert rc == 2 and "--base-topic" in capsys.readouterr().err


def test_discover_from_a_saved_list_with_another_base_topic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c.yaml"
    argv = ["discover", "--from-file", str(FIXTURE), "--base-topic", "z2m", "--write", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    cfg = load_config(out)
    assert cfg.zigbee2mqtt.base_topic == "z2m"
    assert {r.topic for r in cfg.channels} >= {"z2m/living motion", "z2m/hall door"}
    assert cfg.devices[0].state_topic == "z2m/living light"


def test_discover_without_a_broker_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["discover", "--broker", "127.0.0.1:1", "--timeout", "1"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the broker at 127.0.0.1:1" in err and "Traceback" not in err


def _z(name: str, *exposes: dict[str, Any]) -> dict[str, Any]:
    return {
        "ieee_address": "0x" + str(abs(hash(name)))[:16].zfill(16),
        "type": "Router",
        "friendly_name": name,
        "definition": {"vendor": "TuYa", "model": "TS0601", "exposes": list(exposes)},
    }


def _bin(prop: str, access: int = 7, on: Any = "ON", off: Any = "OFF", **kw: Any) -> dict[str, Any]:
    return {
        "type": "binary",
        "name": prop.split("_l")[0],
        "property": prop,
        "access": access,
        "value_on": on,
        "value_off": off,
        **kw,
    }


def test_gangs_covers_word_fans_tuya_valves_and_presence() -> None:
    gang = _z(
        "kitchen switch",
        *[
            {"type": "switch", "endpoint": ep, "features": [_bin(f"state_{ep}", endpoint=ep)]}
            for ep in ("l1", "l2")
        ],
    )
    cover = _z(
        "bedroom blind",
        {
            "type": "cover",
            "features": [
                {
                    "type": "enum",
                    "name": "state",
                    "property": "state",
                    "access": 7,
                    "values": ["OPEN", "CLOSE", "STOP"],
                },
                {
                    "type": "numeric",
                    "name": "position",
                    "property": "position",
                    "access": 7,
                    "value_min": 0,
                    "value_max": 100,
                    "unit": "%",
                },
            ],
        },
    )
    fan = _z(
        "office fan",
        {
            "type": "fan",
            "features": [
                _bin("fan_state"),
                {
                    "type": "enum",
                    "name": "mode",
                    "property": "fan_mode",
                    "access": 7,
                    "values": ["off", "low", "medium", "high", "on", "auto", "smart"],
                },
            ],
        },
    )
    valve = _z(
        "kids radiator",
        {
            "type": "climate",
            "features": [
                {
                    "type": "numeric",
                    "name": "current_heating_setpoint",
                    "property": "current_heating_setpoint",
                    "access": 7,
                    "value_min": 5,
                    "value_max": 30,
                    "value_step": 0.5,
                    "unit": "°C",
                },
                {
                    "type": "numeric",
                    "name": "local_temperature",
                    "property": "local_temperature",
                    "access": 5,
                    "unit": "°C",
                },
            ],
        },
    )
    radar = _z(
        "study presence",
        _bin("presence", access=5, on=True, off=False),
        {"type": "numeric", "name": "illuminance", "property": "illuminance", "access": 5, "unit": "lx"},
        {
            "type": "enum",
            "name": "presence_state",
            "property": "presence_state",
            "access": 5,
            "values": ["none", "presence", "move"],
        },
    )
    p = propose([gang, cover, fan, valve, radar])
    dev = {d.entry["name"]: d for d in p.devices}
    assert dev["kitchen.switch"].entry == {
        "name": "kitchen.switch",
        "state_topic": Z + "kitchen switch",
        "field": "state_l1",
    }
    assert "also state_l2 (one device per state topic)" in dev["kitchen.switch"].comment
    assert dev["bedroom.blind"].entry == {
        "name": "bedroom.blind",
        "state_topic": Z + "bedroom blind",
        "field": "position",
        "kind": "setpoint",
        "unit": "%",
        "min_value": 0,
        "max_value": 100,
        "setpoint_step": 1,
    }
    assert dev["office.fan"].entry["values"] == ["off", "low", "medium", "high"]
    assert "modes on, auto, smart are not levels" in dev["office.fan"].comment
    assert dev["kids.heating"].entry["field"] == "current_heating_setpoint"
    assert (dev["kids.heating"].entry["min_value"], dev["kids.heating"].entry["max_value"]) == (5, 30)
    ch = {c.entry["channel"]: c.entry for c in p.channels}
    assert ch["study.presence"] == {
        "topic": Z + "study presence",
        "channel": "study.presence",
        "field": "presence",
    }
    assert ch["kids.radiator_temperature"]["kind"] == "temperature"
    assert "study presence: presence_state" in p.left_out
    cfg = parse_config({**p.config(), "timezone": "UTC"})
    assert {d.name: d.own_kind() for d in cfg.devices}["office.fan"] == "level"


@pytest.mark.integration
def test_the_discovered_config_runs_the_agent(broker: Any, observer: Observer, tmp_path: Path) -> None:
    """The proposed file as the daemon's config: readings land on the right channels (the door 1 = open)."""
    from conftest import wait_until

    from edge_agent.agent import Agent

    out = tmp_path / "config.yaml"
    assert (
        main(
            [
                "discover",
                "--from-file",
                str(FIXTURE),
                "--broker",
                f"127.0.0.1:{broker.port}",
                "--write",
                str(out),
            ]
        )
        == 0
    )
    cfg = load_config(out)
    cfg.state_dir, cfg.agent_id, cfg.timezone = tmp_path / "state", "disc", "UTC"
    # retained, before the agent starts: they reach it with its subscriptions
    observer.publish(
        Z + "living motion", {"occupancy": True, "illuminance": 30, "temperature": 21.5}, True, 1
    )
    observer.publish(Z + "hall door", {"contact": False, "battery": 90}, True, 1)  # open
    observer.publish(Z + "kitchen plug", {"state": "ON", "power": 61.5}, True, 1)
    agent = Agent(cfg)
    agent.start()
    try:
        assert agent.link.wait_connected(5)
        c = agent.controller

        def value(ch: str) -> float:
            return float(c.window.last_value[c.index[ch]])

        wait_until(lambda: value("hall.door") == 1.0 and value("kitchen.plug_power") == 61.5)
        wait_until(lambda: value("living.motion") == 1.0)
        assert (value("living.illuminance"), value("living.temperature")) == (30, 21.5)
        wait_until(lambda: next(d for d in agent.devices if d.name == "kitchen.plug").tracker.reported == 1.0)
        assert c.counters.invalid == 0 and c.counters.unknown_topic == 0
    finally:
        agent.stop()
