"""Home Assistant discovery: the device payload against HA's schema (tests/ha_schema.py), its templates on the
agent's real payloads, retained on connect and again after HA's `online`, and HA-style mode commands that
change the agent and survive a restart on the same SQLite file (real mosquitto)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import INITIAL_STATES, Broker, EchoDevices, Observer, agent_config_dict, wait_until
from ha_schema import (
    check_state,
    render_attributes,
    render_state,
    validate_component,
    validate_device_payload,
)

from edge_agent.agent import Agent
from edge_agent.config import ConfigError, parse_config
from edge_agent.ha_discovery import Discovery
from edge_agent.ha_settings import HomeAssistantSettings

CONFIG_TOPIC = "homeassistant/device/edge_agent_t1/config"
HA = {"support_url": "https://example.org/edge-agent"}
DEVICES = ["living.light", "bedroom.fan", "living.heating"]


def _discovery(devices: list[str], saved: Any = None) -> Discovery:
    return Discovery("t1", devices, HomeAssistantSettings(**HA), saved)


def test_payload_passes_the_schema_and_has_every_entity() -> None:
    p = _discovery(DEVICES).payload()
    assert validate_device_payload(p) == []
    comps = p["components"]
    by_platform: dict[str, list[str]] = {}
    for k, c in comps.items():
        by_platform.setdefault(c["platform"], []).append(k)
    assert sorted(by_platform["select"]) == [
        "mode",
        "mode_bedroom_fan",
        "mode_living_heating",
        "mode_living_light",
    ]
    assert sorted(by_platform["switch"]) == ["pause_control", "pause_learning"]
    assert {"retrain", "rollback", "accept_living_light", "reject_living_light"} <= set(by_platform["button"])
    assert len(by_platform["event"]) == 3
    assert {"tier", "decisions_per_min", "latency", "cpu", "model_version", "last_training"} <= set(
        by_platform["sensor"]
    )
    assert comps["retrain"]["command_topic"] == "edge-agent/t1/retrain/set"
    assert comps["rollback"]["command_topic"] == "edge-agent/t1/rollback/set"
    assert comps["mode_living_light"]["command_topic"] == "edge-agent/t1/mode/living.light/set"
    assert p["availability"][0]["topic"] == "edge-agent/t1/availability"
    assert p["origin"] == {"name": "edge-agent", "sw_version": "0.1.0", "support_url": HA["support_url"]}
    assert all("object_id" not in c for c in comps.values())


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        ({"object_id": "x"}, "deprecated object_id"),
        ({"default_entity_id": "sensor.edge_agent_t1_mode"}, "default_entity_id"),
        ({"command_topic": None}, "required key 'command_topic'"),
        ({"device_class": "temperature"}, "not an option of select"),
        ({"options": []}, "non-empty list"),
        ({"command_topic": "edge-agent/+/set"}, "wildcard"),
        ({"value_template": "{{ value_json.mode "}, "does not compile"),
    ],
)
def test_the_validator_refuses_what_ha_refuses(change: dict[str, Any], expect: str) -> None:
    c = dict(_discovery(DEVICES).components()["mode"])
    for k, v in change.items():
        if v is None:
            c.pop(k)
        else:
            c[k] = v
    assert any(expect in p for p in validate_component("mode", c))


def test_a_removed_device_loses_its_entities() -> None:
    first = _discovery(DEVICES)
    _, saved = first.announce(1.0)
    second = _discovery(["living.light", "living.heating"], saved.value)
    pubs, _ = second.announce(2.0)
    payload = json.loads(pubs[0].payload)
    assert validate_device_payload(payload) == []
    gone = {k: c for k, c in payload["components"].items() if "bedroom_fan" in k}
    assert gone and all(c == {"platform": c["platform"]} for c in gone.values())  # HA removes these
    assert payload["components"]["mode_living_light"]["options"]  # the others stay whole
    empties = {p.topic for p in pubs[1:]}
    assert "homeassistant/select/edge_agent_t1/mode_bedroom_fan/config" in empties
    assert all(p.payload == b"" and p.retain for p in pubs[1:])


def _latest(obs: Observer, topic: str) -> bytes | None:
    with obs._lock:
        hits = [p for t, p, _ in obs.messages if t == topic]
    return hits[-1] if hits else None


@pytest.mark.integration
def test_discovery_retained_on_connect_and_again_after_ha_online(
    bundle_path: Path, broker: Broker, tmp_path: Path
) -> None:
    cfg = parse_config(agent_config_dict(bundle_path, broker.port, tmp_path / "s", homeassistant=HA))
    agent = Agent(cfg)
    agent.start()
    dev = EchoDevices(broker.port, INITIAL_STATES)
    try:
        assert agent.link.wait_connected(5)
        wait_until(lambda: agent.link.counters.connects >= 1)
        late = Observer(broker.port, ["homeassistant/#", "edge-agent/#"])  # subscribes after the announce
        try:
            retained = wait_until(lambda: [m for m in late.messages if m[0] == CONFIG_TOPIC])
            assert retained[0][2] is True  # delivered as retained: HA sees it whenever it starts
            payload = json.loads(retained[0][1])
            assert validate_device_payload(payload) == []
            # every entity's template on the agent's real payloads: states HA accepts
            late.publish("zigbee2mqtt/living_motion", {"occupancy": True, "illuminance": 5})
            wait_until(lambda: _latest(late, "edge-agent/t1/decision/living.light"))
            wait_until(
                lambda: (json.loads(_latest(late, "edge-agent/t1/stats") or b"{}")).get("decisions", 0) > 0
            )
            checked = 0
            for c in payload["components"].values():
                if "state_topic" not in c or c["platform"] == "event":
                    continue
                raw = wait_until(lambda c=c: _latest(late, c["state_topic"]), timeout=10)
                state = render_state(c.get("value_template"), raw)
                assert check_state(c, state) == [], (c["unique_id"], state)
                if "json_attributes_topic" in c:
                    attrs = render_attributes(
                        c.get("json_attributes_template"), _latest(late, c["json_attributes_topic"])
                    )
                    if c["unique_id"].endswith("decision_living_light"):
                        assert attrs["top"] and attrs["top"][0][0] == "living.motion"
                checked += 1
            assert checked >= 18
            n = len([m for m in late.messages if m[0] == CONFIG_TOPIC])
            decisions = len(late.on("edge-agent/t1/decision/living.light"))
            switches = len(late.on("edge-agent/t1/pause_control"))
            late.publish("homeassistant/status", b"online")  # HA restarted: announce again
            again = wait_until(lambda: [m for m in late.messages if m[0] == CONFIG_TOPIC][n:])
            assert json.loads(again[0][1]) == payload
            # and the states it shows again (the last decision, the switches), not only the config
            wait_until(lambda: len(late.on("edge-agent/t1/decision/living.light")) > decisions)
            wait_until(lambda: len(late.on("edge-agent/t1/pause_control")) > switches)
            late.publish("homeassistant/status", b"offline")  # HA going away: nothing to do, no error
        finally:
            late.close()
        assert agent.counters.invalid == 0 and agent.counters.unknown_topic == 0
    finally:
        dev.close()
        agent.stop()


@pytest.mark.integration
def test_ha_mode_commands_change_the_agent_and_persist(
    bundle_path: Path, broker: Broker, tmp_path: Path
) -> None:
    data = agent_config_dict(bundle_path, broker.port, tmp_path / "s", homeassistant=HA)
    agent = Agent(parse_config(data))
    agent.start()
    obs = Observer(broker.port, ["edge-agent/#", "zigbee2mqtt/+/set"])
    dev = EchoDevices(broker.port, INITIAL_STATES)
    light = next(d for d in agent.devices if d.name == "living.light")
    try:
        assert agent.link.wait_connected(5)
        obs.publish("edge-agent/t1/mode/set", b"suggest", qos=1)  # what HA's select sends
        obs.publish("edge-agent/t1/mode/living.light/set", b"shadow", qos=1)
        obs.publish("edge-agent/t1/mode/set", b"turbo", qos=1)  # not a mode: refused, counted
        wait_until(lambda: "shadow" in obs.on("edge-agent/t1/mode/living.light"))
        wait_until(lambda: agent.counters.invalid == 1)
        assert obs.on("edge-agent/t1/mode")[-1] == "suggest"
        assert agent.controller.modes.global_mode == "suggest"
        assert agent.controller.device_mode(light) == "shadow"
        wait_until(lambda: any(s.get("mode") == "suggest" for s in obs.on("edge-agent/t1/stats")))
        obs.publish("zigbee2mqtt/living_motion", {"occupancy": True, "illuminance": 5})
        dec = wait_until(lambda: obs.on("edge-agent/t1/decision/living.light"))
        assert dec[-1]["mode"] == "shadow" and not dec[-1]["sent"]
        assert obs.on("zigbee2mqtt/living_light/set") == []
    finally:
        dev.close()
        obs.close()
        agent.stop()
    again = Agent(parse_config(data))  # same state_dir: the same SQLite file
    again.start()
    obs = Observer(broker.port, ["edge-agent/#"])
    try:
        assert again.controller.modes.global_mode == "suggest"
        light = next(d for d in again.devices if d.name == "living.light")
        assert again.controller.device_mode(light) == "shadow"
        wait_until(lambda: again.link.counters.connects >= 1)
        wait_until(lambda: "shadow" in obs.on("edge-agent/t1/mode/living.light"))  # retained, re-published
        assert obs.on("edge-agent/t1/mode")[-1] == "suggest"
    finally:
        obs.close()
        again.stop()
    data["mode"] = "shadow"  # the config file edited since: it wins over the saved setting
    third = Agent(parse_config(data))
    try:
        assert third.controller.modes.global_mode == "shadow"
        light = next(d for d in third.devices if d.name == "living.light")
        assert third.controller.device_mode(light) == "shadow"  # its own setting still holds
    finally:
        third.recorder.close()


@pytest.mark.parametrize(
    ("over", "key"),
    [
        ({"homeassistant": {"node_id": "my hub"}}, "homeassistant.node_id"),
        ({"homeassistant": {"support_url": "docs"}}, "homeassistant.support_url"),
        ({"homeassistant": {"status_topic": "homeassistant/#"}}, "homeassistant.status_topic"),
        ({"homeassistant": {"discovery": True, "prefix": "ha"}}, "homeassistant.prefix"),
        ({"suggest": {"expiry_seconds": 0}}, "suggest.expiry_seconds"),
    ],
)
def test_bad_settings_name_the_key(tmp_path: Path, over: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(agent_config_dict(tmp_path / "b", 1883, tmp_path / "s", **over))
    assert f"{key}:" in str(e.value)


def test_a_device_name_that_cannot_be_part_of_a_topic_is_refused(tmp_path: Path) -> None:
    data = agent_config_dict(tmp_path / "b", 1883, tmp_path / "s")
    data["devices"][0]["name"] = "living/light"
    with pytest.raises(ConfigError, match=r"devices\[0\]\.name: device name 'living/light' may not"):
        parse_config(data)
