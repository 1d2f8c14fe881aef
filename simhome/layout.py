"""The simulated home's fixed layout: rooms, channels, devices, and their Zigbee2MQTT topology.

Other modules (the runtime's demo config, the trainer's sim dataset) build against these names, so they
are the contract of the simulated home. `topology()` describes every MQTT sensor field and device in plain
dataclasses: enough to build the agent's topic -> channel mapping and its command payloads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROOMS: tuple[str, ...] = ("living", "kitchen", "bedroom")
BASE_TOPIC = "zigbee2mqtt"
DEFAULT_TIMEZONE = "Europe/Brussels"


@dataclass(frozen=True)
class Channel:
    name: str
    kind: str
    unit: str


@dataclass(frozen=True)
class Device:
    name: str
    kind: str  # binary | level | setpoint
    unit: str = ""
    levels: int = 2
    min_value: float | None = None
    max_value: float | None = None


def _channels() -> tuple[Channel, ...]:
    out: list[Channel] = []
    for room in ROOMS:
        out += [
            Channel(f"{room}.motion", "motion", ""),
            Channel(f"{room}.illuminance", "illuminance", "lx"),
            Channel(f"{room}.temperature", "temperature", "°C"),
            Channel(f"{room}.humidity", "humidity", "%"),
        ]
    out += [
        Channel("living.co2", "co2", "ppm"),
        Channel("bedroom.co2", "co2", "ppm"),
        Channel("hall.door", "contact", ""),
        Channel("house.power", "power", "W"),
        Channel("outdoor.temperature", "temperature", "°C"),
    ]
    return tuple(out)


CHANNELS: tuple[Channel, ...] = _channels()
CHANNEL_NAMES: tuple[str, ...] = tuple(c.name for c in CHANNELS)
CHANNEL_INDEX: dict[str, int] = {n: i for i, n in enumerate(CHANNEL_NAMES)}

FAN_MODES: tuple[str, ...] = ("off", "low", "medium", "high")
SETPOINT_MIN, SETPOINT_MAX = 16.0, 23.0

DEVICES: tuple[Device, ...] = (
    Device("living.light", "binary"),
    Device("kitchen.light", "binary"),
    Device("bedroom.light", "binary"),
    Device("bedroom.fan", "level", levels=len(FAN_MODES)),
    Device("living.heating", "setpoint", unit="°C", min_value=SETPOINT_MIN, max_value=SETPOINT_MAX),
)
DEVICE_NAMES: tuple[str, ...] = tuple(d.name for d in DEVICES)
DEVICE_INDEX: dict[str, int] = {n: i for i, n in enumerate(DEVICE_NAMES)}
DEVICE_ROOM: dict[str, str] = {d.name: d.name.split(".")[0] for d in DEVICES}


@dataclass(frozen=True)
class SensorTopic:
    """One JSON field of one Zigbee2MQTT sensor message, mapped to one channel."""

    topic: str  # e.g. "zigbee2mqtt/living_motion"
    field: str  # JSON key, e.g. "occupancy"
    channel: str  # e.g. "living.motion"
    kind: str
    unit: str
    invert: bool = False  # boolean field read as NOT value (Z2M contact: true = closed, channel 1 = open)


@dataclass(frozen=True)
class DeviceTopic:
    """One controllable device: where its state is published, where commands go, how values map."""

    name: str  # channel-style device name, e.g. "bedroom.fan"
    friendly_name: str  # Z2M friendly name, e.g. "bedroom_fan"
    kind: str  # binary | level | setpoint
    state_topic: str
    command_topic: str
    field: str  # JSON key in state and command payloads
    value_map: dict[str, float] = field(default_factory=dict)  # payload value -> number; empty = numeric
    unit: str = ""
    levels: int = 2
    min_value: float | None = None
    max_value: float | None = None
    extra_state: dict[str, object] = field(default_factory=dict)  # constant extra state keys (brightness)

    def decode(self, payload_value: object) -> float:
        """Payload value -> number (ON -> 1, "medium" -> 2, 20.5 -> 20.5). Raises ValueError."""
        if self.value_map:
            key = str(payload_value)
            for k, v in self.value_map.items():
                if k.lower() == key.lower():
                    return v
            raise ValueError(f"{self.name}: {payload_value!r} is not one of {sorted(self.value_map)}")
        if isinstance(payload_value, bool) or not isinstance(payload_value, int | float):
            raise ValueError(f"{self.name}: {payload_value!r} is not a number")
        return float(payload_value)

    def encode(self, value: float) -> object:
        """Number -> payload value (1 -> "ON", 2 -> "medium", 20.5 -> 20.5)."""
        if self.value_map:
            best = min(self.value_map.items(), key=lambda kv: abs(kv[1] - value))
            return best[0]
        return round(float(value), 1)


@dataclass(frozen=True)
class Topology:
    base_topic: str
    timezone: str
    sensors: tuple[SensorTopic, ...]
    devices: tuple[DeviceTopic, ...]

    def channels(self) -> list[str]:
        return [s.channel for s in self.sensors]

    def device(self, name: str) -> DeviceTopic:
        for d in self.devices:
            if d.name == name:
                return d
        raise KeyError(name)

    def sensor_topics(self) -> list[str]:
        return sorted({s.topic for s in self.sensors})

    def availability_topics(self) -> list[str]:
        names = {t.split("/", 1)[1] for t in self.sensor_topics()} | {d.friendly_name for d in self.devices}
        return [f"{self.base_topic}/{n}/availability" for n in sorted(names)]


def sensor_friendly_names() -> dict[str, str]:
    """Friendly name -> what it measures (for docs and discovery)."""
    out = {f"{r}_motion": "motion + illuminance" for r in ROOMS}
    out |= {f"{r}_climate": "temperature + humidity (+ co2)" for r in ROOMS}
    out |= {"hall_door": "door contact", "house_meter": "power", "outdoor_sensor": "outdoor temperature"}
    return out


def topology(base_topic: str = BASE_TOPIC, timezone: str = DEFAULT_TIMEZONE) -> Topology:
    """Every sensor field and device of the simulated home, Zigbee2MQTT style."""
    b = base_topic
    sensors: list[SensorTopic] = []
    for room in ROOMS:
        sensors += [
            SensorTopic(f"{b}/{room}_motion", "occupancy", f"{room}.motion", "motion", ""),
            SensorTopic(f"{b}/{room}_motion", "illuminance_lux", f"{room}.illuminance", "illuminance", "lx"),
            SensorTopic(f"{b}/{room}_climate", "temperature", f"{room}.temperature", "temperature", "°C"),
            SensorTopic(f"{b}/{room}_climate", "humidity", f"{room}.humidity", "humidity", "%"),
        ]
    sensors += [
        SensorTopic(f"{b}/living_climate", "co2", "living.co2", "co2", "ppm"),
        SensorTopic(f"{b}/bedroom_climate", "co2", "bedroom.co2", "co2", "ppm"),
        SensorTopic(f"{b}/hall_door", "contact", "hall.door", "contact", "", invert=True),
        SensorTopic(f"{b}/house_meter", "power", "house.power", "power", "W"),
        SensorTopic(f"{b}/outdoor_sensor", "temperature", "outdoor.temperature", "temperature", "°C"),
    ]
    order = {n: i for i, n in enumerate(CHANNEL_NAMES)}
    sensors.sort(key=lambda s: order[s.channel])
    on_off = {"OFF": 0.0, "ON": 1.0}
    devices: list[DeviceTopic] = []
    for room in ROOMS:
        fn = f"{room}_light"
        devices.append(
            DeviceTopic(
                f"{room}.light",
                fn,
                "binary",
                f"{b}/{fn}",
                f"{b}/{fn}/set",
                "state",
                value_map=dict(on_off),
                extra_state={"brightness": 254},
            )
        )
    devices.append(
        DeviceTopic(
            "bedroom.fan",
            "bedroom_fan",
            "level",
            f"{b}/bedroom_fan",
            f"{b}/bedroom_fan/set",
            "fan_mode",
            value_map={m: float(i) for i, m in enumerate(FAN_MODES)},
            levels=len(FAN_MODES),
        )
    )
    devices.append(
        DeviceTopic(
            "living.heating",
            "living_thermostat",
            "setpoint",
            f"{b}/living_thermostat",
            f"{b}/living_thermostat/set",
            "occupied_heating_setpoint",
            unit="°C",
            min_value=SETPOINT_MIN,
            max_value=SETPOINT_MAX,
        )
    )
    return Topology(base_topic=b, timezone=timezone, sensors=tuple(sensors), devices=tuple(devices))
