"""One local day of the simulated home's exogenous inputs, on a fixed UTC step (a `DayPlan`).

Rows run from local midnight to the next local midnight (23, 24 or 25 hours across DST), each with its
UTC offset and local wall minute. Per row: occupants per room (awake or not), cooking, motion-sensor
events, door openings, outdoor temperature, daylight, and which sensors are reporting (dropouts) and
whether the hub was recording at all (outages). Generated from (seed, date) only, so days are independent
and any day can be rebuilt; the endogenous physics (temperatures, devices) lives in `physics`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np

from simhome import routine, weather
from simhome.layout import CHANNEL_INDEX, ROOMS

# Physical sensors (one Zigbee device each) and the channels they carry: a dropout silences all of them.
SENSOR_GROUPS: dict[str, tuple[str, ...]] = {
    **{f"{r}_motion": (f"{r}.motion", f"{r}.illuminance") for r in ROOMS},
    "living_climate": ("living.temperature", "living.humidity", "living.co2"),
    "kitchen_climate": ("kitchen.temperature", "kitchen.humidity"),
    "bedroom_climate": ("bedroom.temperature", "bedroom.humidity", "bedroom.co2"),
    "hall_door": ("hall.door",),
    "house_meter": ("house.power",),
    "outdoor_sensor": ("outdoor.temperature",),
}
GROUP_NAMES: tuple[str, ...] = tuple(SENSOR_GROUPS)
CHANNEL_GROUP = np.array(
    [GROUP_NAMES.index(next(g for g, chs in SENSOR_GROUPS.items() if name in chs)) for name in CHANNEL_INDEX]
)  # [C] group index of each channel

ROOM_DAYLIGHT = np.array([0.010, 0.007, 0.006])  # indoor ambient lux per outdoor lux, per room
CURTAINS = 0.15  # bedroom daylight factor while someone sleeps there
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


@dataclass
class DayPlan:
    date: dt.date
    t: np.ndarray  # float64 [n] UTC epoch seconds of each row
    offset: np.ndarray  # int32 [n] UTC offset (s) of each row's local time
    wall_minute: np.ndarray  # int32 [n] local wall-clock minute of day
    occ: np.ndarray  # int8 [R, n] occupants in each room
    awake: np.ndarray  # int8 [R, n] awake occupants in each room
    home: np.ndarray  # int8 [n] occupants at home
    awake_home: np.ndarray  # int8 [n] awake occupants at home
    cooking: np.ndarray  # bool [n]
    motion: np.ndarray  # bool [R, n] motion sensor fires in this row
    door: np.ndarray  # bool [n] front door open in this row
    tout: np.ndarray  # float64 [n] outdoor temperature °C
    lux_out: np.ndarray  # float64 [n] outdoor illuminance
    daylight: np.ndarray  # float64 [R, n] ambient (no lamp) indoor illuminance per room
    sensor_ok: np.ndarray  # bool [G, n] sensor group reporting
    hub_ok: np.ndarray  # bool [n] the hub was up (rows with False are absent from a history)

    def __len__(self) -> int:
        return int(self.t.shape[0])

    def row_at(self, t: float) -> int:
        return int(np.clip(np.searchsorted(self.t, t, side="right") - 1, 0, len(self) - 1))


def day_bounds(date: dt.date, tz: ZoneInfo) -> tuple[float, float]:
    """UTC epoch seconds of local midnight of `date` and of the next day."""
    a = dt.datetime(date.year, date.month, date.day, tzinfo=tz).timestamp()
    nxt = date + dt.timedelta(days=1)
    return a, dt.datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).timestamp()


def _offset(t: float, tz: ZoneInfo) -> int:
    off = dt.datetime.fromtimestamp(t, tz).utcoffset()
    return int(off.total_seconds()) if off is not None else 0


def row_offsets(t: np.ndarray, tz: ZoneInfo) -> np.ndarray:
    """int32 [n] UTC offsets of sorted instants spanning at most one transition per day (bisection)."""
    out = np.empty(t.shape[0], dtype=np.int32)
    if t.size == 0:
        return out
    o0, o1 = _offset(float(t[0]), tz), _offset(float(t[-1]), tz)
    out[:] = o0
    if o0 != o1:
        lo, hi = 0, t.size - 1  # offset(t[lo]) == o0, offset(t[hi]) == o1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _offset(float(t[mid]), tz) == o0:
                lo = mid
            else:
                hi = mid
        out[hi:] = o1
    return out


def _events(seed: int, ordinal: int, stream: int, p: float, long_p: float, hours: tuple[float, float] | None):
    """(start, duration) in seconds from UTC midnight of `ordinal`, or None: one outage draw for that day.

    Short outages: lognormal around 25 min (minutes to hours), or uniform in `hours` when given;
    long ones (probability `long_p`, a dead battery): 1-3 days.
    """
    rng = np.random.default_rng([seed, stream, ordinal])
    r = rng.random()
    if r < long_p:
        return rng.uniform(0, 86400), rng.uniform(1, 3) * 86400
    if r < long_p + p:
        if hours is not None:
            return rng.uniform(0, 86400), rng.uniform(*hours) * 3600.0
        return rng.uniform(0, 86400), min(rng.lognormal(np.log(1500.0), 1.2), 12 * 3600.0)
    return None


def _outage_mask(
    t: np.ndarray,
    seed: int,
    ordinal: int,
    stream: int,
    p: float,
    long_p: float,
    hours: tuple[float, float] | None = None,
) -> np.ndarray:
    ok = np.ones(t.shape[0], dtype=bool)
    for j in range(ordinal - 3, ordinal + 1):
        ev = _events(seed, j, stream, p, long_p, hours)
        if ev is not None:
            a = (j - _EPOCH_ORDINAL) * 86400.0 + ev[0]
            ok &= ~((t >= a) & (t < a + ev[1]))
    return ok


def make_plan(
    seed: int,
    date: dt.date,
    tz: ZoneInfo,
    n_occupants: int = 1,
    step_seconds: float = 60.0,
    dropouts: bool = True,
) -> DayPlan:
    t0, t1 = day_bounds(date, tz)
    t = t0 + np.arange(0.0, t1 - t0, step_seconds)
    n = t.shape[0]
    offset = row_offsets(t, tz)
    wall = ((np.floor((t + offset) / 60.0)).astype(np.int64) % routine.MINUTES).astype(np.int32)
    rng = np.random.default_rng([seed, 450, date.toordinal()])
    n_rooms = len(ROOMS)
    occ = np.zeros((n_rooms, n), dtype=np.int8)
    awake = np.zeros((n_rooms, n), dtype=np.int8)
    cooking = np.zeros(n, dtype=bool)
    door = np.zeros(n, dtype=bool)
    home = np.zeros(n, dtype=np.int8)
    for o in range(n_occupants):
        loc_m, awake_m, cook_m = routine.occupant_day(seed, o, date)
        loc, aw = loc_m[wall], awake_m[wall]  # [n] per row
        cooking |= cook_m[wall]
        for r in range(n_rooms):
            here = loc == r + 1
            occ[r] += here
            awake[r] += here & aw
        is_home = loc != routine.AWAY
        home += is_home
        door[1:] |= is_home[1:] != is_home[:-1]
    awake_home = awake.sum(axis=0).astype(np.int8)
    # a few extra door openings (deliveries, bins) while someone is up at home
    extra = rng.random(n) < (0.4 / 1440.0) * (awake_home > 0)
    door |= extra
    p_motion = np.where(awake > 0, 0.9, np.where(occ > 0, 0.04, 0.0005))
    motion = rng.random((n_rooms, n)) < p_motion
    tout = weather.outdoor_temperature(t, seed)
    lux_out = weather.outdoor_lux(t, seed)
    daylight = ROOM_DAYLIGHT[:, None] * lux_out[None, :]
    sleeping_bed = occ[2] > awake[2]
    daylight[2] = np.where(sleeping_bed, daylight[2] * CURTAINS, daylight[2])
    sensor_ok = np.ones((len(GROUP_NAMES), n), dtype=bool)
    hub_ok = np.ones(n, dtype=bool)
    if dropouts:
        for g in range(len(GROUP_NAMES)):
            sensor_ok[g] = _outage_mask(t, seed, date.toordinal(), 1000 + g, 0.07, 1 / 300)
        hub_ok = _outage_mask(t, seed, date.toordinal(), 900, 1 / 60, 0.0, hours=(1.0, 6.0))
    return DayPlan(
        date=date,
        t=t,
        offset=offset,
        wall_minute=wall,
        occ=occ,
        awake=awake,
        home=home,
        awake_home=awake_home,
        cooking=cooking,
        motion=motion,
        door=door,
        tout=tout,
        lux_out=lux_out,
        daylight=daylight,
        sensor_ok=sensor_ok,
        hub_ok=hub_ok,
    )
