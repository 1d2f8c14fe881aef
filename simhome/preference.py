"""The simulated person's hidden preference, and how they judge (and override) a device's state.

Pure functions of plain values or numpy arrays (vectorized, same code for a year of history and one live
instant). The preference is a deterministic function of things a model can observe (occupancy, daylight
seen by the illuminance sensor before the lamp, temperature, humidity, time of day):

- light (per room): ON when an awake person is in the room and the room's daylight is below their
  darkness threshold (the person judges the room without the lamp);
- bedroom fan: level from the felt temperature (temperature + humidity) while someone is in the bedroom;
- heating setpoint: 21.0 home & awake in the evening (19-22 h), 20.5 home & awake otherwise, 17.0 asleep
  or away.

The override rule: a person who is present (in the device's room; at home for the heating) and awake
changes a device back when its state differs from their preference (setpoints: by more than a tolerance).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simhome.layout import DEVICE_ROOM, DEVICES, ROOMS


@dataclass(frozen=True)
class Preference:
    dark_lux: dict[str, float] = field(
        default_factory=lambda: {"living": 60.0, "kitchen": 80.0, "bedroom": 40.0}
    )
    fan_feel: tuple[float, float, float] = (24.5, 26.0, 27.5)  # felt °C for levels 1, 2, 3
    fan_rh_weight: float = 0.1  # felt = T + weight * (RH - 50)
    setpoint_home: float = 20.5
    setpoint_evening: float = 21.0
    setpoint_night: float = 17.0
    evening_hours: tuple[float, float] = (19.0, 22.0)
    setpoint_tolerance: float = 0.25

    def light(self, room: str, awake_here, daylight):
        """1.0 when an awake person is in `room` and its daylight is below the threshold, else 0.0."""
        return ((np.asarray(awake_here) > 0) & (np.asarray(daylight) < self.dark_lux[room])).astype(
            np.float64
        )

    def felt(self, temperature, humidity):
        return np.asarray(temperature) + self.fan_rh_weight * (np.asarray(humidity) - 50.0)

    def fan(self, occupied, temperature, humidity):
        """Fan level 0..3 while someone is in the bedroom (asleep or awake), else 0."""
        felt = self.felt(temperature, humidity)
        level = sum((felt >= th).astype(np.int64) for th in self.fan_feel)
        return np.where(np.asarray(occupied) > 0, level, 0).astype(np.float64)

    def heating(self, awake_home, hour):
        """Setpoint °C by presence and local hour of day (fractional)."""
        hour = np.asarray(hour, dtype=np.float64)
        evening = (hour >= self.evening_hours[0]) & (hour < self.evening_hours[1])
        on = np.where(evening, self.setpoint_evening, self.setpoint_home)
        return np.where(np.asarray(awake_home) > 0, on, self.setpoint_night).astype(np.float64)

    def preferred(self, view: dict) -> dict[str, np.ndarray]:
        """All devices' preferred states from a view (see `PreferenceView` keys below), vectorized.

        view keys: `awake` [R, ...] awake occupants per room, `occ` [R, ...] occupants per room,
        `daylight` [R, ...] ambient lux per room, `temperature` [R, ...] °C, `humidity` [R, ...] %,
        `awake_home` [...], `hour` [...] local fractional hour. R follows `ROOMS`.
        """
        out: dict[str, np.ndarray] = {}
        for i, room in enumerate(ROOMS):
            out[f"{room}.light"] = self.light(room, view["awake"][i], view["daylight"][i])
        b = ROOMS.index("bedroom")
        out["bedroom.fan"] = self.fan(view["occ"][b], view["temperature"][b], view["humidity"][b])
        out["living.heating"] = self.heating(view["awake_home"], view["hour"])
        return out

    def differs(self, kind: str, actual: float, preferred: float) -> bool:
        if kind == "setpoint":
            return abs(actual - preferred) > self.setpoint_tolerance
        return round(actual) != round(preferred)

    def should_override(
        self, device: str, actual: float, preferred: float, present: bool, awake: bool
    ) -> bool:
        """Would the person change `device` back? Only when present and awake and it differs."""
        kind = next(d.kind for d in DEVICES if d.name == device)
        return bool(present and awake and self.differs(kind, actual, preferred))


def device_presence(device: str, occ, awake, home, awake_home) -> tuple[bool, bool]:
    """(present, awake) of the person relevant to `device`: in its room, or at home for the heating.

    occ/awake: per-room counts (sequences indexed like ROOMS); home/awake_home: counts at home.
    """
    room = DEVICE_ROOM[device]
    if device == "living.heating":
        return bool(home > 0), bool(awake_home > 0)
    i = ROOMS.index(room)
    return bool(occ[i] > 0), bool(awake[i] > 0)


def human_lag_seconds(rng: np.random.Generator, kind: str) -> float:
    """How long the person takes to act on a difference (sim seconds)."""
    mean = {"binary": 45.0, "level": 120.0, "setpoint": 180.0}[kind]
    return float(10.0 + rng.exponential(mean))
