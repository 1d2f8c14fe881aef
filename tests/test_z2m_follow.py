"""The daemon following Zigbee2MQTT: availability masks a sensor's channels at once (not after their stale time),
and bridge/devices changes (rename, removal, unknown devices) are logged once and listed, never guessed.
The controller on a fake clock, then one run through a real mosquitto."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from conftest import JumpClock, Observer, agent_config_dict, wait_until
from testbundle import home_bundle

from edge_agent.agent import Agent
from edge_agent.config import parse_config
from edge_agent.controller import Controller
from edge_agent.inference import Bundle
from edge_agent.z2m_follow import status_lines

T0 = 1_800_000_000.0
MOTION = "zigbee2mqtt/living_motion"
AVAIL = MOTION + "/availability"
BRIDGE = "zigbee2mqtt/bridge/devices"


def dev(ieee: str, name: str) -> dict[str, Any]:
    return {"ieee_address": ieee, "type": "EndDevice", "friendly_name": name, "definition": {"exposes": []}}


HOME = [
    {"ieee_address": "0x00", "type": "Coordinator", "friendly_name": "Coordinator", "definition": None},
    dev("0x01", "living_motion"),
    dev("0x02", "living_climate"),
    dev("0x03", "hall_door"),
    dev("0x04", "bedroom_climate"),
    dev("0x05", "living_light"),
    dev("0x06", "bedroom_fan"),
    dev("0x07", "living_thermostat"),
]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return Bundle.load(home_bundle(tmp_path_factory.mktemp("b") / "home"))


def m(topic: str, payload: Any, retained: bool = False) -> tuple[str, bytes, float, bool]:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return topic, data, 0.0, retained


def live(c: Controller, channel: str, mono: float) -> bool:
    return c.window.is_live(c.index[channel], mono)


def test_offline_masks_at_once_and_online_waits_for_a_report(bundle: Bundle, tmp_path: Path) -> None:
    cfg = parse_config(agent_config_dict(bundle.path, 1883, tmp_path, timezone="UTC"))
    c = Controller(cfg, bundle, now=T0)
    assert {AVAIL, BRIDGE} <= c.z2m.topics()
    c.handle([m("zigbee2mqtt/living_light", {"state": "OFF"})], T0)
    c.handle([m(MOTION, {"occupancy": False, "illuminance": 5})], T0 + 1)
    assert live(c, "living.motion", T0 + 2) and live(c, "living.illuminance", T0 + 2)
    # offline: masked now, 6 h before motion's stale limit
    c.handle([m(AVAIL, {"state": "offline"})], T0 + 2)
    assert not live(c, "living.motion", T0 + 2) and not live(c, "living.illuminance", T0 + 2)
    assert live(c, "hall.door", T0 + 2) is False  # never reported: untouched, just not live
    assert c.stats()["zigbee2mqtt"]["offline"] == ["living_motion"]
    assert c.stats()["zigbee2mqtt"]["unavailable_channels"] == ["living.illuminance", "living.motion"]
    # a report while offline is recorded but does not unmask, and commands nothing (required channel masked)
    fx = c.handle([m(MOTION, {"occupancy": True, "illuminance": 5})], T0 + 3)
    assert not live(c, "living.motion", T0 + 3) and fx.commands == []
    # online (legacy plain payload): still masked until the sensor reports again
    c.handle([m(AVAIL, b"online")], T0 + 4)
    assert not live(c, "living.motion", T0 + 4)
    assert c.stats()["zigbee2mqtt"]["offline"] == []
    fx = c.handle([m(MOTION, {"occupancy": True, "illuminance": 5})], T0 + 5)
    assert live(c, "living.motion", T0 + 5)
    assert [json.loads(x.payload) for x in fx.commands] == [{"state": "ON"}]  # motion in the dark: light on


def test_bad_availability_is_counted_not_raised(bundle: Bundle, tmp_path: Path) -> None:
    cfg = parse_config(agent_config_dict(bundle.path, 1883, tmp_path, timezone="UTC"))
    c = Controller(cfg, bundle, now=T0)
    for bad in (b"maybe", b'{"state": 3}', b"{oops", b"[1]"):
        c.handle([m(AVAIL, bad)], T0)
    c.handle([m(BRIDGE, b'{"not": "a list"}')], T0)
    assert c.counters.invalid == 5 and c.counters.unknown_topic == 0
    assert c.z2m.offline == set()


def test_rename_removal_and_unknown_devices_logged_once_and_listed(
    bundle: Bundle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = parse_config(agent_config_dict(bundle.path, 1883, tmp_path, timezone="UTC"))
    c = Controller(cfg, bundle, now=T0)
    c.handle([m(MOTION, {"occupancy": False, "illuminance": 5}), m(BRIDGE, HOME, retained=True)], T0)
    assert live(c, "living.motion", T0) and c.stats()["zigbee2mqtt"]["missing"] == {}
    renamed = [dict(d) for d in HOME]
    renamed[1]["friendly_name"] = "lounge_motion"
    renamed = [d for d in renamed if d["friendly_name"] != "hall_door"] + [dev("0x09", "garage_plug")]
    caplog.set_level(logging.INFO, logger="edge_agent.z2m_follow")
    for k in range(3):  # Zigbee2MQTT re-publishes the list: one line per change, not per message
        c.handle([m(BRIDGE, renamed, retained=True)], T0 + 1 + k)
    z = c.stats()["zigbee2mqtt"]
    assert z["missing"] == {"hall_door": "removed", "living_motion": "renamed to 'lounge_motion'"}
    assert z["unconfigured"] == ["garage_plug", "lounge_motion"]
    assert not live(c, "living.motion", T0 + 4)  # not guessed: the config's topic gets nothing any more
    assert status_lines(z) == [
        "zigbee2mqtt: configured but not in bridge/devices (fix the config's topics): hall_door removed; "
        "living_motion renamed to 'lounge_motion'",
        "zigbee2mqtt: devices not in the config (not used): garage_plug, lounge_motion",
    ]
    lines = [r.getMessage() for r in caplog.records]
    assert sum("renamed to 'lounge_motion'" in s for s in lines) == 1
    assert sum("'hall_door' is removed" in s for s in lines) == 1
    assert sum("not in the config" in s and "garage_plug" in s for s in lines) == 1
    # a message on the new name's topic is an unknown topic: counted, never used
    c.handle([m("zigbee2mqtt/lounge_motion", {"occupancy": True})], T0 + 5)
    assert c.counters.unknown_topic == 1 and not live(c, "living.motion", T0 + 5)
    # renamed back: available again, live with its next report
    c.handle([m(BRIDGE, HOME, retained=True)], T0 + 6)
    assert c.stats()["zigbee2mqtt"]["missing"] == {}
    c.handle([m(MOTION, {"occupancy": True, "illuminance": 5})], T0 + 7)
    assert live(c, "living.motion", T0 + 7)


@pytest.mark.integration
def test_availability_and_device_list_through_mosquitto(
    bundle_path: Path, broker: Any, observer: Observer, tmp_path: Path
) -> None:
    """A device list larger than max_payload_bytes is still read; offline masks at once on the running agent."""
    cfg = parse_config(
        agent_config_dict(bundle_path, broker.port, tmp_path / "state", max_payload_bytes=1024)
    )
    observer.publish(
        BRIDGE, HOME + [dev(f"0x1{k:02d}", f"spare_{k:02d}") for k in range(40)], retain=True, qos=1
    )
    agent = Agent(cfg, clock=JumpClock())
    agent.start()
    try:
        assert agent.link.wait_connected(5)
        wait_until(lambda: len(agent.controller.z2m.unconfigured) == 40)
        c = agent.controller
        ch = c.index["living.motion"]

        def motion_live() -> bool:  # re-sent until heard: its subscription may still be on its way
            if c.window.is_live(ch, agent.steady()):
                return True
            observer.publish(MOTION, {"occupancy": False, "illuminance": 5}, qos=1)
            return False

        wait_until(motion_live, interval=0.2)
        observer.publish(AVAIL, {"state": "offline"}, retain=True, qos=1)
        wait_until(lambda: not c.window.is_live(ch, agent.steady()))
        stats = wait_until(
            lambda: [s for s in observer.on("edge-agent/t1/stats") if s["zigbee2mqtt"]["offline"]]
        )
        assert stats[-1]["zigbee2mqtt"]["offline"] == ["living_motion"]
        assert stats[-1]["zigbee2mqtt"]["unavailable_channels"] == ["living.illuminance", "living.motion"]
        assert agent.link.counters.oversized == 0
    finally:
        agent.stop()
