"""The simulated home: occupants, weather, physics, a hidden preference, history CSV and a live MQTT stream.

numpy + stdlib only (+ paho-mqtt for the live driver), so the runtime's demo and tests can drive it.
Public API: `SimHome`, `write_history`, `topology`, `Preference`, and (lazily) `SimHomeDriver`.
"""

from simhome.history import write_history
from simhome.home import DayFrame, SimHome
from simhome.layout import (
    CHANNEL_NAMES,
    CHANNELS,
    DEVICE_NAMES,
    DEVICES,
    ROOMS,
    DeviceTopic,
    SensorTopic,
    Topology,
    topology,
)
from simhome.preference import Preference

__all__ = [
    "CHANNELS",
    "CHANNEL_NAMES",
    "DEVICES",
    "DEVICE_NAMES",
    "ROOMS",
    "DayFrame",
    "DeviceTopic",
    "Preference",
    "SensorTopic",
    "SimHome",
    "SimHomeDriver",
    "Topology",
    "topology",
    "write_history",
]


def __getattr__(name: str):
    if name == "SimHomeDriver":
        from simhome.driver import SimHomeDriver

        return SimHomeDriver
    raise AttributeError(name)
