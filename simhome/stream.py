"""The home's live Zigbee2MQTT-style messages, decided without a broker (pure: time in, messages out).

`Z2MStream.poll(now, readings)` says which sensors report at this instant and with what JSON payload:
motion sensors at once when occupancy (or illuminance, by a lot) changes and every few sim-minutes
otherwise; climate sensors every 1-2 sim-minutes; the door contact on change and every 10 minutes; the
meter every minute; the outdoor sensor every 5 minutes. A sensor in a dropout sends nothing.
`device_state` builds a device's state payload; `decode_command` parses a `/set` payload.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from simhome.layout import DeviceTopic, SensorTopic, Topology

MOTION_PERIOD = 180.0
CLIMATE_PERIOD = (60.0, 120.0)
PERIODS = {"hall_door": 600.0, "house_meter": 60.0, "outdoor_sensor": 300.0}


@dataclass(frozen=True)
class Message:
    topic: str
    payload: dict
    retain: bool = False

    def encode(self) -> bytes:
        return json.dumps(self.payload, separators=(",", ":")).encode()


def field_value(sensor: SensorTopic, value: float) -> object:
    """A channel value as the sensor's JSON field (bool for motion/contact, int for lux/ppm)."""
    if sensor.kind in ("motion", "contact"):
        on = value >= 0.5
        return (not on) if sensor.invert else on
    if sensor.kind in ("illuminance", "co2"):
        return int(round(value))
    if sensor.kind == "humidity":
        return round(float(value), 1)
    return round(float(value), 2)


class Z2MStream:
    """Schedules sensor reports. Keep one per simulated home; `poll` is called every sim step."""

    def __init__(self, topo: Topology, seed: int = 0):
        self.topo = topo
        self.rng = np.random.default_rng([seed, 31_337])
        self.by_topic: dict[str, list[SensorTopic]] = {}
        for s in topo.sensors:
            self.by_topic.setdefault(s.topic, []).append(s)
        self.next_due: dict[str, float] = {}
        self.last: dict[str, dict] = {}
        self.t_first: float | None = None

    def friendly(self, topic: str) -> str:
        return topic.split("/", 1)[1]

    def availability(self) -> list[Message]:
        """Retained `{"state":"online"}` for every sensor and device."""
        return [Message(t, {"state": "online"}, retain=True) for t in self.topo.availability_topics()]

    def _period(self, name: str) -> float:
        if name.endswith("_motion"):
            return MOTION_PERIOD
        if name.endswith("_climate"):
            return float(self.rng.uniform(*CLIMATE_PERIOD))
        return PERIODS[name]

    def _payload(self, topic: str, readings: dict[str, float | None], now: float) -> dict | None:
        payload: dict = {}
        for s in self.by_topic[topic]:
            v = readings.get(s.channel)
            if v is None:
                return None  # the whole device is silent in a dropout
            payload[s.field] = field_value(s, v)
        if topic.endswith("_motion"):
            days = (now - (self.t_first or now)) / 86400.0
            payload["battery"] = int(max(1, 100 - 0.05 * days))
            payload["linkquality"] = int(self.rng.integers(60, 200))
        return payload

    def _changed(self, topic: str, payload: dict) -> bool:
        prev = self.last.get(topic)
        if prev is None:
            return True
        if "occupancy" in payload and payload["occupancy"] != prev.get("occupancy"):
            return True
        if "contact" in payload and payload["contact"] != prev.get("contact"):
            return True
        if "illuminance_lux" in payload:
            a, b = prev.get("illuminance_lux", 0), payload["illuminance_lux"]
            return abs(a - b) > max(20, 0.3 * max(a, b))
        return False

    def poll(self, now: float, readings: dict[str, float | None]) -> list[Message]:
        """Sensor messages due at `now` (sim epoch seconds) given the current readings."""
        if self.t_first is None:
            self.t_first = now
        out: list[Message] = []
        for topic in self.by_topic:
            payload = self._payload(topic, readings, now)
            if payload is None:
                continue
            due = now >= self.next_due.get(topic, now)
            if due or self._changed(topic, payload):
                out.append(Message(topic, payload))
                self.last[topic] = payload
                self.next_due[topic] = now + self._period(self.friendly(topic))
        return out


def device_state(dev: DeviceTopic, value: float, local_temperature: float | None = None) -> Message:
    """The state message a device publishes (after a /set, a manual change, or at start)."""
    payload: dict = {dev.field: dev.encode(value), **dev.extra_state}
    if dev.kind == "setpoint" and local_temperature is not None:
        payload["local_temperature"] = round(float(local_temperature), 1)
    return Message(dev.state_topic, payload)


def decode_command(topo: Topology, topic: str, raw: bytes, current: float) -> tuple[DeviceTopic, float]:
    """Parse a `/set` payload into (device, new value). Raises ValueError with what is wrong and the fix."""
    dev = next((d for d in topo.devices if d.command_topic == topic), None)
    if dev is None:
        raise ValueError(
            f"{topic}: no such device; command topics are {[d.command_topic for d in topo.devices]}"
        )
    try:
        payload = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(f'{topic}: payload is not JSON; send e.g. {{"{dev.field}": ...}}') from None
    if not isinstance(payload, dict) or dev.field not in payload:
        raise ValueError(f'{topic}: payload has no {dev.field!r} key; send e.g. {{"{dev.field}": ...}}')
    value = payload[dev.field]
    if dev.kind == "binary" and isinstance(value, str) and value.upper() == "TOGGLE":
        return dev, 1.0 - round(current)
    return dev, dev.decode(value)
