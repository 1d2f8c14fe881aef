"""End to end through a real mosquitto and a real SQLite file: sensors in -> commands out, overrides, modes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Broker, EchoDevices, JumpClock, Observer, agent_config_dict, wait_until
from sqlalchemy import select

from edge_agent.agent import Agent
from edge_agent.config import parse_config
from edge_agent.recorder import commands, decisions, overrides

pytestmark = pytest.mark.integration

SET = "zigbee2mqtt/living_light/set"


def start_agent(bundle: Path, mqtt_broker: Broker, tmp_path: Path, clock: Any = None, **over: Any) -> Agent:
    cfg = parse_config(agent_config_dict(bundle, mqtt_broker.port, tmp_path / "state", **over))
    agent = Agent(cfg, clock=clock or JumpClock())
    agent.start()
    assert agent.link.wait_connected(5)
    return agent


def rows(agent: Agent, table: Any) -> list[Any]:
    agent.recorder.flush()
    with agent.recorder.engine.connect() as c:
        return list(c.execute(select(table)).mappings())


def test_sensors_in_commands_out(
    bundle_path: Path, broker: Broker, observer: Observer, devices: EchoDevices, tmp_path: Path
) -> None:
    """Motion in a dark room, humid bedroom, cold living room -> light ON, fan high, setpoint clamped to 23."""
    agent = start_agent(bundle_path, broker, tmp_path)
    try:
        wait_until(lambda: all(d.tracker.reported is not None for d in agent.devices))
        observer.publish("zigbee2mqtt/bedroom_climate", {"humidity": 90, "temperature": 20})
        observer.publish("zigbee2mqtt/living_climate", {"temperature": 15.0, "humidity": 40})
        observer.publish("zigbee2mqtt/living_motion", {"occupancy": True, "illuminance_lux": 5})
        assert wait_until(lambda: observer.on(SET)) == [{"state": "ON"}]
        assert wait_until(lambda: observer.on("zigbee2mqtt/bedroom_fan/set")) == [{"fan_mode": "high"}]
        assert wait_until(lambda: observer.on("zigbee2mqtt/living_thermostat/set")) == [
            {"occupied_heating_setpoint": 23.0}
        ]
        # the light went on within the motion event's own decision, explained by the motion channel
        dec = wait_until(
            lambda: [d for d in observer.on("edge-agent/t1/decision/living.light") if d["sent"]]
        )[0]
        assert dec["trigger"].startswith("event:living.motion") and dec["top"][0][0] == "living.motion"
        assert dec["value"] == 1.0 and dec["tier"] == "full" and dec["mode"] == "auto"
        # echoes came back and are not overrides; commands are not retained
        wait_until(lambda: agent.devices[0].tracker.reported == 1.0)
        assert agent.counters.overrides == 0
        assert not any(r for t, _, r in observer.messages if t.endswith("/set"))
        cmd = rows(agent, commands)
        assert {(c["device"], c["status"]) for c in cmd} >= {
            ("living.light", "sent"),
            ("bedroom.fan", "sent"),
        }
    finally:
        agent.stop()
    assert observer.on("edge-agent/t1/availability")[-1] == "offline"


def test_manual_change_holds_and_is_recorded(
    bundle_path: Path, broker: Broker, observer: Observer, devices: EchoDevices, tmp_path: Path
) -> None:
    """A person switching the light off is an override (held, recorded with the agent's value); our echo is not."""
    agent = start_agent(bundle_path, broker, tmp_path)
    try:
        wait_until(lambda: agent.devices[0].tracker.reported == 0.0)
        observer.publish("zigbee2mqtt/living_motion", {"occupancy": True, "illuminance": 5})
        wait_until(lambda: agent.devices[0].tracker.reported == 1.0)  # command + echo
        assert agent.counters.overrides == 0
        devices.person_sets("living_light", state="OFF")
        wait_until(lambda: agent.counters.overrides == 1)
        n_sent = len(observer.on(SET))
        observer.publish("zigbee2mqtt/living_motion", {"occupancy": False, "illuminance": 5})
        observer.publish("zigbee2mqtt/living_motion", {"occupancy": True, "illuminance": 5})
        wait_until(lambda: getattr(agent.devices[0].last, "reason", None) == "held")
        assert len(observer.on(SET)) == n_sent  # never overrides a person
        ov = rows(agent, overrides)
        assert len(ov) == 1
        o = ov[0]
        assert (o["device"], o["value"], o["previous"], o["agent_target"]) == ("living.light", 0.0, 1.0, 1.0)
        assert o["model_version"] == "test-1" and o["hold_until"] > o["ts"] + 500
    finally:
        agent.stop()


def test_stale_sensor_no_command(
    bundle_path: Path, broker: Broker, observer: Observer, devices: EchoDevices, tmp_path: Path
) -> None:
    """A cold-room reading older than its stale limit never drives the thermostat; a fresh one does."""
    clock = JumpClock()
    agent = start_agent(bundle_path, broker, tmp_path, clock=clock, decision_tick_seconds=3600)
    heat = "zigbee2mqtt/living_thermostat/set"
    try:
        wait_until(lambda: agent.devices[2].tracker.reported == 20.0)
        observer.publish("zigbee2mqtt/living_climate", {"temperature": 15.0})  # slow channel: no decision yet
        wait_until(lambda: agent.counters.readings >= 1)
        clock.jump(2 * 3600)  # past the temperature channel's 30 min stale limit
        observer.publish(
            "zigbee2mqtt/living_motion", {"occupancy": True, "illuminance": 500}
        )  # event -> decide
        wait_until(lambda: getattr(agent.devices[2].last, "reason", None) == "stale")
        assert observer.on(heat) == [] and agent.counters.skipped_stale >= 1
        observer.publish("zigbee2mqtt/living_climate", {"temperature": 15.0})
        observer.publish("zigbee2mqtt/living_motion", {"occupancy": False, "illuminance": 500})
        assert wait_until(lambda: observer.on(heat)) == [{"occupied_heating_setpoint": 23.0}]
    finally:
        agent.stop()


def test_shadow_records_but_sends_nothing(
    bundle_path: Path, broker: Broker, observer: Observer, devices: EchoDevices, tmp_path: Path
) -> None:
    """In shadow mode the agent decides, records and publishes its decision, and commands nothing."""
    agent = start_agent(bundle_path, broker, tmp_path, mode="shadow")
    try:
        wait_until(lambda: agent.devices[0].tracker.reported == 0.0)
        observer.publish("zigbee2mqtt/living_motion", {"occupancy": True, "illuminance": 5})
        d = wait_until(
            lambda: [x for x in observer.on("edge-agent/t1/decision/living.light") if x["value"] == 1.0]
        )
        assert d[0]["mode"] == "shadow" and d[0]["sent"] is False and d[0]["reason"] == "change"
        dec = rows(agent, decisions)
        assert any(r["device"] == "living.light" and r["target"] == 1.0 and not r["sent"] for r in dec)
        assert json.loads(dec[0]["attention"])
        assert observer.on(SET) == [] and rows(agent, commands) == []
    finally:
        agent.stop()


def test_malformed_payloads_counted_loop_goes_on(
    bundle_path: Path, broker: Broker, observer: Observer, devices: EchoDevices, tmp_path: Path
) -> None:
    """Not JSON, wrong types, NaN, huge, out of bounds, unknown topics: counted; the next good message works."""
    agent = start_agent(
        bundle_path,
        broker,
        tmp_path,
        max_payload_bytes=4096,
        broker={"host": "127.0.0.1", "port": broker.port, "extra_subscriptions": ["zigbee2mqtt/#"]},
    )
    try:
        wait_until(lambda: agent.devices[0].tracker.reported == 0.0)
        bad = [
            b"not json",
            b"[1,2,3]",
            b'{"occupancy": "maybe"}',
            b'{"illuminance": NaN}',
            b'{"illuminance": -40}',
            b"\xff\xfe\x00",
            b'{"occupancy": {"a": 1}}',
        ]
        for p in bad:
            observer.publish("zigbee2mqtt/living_motion", p)
        observer.publish("zigbee2mqtt/living_motion", b"x" * 100_000)  # refused by the link, before the inbox
        observer.publish("zigbee2mqtt/living_light", b"{broken")
        observer.publish("zigbee2mqtt/garage_sensor", {"temperature": 10})
        wait_until(lambda: agent.counters.invalid == len(bad) + 1 and agent.counters.unknown_topic == 1)
        assert agent.link.counters.oversized == 1
        observer.publish("zigbee2mqtt/living_motion", {"occupancy": True, "illuminance": 5})
        assert wait_until(lambda: observer.on(SET)) == [{"state": "ON"}]
        stats = wait_until(
            lambda: [s for s in observer.on("edge-agent/t1/stats") if s["invalid"] == len(bad) + 1]
        )
        assert stats[-1]["unknown_topic"] == 1 and agent.counters.errors == 0
    finally:
        agent.stop()
