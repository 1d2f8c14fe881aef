"""`SimHome`: the simulated home as a deterministic step simulator (live) and day generator (history).

History (`days()`): each local day is simulated at once, vectorized over its rows: the plan (people,
weather, sensor dropouts), the person's preference, the person operating the devices themselves with a
human lag (the device state in effect), the physics, then noisy sensor readings. Live (`step()`): the same
plan and equations advanced a few seconds at a time, with the devices set from outside (`set_device`),
e.g. by a controller through the MQTT driver; `preferred()` says what the person would want right now.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np

from simhome import physics
from simhome.layout import (
    CHANNEL_NAMES,
    DEFAULT_TIMEZONE,
    DEVICE_INDEX,
    DEVICE_NAMES,
    DEVICES,
    ROOMS,
    SETPOINT_MAX,
    SETPOINT_MIN,
    Topology,
    topology,
)
from simhome.plan import CHANNEL_GROUP, DayPlan, make_plan
from simhome.preference import Preference, device_presence, human_lag_seconds

FORGET_OFF_P = 0.03  # chance the person leaves a light on for a while after it is no longer wanted


@dataclass
class DayFrame:
    plan: DayPlan
    readings: np.ndarray  # float64 [n, C] sensor readings, NaN = dropout (channel order CHANNEL_NAMES)
    devices: np.ndarray  # float64 [n, D] device state in effect (DEVICE_NAMES order)
    preferred: np.ndarray  # float64 [n, D] the person's hidden preference


def enact(pref: np.ndarray, x0: float, step: float, kind: str, rng: np.random.Generator) -> np.ndarray:
    """The person follows their preference with a human lag: float64 [n] state in effect from pref [n]."""
    n = pref.shape[0]
    prev = np.concatenate(([x0], pref[:-1]))
    changes = np.flatnonzero(pref != prev)
    if changes.size == 0:
        return np.full(n, x0, dtype=np.float64)
    lags = np.array([human_lag_seconds(rng, kind) for _ in range(changes.size)])
    if kind == "binary":
        forget = (pref[changes] == 0) & (rng.random(changes.size) < FORGET_OFF_P)
        lags = lags + forget * rng.uniform(600, 2700, changes.size)
    act = np.maximum.accumulate(changes + np.ceil(lags / step).astype(np.int64))
    idx = np.searchsorted(act, np.arange(n), side="right") - 1
    return np.where(idx >= 0, pref[changes][np.maximum(idx, 0)], x0)


def local_hour(t: np.ndarray, offset: np.ndarray) -> np.ndarray:
    return np.mod(np.asarray(t) + np.asarray(offset), 86400.0) / 3600.0


class SimHome:
    """A deterministic simulated home. `start` must be timezone-aware (default 2024-01-01 local)."""

    def __init__(
        self,
        seed: int = 0,
        start: dt.datetime | None = None,
        n_occupants: int = 1,
        *,
        timezone: str = DEFAULT_TIMEZONE,
        dropouts: bool = True,
        preference: Preference | None = None,
        step_seconds: float = 60.0,
    ):
        self.tz = ZoneInfo(timezone)
        self.timezone = timezone
        if start is None:
            start = dt.datetime(2024, 1, 1, tzinfo=self.tz)
        if start.tzinfo is None:
            raise ValueError(
                "SimHome start must be timezone-aware (e.g. datetime(..., tzinfo=ZoneInfo(...)))"
            )
        if n_occupants < 1:
            raise ValueError("n_occupants must be >= 1")
        self.seed, self.n_occupants, self.dropouts = int(seed), int(n_occupants), dropouts
        self.step_seconds = float(step_seconds)
        self.pref = preference or Preference()
        self.start = start
        self.state = physics.PhysState()
        self.device_state = np.array([0.0, 0.0, 0.0, 0.0, self.pref.setpoint_night])  # [D]
        self._now = start.timestamp()
        self._plan: DayPlan | None = None
        self._live = False
        self._rng = np.random.default_rng([self.seed, 9_999])
        self._boost = 0.0

    # ---------------------------------------------------------------- history (vectorized days)
    def plan(self, date: dt.date) -> DayPlan:
        return make_plan(self.seed, date, self.tz, self.n_occupants, self.step_seconds, self.dropouts)

    def simulate(self, plan: DayPlan, lo: int = 0, hi: int | None = None) -> DayFrame:
        """Simulate rows [lo, hi) of a plan with the person operating the devices; advances the state."""
        hi = len(plan) if hi is None else hi
        sl = slice(lo, hi)
        n, t, step = hi - lo, plan.t[sl], self.step_seconds
        seed, ordinal = self.seed, plan.date.toordinal()
        rng = np.random.default_rng([seed, 800, ordinal, lo])
        occ, awake = plan.occ[:, sl], plan.awake[:, sl]
        cooking, awake_home = plan.cooking[sl], plan.awake_home[sl]
        hour = local_hour(t, plan.offset[sl])
        pref = np.zeros((n, len(DEVICES)))
        dev = np.zeros((n, len(DEVICES)))
        for i, room in enumerate(ROOMS):
            k = DEVICE_INDEX[f"{room}.light"]
            pref[:, k] = self.pref.light(room, awake[i], plan.daylight[i, sl])
            dev[:, k] = enact(pref[:, k], self.device_state[k], step, "binary", rng)
        k = DEVICE_INDEX["living.heating"]
        pref[:, k] = self.pref.heating(awake_home, hour)
        dev[:, k] = enact(pref[:, k], self.device_state[k], step, "setpoint", rng)
        # physics (vectorized first-order responses)
        st = self.state
        tout_s = physics.lowpass(plan.tout[sl], physics.TAU_OUT, step, st.tout_s)
        rh0 = physics.rh_base(t, seed)
        temp_t, rh_t, co2_t, boost = physics.targets(
            t, tout_s, plan.lux_out[sl], occ, awake, cooking, dev[:, k], rh0
        )
        temp = np.stack([physics.lowpass(temp_t[r], physics.TAU_TEMP[r], step, st.temp[r]) for r in range(3)])
        rh = np.stack([physics.lowpass(rh_t[r], physics.TAU_RH[r], step, st.rh[r]) for r in range(3)])
        co2 = np.stack([physics.lowpass(co2_t[r], physics.TAU_CO2[r], step, st.co2[r]) for r in range(3)])
        b = ROOMS.index("bedroom")
        kf = DEVICE_INDEX["bedroom.fan"]
        pref[:, kf] = self.pref.fan(occ[b], temp[b], rh[b])
        dev[:, kf] = enact(pref[:, kf], self.device_state[kf], step, "level", rng)
        lights = dev[:, [DEVICE_INDEX[f"{r}.light"] for r in ROOMS]].T  # [R, n]
        illum = plan.daylight[:, sl] + physics.LAMP_LUX[:, None] * lights
        pw = physics.power(t, lights, dev[:, kf], cooking, awake[0], boost, rng)
        true = physics.true_channels(
            n, temp, rh, co2, illum, plan.motion[:, sl], plan.door[sl], pw, plan.tout[sl]
        )
        readings = physics.observe(true, rng)
        readings[~plan.sensor_ok[CHANNEL_GROUP][:, sl].T] = np.nan
        if n:
            st.tout_s = float(tout_s[-1])
            st.temp, st.rh, st.co2 = temp[:, -1].copy(), rh[:, -1].copy(), co2[:, -1].copy()
            self.device_state = dev[-1].copy()
            self._boost = float(boost[-1])
        return DayFrame(plan=plan, readings=readings, devices=dev, preferred=pref)

    def days(self, n_days: int, warmup_days: int = 2) -> Iterator[DayFrame]:
        """Simulate `n_days` local days from the start date (after `warmup_days` unrecorded days)."""
        first = self.start.astimezone(self.tz).date()
        for k in range(-warmup_days, n_days):
            frame = self.simulate(self.plan(first + dt.timedelta(days=k)))
            if k >= 0:
                yield frame

    # ---------------------------------------------------------------- live (step by step)
    def _ensure_live(self) -> None:
        if self._live:
            return
        date = self.start.astimezone(self.tz).date()
        for k in (-2, -1):
            self.simulate(self.plan(date + dt.timedelta(days=k)))
        self._plan = self.plan(date)
        self.simulate(self._plan, 0, self._plan.row_at(self._now))
        self._live = True

    def _current_plan(self) -> DayPlan:
        self._ensure_live()
        assert self._plan is not None
        if self._now >= self._plan.t[-1] + self.step_seconds:
            self._plan = self.plan(self._plan.date + dt.timedelta(days=1))
        return self._plan

    @property
    def now(self) -> float:
        """Simulated time, UTC epoch seconds."""
        return self._now

    def now_local(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._now, self.tz)

    def step(self, seconds: float) -> None:
        """Advance the live simulation by `seconds` (sub-steps of at most 60 s)."""
        remaining = float(seconds)
        while remaining > 1e-9:
            dt_s = min(60.0, remaining)
            plan = self._current_plan()
            i = plan.row_at(self._now)
            setpoint = self.device_state[DEVICE_INDEX["living.heating"]]
            self._boost = float(
                physics.step(
                    self.state,
                    self._now,
                    dt_s,
                    plan.tout[i],
                    plan.lux_out[i],
                    plan.occ[:, i],
                    plan.awake[:, i],
                    plan.cooking[i],
                    setpoint,
                    physics.rh_base(self._now, self.seed),
                )
            )
            self._now += dt_s
            remaining -= dt_s
        self._current_plan()

    def _row(self) -> tuple[DayPlan, int]:
        plan = self._current_plan()
        return plan, plan.row_at(self._now)

    def snapshot(self) -> dict:
        """The true (noise-free) state now: people, weather, physics, devices."""
        plan, i = self._row()
        return {
            "t": self._now,
            "occ": plan.occ[:, i].copy(),
            "awake": plan.awake[:, i].copy(),
            "home": int(plan.home[i]),
            "awake_home": int(plan.awake_home[i]),
            "cooking": bool(plan.cooking[i]),
            "daylight": plan.daylight[:, i].copy(),
            "temperature": self.state.temp.copy(),
            "humidity": self.state.rh.copy(),
            "co2": self.state.co2.copy(),
            "tout": float(plan.tout[i]),
            "hour": float(local_hour(self._now, plan.offset[i])),
            "devices": dict(zip(DEVICE_NAMES, self.device_state.tolist(), strict=True)),
        }

    def readings(self) -> dict[str, float | None]:
        """Current sensor readings by channel name (noisy, rounded); None = the sensor is not reporting."""
        plan, i = self._row()
        st = self.state
        lights = np.array([self.device_state[DEVICE_INDEX[f"{r}.light"]] for r in ROOMS])
        illum = plan.daylight[:, i] + physics.LAMP_LUX * lights
        pw = physics.power(
            self._now,
            lights[:, None],
            self.device_state[DEVICE_INDEX["bedroom.fan"]],
            plan.cooking[i],
            plan.awake[0, i],
            self._boost,
            self._rng,
        )
        true = physics.true_channels(
            1,
            st.temp[:, None],
            st.rh[:, None],
            st.co2[:, None],
            illum[:, None],
            plan.motion[:, i : i + 1],
            plan.door[i],
            pw,
            plan.tout[i],
        )
        obs = physics.observe(true, self._rng)[0]
        ok = plan.sensor_ok[CHANNEL_GROUP, i]
        return {c: (float(v) if good else None) for c, v, good in zip(CHANNEL_NAMES, obs, ok, strict=True)}

    def set_device(self, name: str, value: float) -> float:
        """Set a device's state (clamped to its range); returns the value applied."""
        k = DEVICE_INDEX[name]
        spec = DEVICES[k]
        if spec.kind == "setpoint":
            v = float(np.clip(round(float(value), 1), SETPOINT_MIN, SETPOINT_MAX))
        else:
            v = float(np.clip(round(float(value)), 0, spec.levels - 1))
        self.device_state[k] = v
        return v

    def device(self, name: str) -> float:
        return float(self.device_state[DEVICE_INDEX[name]])

    def preferred(self) -> dict[str, float]:
        """What the person would want every device to be right now."""
        s = self.snapshot()
        view = {
            "awake": s["awake"],
            "occ": s["occ"],
            "daylight": s["daylight"],
            "temperature": s["temperature"],
            "humidity": s["humidity"],
            "awake_home": s["awake_home"],
            "hour": s["hour"],
        }
        return {k: float(v) for k, v in self.pref.preferred(view).items()}

    def presence(self, device: str) -> tuple[bool, bool]:
        """(present, awake) of the person relevant to `device` right now."""
        plan, i = self._row()
        return device_presence(device, plan.occ[:, i], plan.awake[:, i], plan.home[i], plan.awake_home[i])

    def topology(self) -> Topology:
        return topology(timezone=self.timezone)
