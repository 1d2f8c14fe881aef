"""Simple, plausible physics of the simulated home: first-order responses toward targets.

Room temperature relaxes toward a passive level (smoothed outdoor + insulation + sun + people + cooking)
raised by the heating toward its setpoint; humidity toward a seasonal base + people + cooking, dried by
heating; CO2 toward 420 ppm + people; illuminance = daylight + lamp; power = base + fridge + devices +
cooking + heat pump. Every dynamic quantity is x <- x + (target - x) * (1 - exp(-dt / tau)), exact for
a target held over the step; `lowpass` applies it to a whole day of rows at once (vectorized in blocks)
and `step` to one live step, so history and live stream follow the same equations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simhome import weather
from simhome.layout import CHANNEL_INDEX, ROOMS

R = len(ROOMS)
BASE_GAIN = np.array([4.0, 4.0, 3.0])  # °C above smoothed outdoor, per room (insulation, appliances)
SEASON_GAIN = 1.25  # more in winter (closed windows), less in summer (ventilation)
SOLAR_GAIN = np.array([1.5, 1.0, 5.0])  # °C per 100 klx outdoor (bedroom under the roof, south)
COOK_GAIN = np.array([0.5, 3.0, 0.0])
HEAT_SHARE = np.array([1.0, 0.85, 0.75])  # share of the living room's heating boost reaching each room
TAU_TEMP = np.array([80.0, 70.0, 120.0]) * 60
TAU_RH = np.array([40.0, 30.0, 50.0]) * 60
TAU_CO2 = np.array([50.0, 45.0, 80.0]) * 60
TAU_OUT = 8 * 3600.0
LAMP_LUX = np.array([250.0, 300.0, 180.0])
FAN_WATTS = np.array([0.0, 45.0, 75.0, 110.0])


@dataclass
class PhysState:
    tout_s: float = 8.0  # outdoor temperature smoothed over hours (the house's thermal mass)
    temp: np.ndarray = field(default_factory=lambda: np.array([20.0, 20.0, 19.0]))  # [R] °C
    rh: np.ndarray = field(default_factory=lambda: np.array([45.0, 50.0, 48.0]))  # [R] %
    co2: np.ndarray = field(default_factory=lambda: np.array([600.0, 500.0, 700.0]))  # [R] ppm

    def copy(self) -> PhysState:
        return PhysState(self.tout_s, self.temp.copy(), self.rh.copy(), self.co2.copy())


def rh_base(t, seed: int):
    """Seasonal indoor humidity base % (dry winters, humid summers, wet spells)."""
    return 49.0 - 7.0 * weather.season_cos(t) + 4.0 * weather.smooth_noise(t, seed, 3, (1.0, 10.0))


def passive_temp(t, tout_s, lux_out, occ, cooking):
    """[R, ...] passive room temperature without heating."""
    tout_s, lux_out = np.asarray(tout_s), np.asarray(lux_out)
    shape = (R,) + (1,) * tout_s.ndim
    return (
        tout_s
        + BASE_GAIN.reshape(shape)
        + SEASON_GAIN * weather.season_cos(t)
        + SOLAR_GAIN.reshape(shape) * lux_out / 1e5
        + 0.4 * np.asarray(occ)
        + COOK_GAIN.reshape(shape) * np.asarray(cooking)
    )


def targets(t, tout_s, lux_out, occ, awake, cooking, setpoint, rh0):
    """Targets toward which temperature, humidity and CO2 relax; each [R, ...]. Also the heating boost."""
    tp = passive_temp(t, tout_s, lux_out, occ, cooking)
    boost = np.maximum(0.0, np.asarray(setpoint) - tp[0])  # [...] °C the heating adds in the living room
    shape = (R,) + (1,) * boost.ndim
    temp_t = tp + HEAT_SHARE.reshape(shape) * boost
    cook_rh = np.array([0.0, 15.0, 0.0]).reshape(shape)
    rh_t = (
        rh0 + 3.0 * np.asarray(occ) + cook_rh * np.asarray(cooking) - 1.2 * HEAT_SHARE.reshape(shape) * boost
    )
    co2_t = 420.0 + 500.0 * np.asarray(awake) + 320.0 * (np.asarray(occ) - np.asarray(awake))
    return temp_t, np.clip(rh_t, 20.0, 95.0), co2_t, boost


def lowpass(u: np.ndarray, tau: float, dt: float, x0: float, block: int = 256) -> np.ndarray:
    """y[i] = y[i-1] + (u[i] - y[i-1]) * (1 - a), a = exp(-dt/tau), y[-1] = x0. float64 [n]."""
    a = float(np.exp(-dt / tau))
    u = np.asarray(u, dtype=np.float64)
    out = np.empty_like(u)
    x = float(x0)
    block = max(1, min(block, int(10 * tau / dt)))  # keeps a^-block <= e^10 (float64 exact enough)
    for s in range(0, u.shape[0], block):
        blk = u[s : s + block]
        m = blk.shape[0]
        j = np.arange(m)
        inv = a ** (-j)  # a^-k
        acc = np.cumsum(blk * inv) * (1 - a)
        y = a**j * (a * x + acc)
        out[s : s + m] = y
        x = float(y[-1])
    return out


def power(t, lights, fan, cooking, awake_living, boost, rng: np.random.Generator | None = None):
    """House power in W from the devices and activities (rng adds 2 % noise)."""
    t = np.asarray(t, dtype=np.float64)
    fridge = 90.0 * (np.mod(t, 2700.0) < 1000.0)
    p = (
        140.0
        + fridge
        + 10.0 * np.sum(np.asarray(lights), axis=0)
        + FAN_WATTS[np.clip(np.asarray(fan), 0, 3).astype(np.int64)]
        + 1900.0 * np.asarray(cooking)
        + 90.0 * (np.asarray(awake_living) > 0)
        + np.minimum(2500.0, 150.0 * np.asarray(boost))
    )
    if rng is not None:
        p = p * (1.0 + 0.02 * rng.standard_normal(np.shape(p)))
    return p


def step(state: PhysState, t: float, dt: float, tout, lux_out, occ, awake, cooking, setpoint, rh0) -> float:
    """Advance one live step in place; returns the heating boost (°C)."""
    state.tout_s += (float(tout) - state.tout_s) * (1 - np.exp(-dt / TAU_OUT))
    temp_t, rh_t, co2_t, boost = targets(t, state.tout_s, lux_out, occ, awake, cooking, setpoint, rh0)
    state.temp += (temp_t - state.temp) * (1 - np.exp(-dt / TAU_TEMP))
    state.rh += (rh_t - state.rh) * (1 - np.exp(-dt / TAU_RH))
    state.co2 += (co2_t - state.co2) * (1 - np.exp(-dt / TAU_CO2))
    return float(boost)


def true_channels(n: int, temp, rh, co2, illum, motion, door, pw, tout) -> np.ndarray:
    """float64 [n, C] noise-free channel values in CHANNEL_NAMES order (inputs [R, n] or [n])."""
    out = np.empty((n, len(CHANNEL_INDEX)), dtype=np.float64)
    for i, room in enumerate(ROOMS):
        out[:, CHANNEL_INDEX[f"{room}.motion"]] = motion[i]
        out[:, CHANNEL_INDEX[f"{room}.illuminance"]] = illum[i]
        out[:, CHANNEL_INDEX[f"{room}.temperature"]] = temp[i]
        out[:, CHANNEL_INDEX[f"{room}.humidity"]] = rh[i]
    out[:, CHANNEL_INDEX["living.co2"]] = co2[0]
    out[:, CHANNEL_INDEX["bedroom.co2"]] = co2[2]
    out[:, CHANNEL_INDEX["hall.door"]] = door
    out[:, CHANNEL_INDEX["house.power"]] = pw
    out[:, CHANNEL_INDEX["outdoor.temperature"]] = tout
    return out


def _kinds() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per channel: noise std (absolute), relative noise, decimals of the reported value."""
    noise = {"temperature": 0.05, "humidity": 0.4, "co2": 12.0, "illuminance": 1.0}
    rel = {"illuminance": 0.03}
    decimals = {"temperature": 2, "humidity": 1, "co2": 0, "illuminance": 0, "power": 1}
    from simhome.layout import CHANNELS

    return (
        np.array([noise.get(c.kind, 0.0) for c in CHANNELS]),
        np.array([rel.get(c.kind, 0.0) for c in CHANNELS]),
        np.array([decimals.get(c.kind, 0) for c in CHANNELS]),
    )


NOISE_ABS, NOISE_REL, DECIMALS = _kinds()
OUTDOOR_COL = CHANNEL_INDEX["outdoor.temperature"]


def observe(true: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sensor readings from true values [n, C]: noise, then rounding to what the sensor reports."""
    x = true * (1.0 + NOISE_REL * rng.standard_normal(true.shape)) + NOISE_ABS * rng.standard_normal(
        true.shape
    )
    x[:, OUTDOOR_COL] = np.round(x[:, OUTDOOR_COL], 1)
    scale = 10.0**DECIMALS
    x = np.round(x * scale) / scale
    ill = [CHANNEL_INDEX[f"{r}.illuminance"] for r in ROOMS]
    x[:, ill] = np.maximum(x[:, ill], 0.0)
    return x
