"""Shared fixtures: a real mosquitto on a free port (restartable on the same port), an MQTT observer, a device
echo (acts as Zigbee2MQTT devices applying `/set`), a jumpable clock, the test bundle and agent configs."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from testbundle import home_bundle

from simhome.localbroker import LocalBroker as Broker


def wait_until(pred: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> Any:
    """Poll `pred` until truthy (returns its value) or fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    """A CLI under test may call logging.basicConfig with the test's captured stderr; that stream is closed after
    the test, so put the root logger back as it was (handlers and level) or later tests log into a closed file."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)


@pytest.fixture()
def broker() -> Iterator[Broker]:
    """A real mosquitto on a free loopback port; `restart()`/`stop()`/`start()` keep the port."""
    b = Broker().start()
    yield b
    b.close()


class Observer:
    """A paho client that records every message on the given filters."""

    def __init__(self, port: int, filters: list[str]) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.on_message = self._on_message
        ready = threading.Event()
        self.client.on_connect = lambda c, *_: ([c.subscribe(f, qos=1) for f in filters], ready.set())
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert ready.wait(5)
        time.sleep(0.05)  # let SUBACK arrive

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    def on(self, topic: str) -> list[Any]:
        """Decoded JSON (or text) payloads seen on `topic`."""
        with self._lock:
            out = []
            for t, p, _ in self.messages:
                if t == topic:
                    try:
                        out.append(json.loads(p))
                    except ValueError:
                        out.append(p.decode(errors="replace"))
            return out

    def publish(self, topic: str, payload: Any, retain: bool = False, qos: int = 0) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.client.publish(topic, data, qos=qos, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture()
def observer(broker: Broker) -> Iterator[Observer]:
    o = Observer(broker.port, ["#"])
    yield o
    o.close()


class EchoDevices:
    """Acts as Zigbee2MQTT: applies `<base>/<name>/set` and publishes the new state on `<base>/<name>`."""

    def __init__(self, port: int, initial: dict[str, dict[str, Any]]) -> None:
        self.state = {k: dict(v) for k, v in initial.items()}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.on_message = self._on_message
        ready = threading.Event()
        self.client.on_connect = lambda c, *_: (c.subscribe("zigbee2mqtt/+/set", qos=1), ready.set())
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert ready.wait(5)
        time.sleep(0.05)
        for name, st in self.state.items():
            self.client.publish(f"zigbee2mqtt/{name}", json.dumps(st), qos=1, retain=True)

    def _on_message(self, c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        name = msg.topic.split("/")[1]
        self.state.setdefault(name, {}).update(json.loads(msg.payload))
        c.publish(f"zigbee2mqtt/{name}", json.dumps(self.state[name]), qos=1, retain=True)

    def person_sets(self, name: str, **fields: Any) -> None:
        """A person changes the device by hand (wall switch, app)."""
        self.state[name].update(fields)
        self.client.publish(
            f"zigbee2mqtt/{name}", json.dumps(self.state[name]), qos=1, retain=True
        ).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class JumpClock:
    """Real time plus an offset the test can jump forward (staleness without sleeping)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def jump(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture(scope="session")
def bundle_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return home_bundle(tmp_path_factory.mktemp("bundle") / "home")


INITIAL_STATES = {
    "living_light": {"state": "OFF", "brightness": 254},
    "bedroom_fan": {"fan_mode": "off"},
    "living_thermostat": {"occupied_heating_setpoint": 20.0},
}


def agent_config_dict(bundle: Path, port: int, state_dir: Path, **over: Any) -> dict[str, Any]:
    """A config for the test home: Z2M topics -> the test bundle's channels, three devices."""
    fast = {"min_dwell_seconds": 0, "max_commands_per_hour": 1000, "echo_window_seconds": 5}
    data: dict[str, Any] = {
        "agent_id": "t1",
        "mode": "auto",
        "bundle": str(bundle),
        "state_dir": str(state_dir),
        "decision_tick_seconds": 0.5,
        "stats_interval_seconds": 0.5,
        "broker": {
            "host": "127.0.0.1",
            "port": port,
            "reconnect_min_seconds": 0.1,
            "reconnect_max_seconds": 0.5,
        },
        "channels": [
            {"topic": "zigbee2mqtt/living_motion", "channel": "living.motion", "field": "occupancy"},
            {"topic": "zigbee2mqtt/living_motion", "channel": "living.illuminance", "field": "illuminance"},
            {"topic": "zigbee2mqtt/living_climate", "channel": "living.temperature", "field": "temperature"},
            {"topic": "zigbee2mqtt/hall_door", "channel": "hall.door", "field": "contact", "invert": True},
            {"topic": "zigbee2mqtt/bedroom_climate", "channel": "bedroom.humidity", "field": "humidity"},
        ],
        "devices": [
            {
                "name": "living.light",
                "state_topic": "zigbee2mqtt/living_light",
                "override_hold_seconds": 600,
                "required_channels": ["living.motion"],
                **fast,
            },
            {
                "name": "bedroom.fan",
                "state_topic": "zigbee2mqtt/bedroom_fan",
                "field": "fan_mode",
                "values": ["off", "low", "medium", "high"],
                "required_channels": ["bedroom.humidity"],
                **fast,
            },
            {
                "name": "living.heating",
                "state_topic": "zigbee2mqtt/living_thermostat",
                "field": "occupied_heating_setpoint",
                "min_value": 16,
                "max_value": 23,
                "required_channels": ["living.temperature"],
                **fast,
            },
        ],
    }
    data.update(over)
    return data


@pytest.fixture()
def devices(broker: Broker) -> Iterator[EchoDevices]:
    """The test home's devices (echoing commands as Zigbee2MQTT does), starting in INITIAL_STATES."""
    d = EchoDevices(broker.port, INITIAL_STATES)
    yield d
    d.close()
