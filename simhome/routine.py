"""Occupants' daily routines: where each person is, awake or asleep, cooking, minute by minute.

A day's routine is a list of segments in local wall-clock minutes (0..1440, may run past midnight: the
overflow is carried into the next day). Day types: office workday, work-from-home, day off (weekend,
public holiday, personal leave), trip (the whole household away). Everything is seeded per
(seed, date, occupant) so any day can be generated on its own, given the previous day's carry-over.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

AWAY, LIVING, KITCHEN, BEDROOM = 0, 1, 2, 3
LOCATION_ROOM = {LIVING: "living", KITCHEN: "kitchen", BEDROOM: "bedroom"}
MINUTES = 1440


@dataclass(frozen=True)
class Segment:
    start: int  # wall minute, may be >= 1440 (past midnight)
    end: int
    loc: int
    awake: bool = True
    cooking: bool = False


@dataclass(frozen=True)
class Traits:
    wake_work: float  # minutes after midnight
    wake_off: float
    bed: float
    back_home: float
    wfh_prob: float
    cooks: bool


def traits(seed: int, occupant: int) -> Traits:
    rng = np.random.default_rng([seed, 100, occupant])
    return Traits(
        wake_work=float(rng.uniform(375, 435)),
        wake_off=float(rng.uniform(480, 560)),
        bed=float(rng.uniform(1340, 1410)),
        back_home=float(rng.uniform(1020, 1110)),
        wfh_prob=float(rng.uniform(0.1, 0.3)),
        cooks=occupant == 0 or bool(rng.random() < 0.5),
    )


def easter(year: int) -> dt.date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month, day = divmod(h + el - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


@lru_cache(maxsize=64)
def public_holidays(year: int) -> frozenset[dt.date]:
    """Belgian public holidays of a year."""
    e = easter(year)
    fixed = [(1, 1), (5, 1), (7, 21), (8, 15), (11, 1), (11, 11), (12, 25)]
    days = {dt.date(year, m, d) for m, d in fixed}
    days |= {e + dt.timedelta(days=1), e + dt.timedelta(days=39), e + dt.timedelta(days=50)}
    return frozenset(days)


@lru_cache(maxsize=64)
def trips(seed: int, year: int) -> tuple[tuple[dt.date, dt.date], ...]:
    """The household's trips away (first and last full day away, inclusive) in a year."""
    rng = np.random.default_rng([seed, 200, year])
    summer_start = dt.date(year, 7, 1) + dt.timedelta(days=int(rng.integers(0, 45)))
    other_start = dt.date(year, 1, 1) + dt.timedelta(
        days=int(rng.choice([40, 100, 290, 300])) + int(rng.integers(0, 20))
    )
    out = [
        (summer_start, summer_start + dt.timedelta(days=int(rng.integers(7, 14)))),
        (other_start, other_start + dt.timedelta(days=int(rng.integers(2, 7)))),
    ]
    return tuple(sorted(out))


def on_trip(seed: int, date: dt.date) -> bool:
    return any(a <= date <= b for a, b in trips(seed, date.year))


def day_type(seed: int, occupant: int, date: dt.date) -> str:
    """'trip', 'off', 'wfh' or 'office' for this occupant on this date."""
    if on_trip(seed, date):
        return "trip"
    if date.weekday() >= 5 or date in public_holidays(date.year):
        return "off"
    rng = np.random.default_rng([seed, 300, date.toordinal(), occupant])
    r = rng.random()
    if r < 0.04:
        return "off"  # leave / sick day
    return "wfh" if r < 0.04 + traits(seed, occupant).wfh_prob else "office"


class _Plan:
    """Appends consecutive segments from a start minute, with jittered durations."""

    def __init__(self, rng: np.random.Generator, start: float):
        self.rng, self.t, self.segs = rng, int(round(start)), []

    def add(self, minutes: float, loc: int, awake: bool = True, cooking: bool = False, jitter: float = 0.2):
        d = max(1, int(round(minutes * (1 + jitter * self.rng.standard_normal()))))
        self.segs.append(Segment(self.t, self.t + d, loc, awake, cooking))
        self.t += d

    def until(self, end: float, loc: int, awake: bool = True, cooking: bool = False, visits: float = 0.0):
        """Stay in loc until `end`, with short kitchen visits (Poisson, `visits` per hour)."""
        end = int(round(end))
        while self.t < end:
            gap = self.rng.exponential(60.0 / visits) if visits > 0 else end - self.t
            stop = min(end, self.t + max(1, int(gap)))
            self.segs.append(Segment(self.t, stop, loc, awake, cooking))
            self.t = stop
            if visits > 0 and self.t < end - 10:
                self.add(4, KITCHEN, jitter=0.5)


def day_segments(seed: int, occupant: int, date: dt.date, carry: list[Segment]) -> list[Segment]:
    """This occupant's segments for the local day, starting with the carry-over from the previous day."""
    rng = np.random.default_rng([seed, 400, date.toordinal(), occupant])
    tr = traits(seed, occupant)
    kind = day_type(seed, occupant, date)
    start = carry[-1].end if carry else 0
    segs = list(carry)
    tomorrow = date + dt.timedelta(days=1)
    leaving_tomorrow = on_trip(seed, tomorrow) and kind != "trip"
    if kind == "trip":
        if on_trip(seed, date - dt.timedelta(days=1)):
            return segs + [Segment(start, MINUTES, AWAY)]
        p = _Plan(rng, start)  # departure day: morning at home, then away
        p.until(max(start + 1.0, tr.wake_off + rng.normal(0, 15)), BEDROOM, awake=False)
        p.add(8, BEDROOM)
        p.add(30, KITCHEN)
        p.add(40, LIVING)
        return segs + p.segs + [Segment(p.t, MINUTES, AWAY)]
    back_from_trip = on_trip(seed, date - dt.timedelta(days=1))
    late = kind == "off" or tomorrow.weekday() >= 5 or tomorrow in public_holidays(tomorrow.year)
    wake = (tr.wake_off if kind == "off" else tr.wake_work) + rng.normal(0, 15)
    bed = tr.bed + (45 if late else 0) + rng.normal(0, 20)
    if leaving_tomorrow:
        bed = min(bed, 1400.0)
    if back_from_trip:
        p = _Plan(rng, start)
        p.add(max(1.0, 900.0 + rng.normal(0, 60) - start), AWAY, jitter=0.0)
    else:
        p = _Plan(rng, start)
        wake = max(wake, start + 1.0)
        if rng.random() < 0.05 and wake - start > 240:  # night-time kitchen visit
            mid = start + rng.uniform(60, wake - start - 120)
            p.add(mid - start, BEDROOM, awake=False, jitter=0.0)
            p.add(3, BEDROOM, jitter=0.3)
            p.add(5, KITCHEN, jitter=0.3)
        p.until(wake, BEDROOM, awake=False)
        p.add(8, BEDROOM)
        if kind == "office":
            p.add(20, KITCHEN)
            p.add(12, LIVING)
            p.add(tr.back_home + rng.normal(0, 35) - p.t, AWAY, jitter=0.0)
        elif kind == "wfh":
            p.add(25, KITCHEN)
            p.until(720 + rng.normal(0, 15), LIVING, visits=0.4)
            p.add(35, KITCHEN, cooking=tr.cooks)
            if rng.random() < 0.5:
                p.add(40, AWAY)
            p.until(1050 + rng.normal(0, 30), LIVING, visits=0.4)
        else:
            p.add(40, KITCHEN, cooking=tr.cooks)
            p.until(720 + rng.normal(0, 40), LIVING, visits=0.5)
            if rng.random() < 0.65:
                p.add(rng.uniform(60, 240), AWAY, jitter=0.0)
    # evening: everyone who is home
    p.until(max(p.t + 5, 1080 + rng.normal(0, 25)), LIVING, visits=0.5)
    if tr.cooks:
        p.add(40, KITCHEN, cooking=True)
    else:
        p.add(15, LIVING)
    p.add(25, KITCHEN)
    p.until(max(p.t + 5, bed - 15), LIVING, visits=0.3)
    p.add(15, BEDROOM)
    p.segs.append(Segment(p.t, max(p.t + 1, MINUTES), BEDROOM, awake=False))
    return segs + p.segs


def split_day(segs: list[Segment]) -> tuple[list[Segment], list[Segment]]:
    """(segments clipped to [0, 1440), carry-over shifted by -1440)."""
    today, carry = [], []
    for s in segs:
        if s.start < MINUTES:
            today.append(Segment(s.start, min(s.end, MINUTES), s.loc, s.awake, s.cooking))
        if s.end > MINUTES:
            a = max(s.start, MINUTES) - MINUTES
            carry.append(Segment(a, s.end - MINUTES, s.loc, s.awake, s.cooking))
    if carry and carry[-1].loc == BEDROOM and not carry[-1].awake:
        carry.pop()  # the night's sleep continues in the next day's own plan
    return today, carry


def to_minutes(segs: list[Segment]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per wall minute: location int8 [1440], awake bool [1440], cooking bool [1440]."""
    loc = np.full(MINUTES, BEDROOM, dtype=np.int8)
    awake = np.zeros(MINUTES, dtype=bool)
    cooking = np.zeros(MINUTES, dtype=bool)
    for s in segs:
        a, b = max(0, s.start), min(MINUTES, s.end)
        if b > a:
            loc[a:b], awake[a:b], cooking[a:b] = s.loc, s.awake, s.cooking
    return loc, awake, cooking


def occupant_day(seed: int, occupant: int, date: dt.date) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minute arrays for one occupant and date (generates the previous day for its carry-over)."""
    prev = date - dt.timedelta(days=1)
    _, carry = split_day(day_segments(seed, occupant, prev, []))
    today, _ = split_day(day_segments(seed, occupant, date, carry))
    return to_minutes(today)
