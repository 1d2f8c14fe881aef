"""edge_agent.labels: the preference-label rules (a person's change, occupied unchanged states, exclusions)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np

from edge_agent.labels import (
    Change,
    device_occupancy,
    naive_labels,
    preference_labels,
    presence,
    quiet_mask,
    switch_mask,
)
from edge_agent.learning_config import QuietSpan

STEP = 60.0
T0 = 1_700_000_040.0  # a multiple of 60
N = 60
TIMES = T0 + np.arange(N) * STEP  # row i covers [T0 + 60 i, T0 + 60 (i + 1))


def at(row: float) -> float:
    return T0 + row * STEP


def _labels(changes, occupied=None, excluded=None, lead=180.0):
    occ = np.ones((N, 1), bool) if occupied is None else occupied.reshape(N, 1)
    exc = np.zeros(N, bool) if excluded is None else excluded
    return preference_labels(TIMES, STEP, [changes], occ, exc, lead)


def test_state_in_effect_and_naive() -> None:
    """The state is NaN before the first report; a change inside a row is in effect at the row's end."""
    ch = [Change(at(2.5), 0.0, "initial"), Change(at(10.2), 1.0, "person")]
    res = _labels(ch)
    st = res.state[:, 0]
    assert np.isnan(st[:2]).all()
    assert (st[2:10] == 0).all() and (st[10:] == 1).all()
    np.testing.assert_array_equal(naive_labels(TIMES, STEP, [ch])[:, 0], st)


def test_rule_a_person_change_labels_the_lead_rows() -> None:
    """Rows whose data ends in (t_c - lead, t_c] get the new value (the window ends before the change), once
    the person is in the room: not while they were still elsewhere."""
    ch = [Change(at(0), 0.0, "agent"), Change(at(20), 1.0, "person")]
    occ = np.zeros(N, bool)
    occ[18:] = True  # they came in during row 18
    res = _labels(ch, occupied=occ)  # before: the agent's state in an empty room, no label
    lab = res.labels[:, 0]
    # rows 17, 18, 19 end at rows 18, 19, 20 (<= t_c, > t_c - 180 s); 17 is before they came
    assert np.flatnonzero(~np.isnan(lab[:20])).tolist() == [18, 19]
    assert (lab[18:20] == 1).all() and (lab[20:] == 1).all()  # then their own state (rule b)
    assert (res.state[18:20, 0] == 0).all()  # the input still shows the old state: a transition
    assert res.event_rows[:, 0].sum() == 2 and res.events[0] == 1 and res.labelled[0] == 2 + (N - 20)


def test_rule_a_stops_at_the_previous_change() -> None:
    """Two quick changes: the second's lead rows never reach back before the first."""
    ch = [Change(at(0), 0.0, "agent"), Change(at(20), 1.0, "person"), Change(at(21), 0.0, "person")]
    occ = np.zeros(N, bool)
    occ[17:] = True
    lab = _labels(ch, occupied=occ).labels[:, 0]
    assert lab[17] == 1 and lab[18] == 1 and lab[19] == 1  # before the first change: on
    assert lab[20] == 0  # the row ending at the second change: off
    assert np.isnan(lab[:17]).all() and (lab[21:] == 0).all()  # the agent's state in an empty room: none


def test_rule_b_unchanged_states() -> None:
    """What the person (or the initial state) left is a label, also in an empty room; an agent's state only
    while the room is occupied (nobody there to object is no acceptance)."""
    occ = np.zeros(N, bool)
    occ[30:40] = True
    occ[55:] = True
    ch = [Change(at(0), 1.0, "initial"), Change(at(50), 0.0, "agent")]
    res = _labels(ch, occupied=occ)
    lab = res.labels[:, 0]
    assert np.flatnonzero(~np.isnan(lab)).tolist() == list(range(0, 50)) + list(range(55, N))
    assert (lab[:50] == 1).all() and (lab[55:] == 0).all()
    assert res.events[0] == 0


def test_agent_command_nobody_changed_back_is_a_label() -> None:
    ch = [Change(at(0), 0.0, "initial"), Change(at(10), 1.0, "agent")]
    lab = _labels(ch).labels[:, 0]
    assert (lab[10:] == 1).all() and (lab[:10] == 0).all()


def test_agent_command_overridden_quickly_takes_the_persons_value() -> None:
    """The agent switches on, the person switches off 30 s later: the lead rows say off, not on."""
    ch = [Change(at(0), 0.0, "initial"), Change(at(10), 1.0, "agent"), Change(at(10.5), 0.0, "person")]
    lab = _labels(ch).labels[:, 0]
    assert lab[9] == 0 and lab[10] == 0  # row 10 ends after the person's change: state off
    assert (lab[:20] == 0).all()


def test_automation_source_is_never_a_label() -> None:
    """A thermostat schedule's state is not the person's, until the next other change."""
    ch = [
        Change(at(0), 0.0, "initial"),
        Change(at(10), 1.0, "automation:thermostat schedule"),
        Change(at(30), 0.0, "person"),
    ]
    res = _labels(ch)
    lab = res.labels[:, 0]
    assert (lab[:10] == 0).all()
    assert np.isnan(lab[10:27]).all()  # automation's state: no label
    assert (lab[27:30] == 0).all()  # the person's change: rule a
    assert (lab[30:] == 0).all()  # the person's state: rule b


def test_rule_c_paused_and_excluded_changes() -> None:
    """A change made with learning paused, or inside an excluded row, is no label; excluded rows carry none."""
    exc = np.zeros(N, bool)
    exc[38:45] = True
    ch = [
        Change(at(0), 0.0, "initial"),
        Change(at(20), 1.0, "person", learning_paused=True),
        Change(at(40), 0.0, "person"),  # inside the excluded rows
    ]
    res = _labels(ch, excluded=exc)
    lab = res.labels[:, 0]
    assert res.events[0] == 0 and not res.event_rows.any()
    assert (lab[:20] == 0).all()
    assert np.isnan(lab[20:45]).all()  # the paused change's state, then the excluded rows
    assert (lab[45:] == 0).all()


def test_presence_and_fallback_to_the_home() -> None:
    """A room is occupied presence_seconds after its motion; a room without a sensor uses the home's."""
    motion = np.zeros(N)
    motion[10] = 1.0
    motion[11] = np.nan
    hall = np.zeros(N)
    hall[40] = 1.0
    occ = device_occupancy(
        TIMES,
        STEP,
        {"kitchen.motion": motion, "hall.door": hall},
        {"kitchen.motion": "kitchen", "hall.door": "hall"},
        ["kitchen", "attic"],
        presence_seconds=300.0,
    )
    # kitchen: rows 10..14 (row end - event row start <= 300 s)
    assert np.flatnonzero(occ[:, 0]).tolist() == list(range(10, 14 + 1))
    # attic has no sensor: any of the home's
    assert np.flatnonzero(occ[:, 1]).tolist() == list(range(10, 15)) + list(range(40, 45))
    np.testing.assert_array_equal(presence(TIMES, STEP, motion == 1, 300.0), occ[:, 0])
    none = device_occupancy(TIMES, STEP, {}, {}, ["kitchen"], 300.0)
    assert none.all()


def _grid(start: dt.datetime, hours: int) -> np.ndarray:
    t0 = start.timestamp()
    return t0 + np.arange(hours * 60) * 60.0


def test_quiet_span_across_midnight_and_dst_in_brussels() -> None:
    """23:00-07:00 on Saturdays: local wall clock through the night of the autumn DST change (25 h day)."""
    tz = ZoneInfo("Europe/Brussels")
    # 2024-10-26 is a Saturday; clocks go back at 03:00 local on Sunday 27 October
    times = _grid(dt.datetime(2024, 10, 26, 12, 0, tzinfo=tz), 40)
    q = quiet_mask(times, "Europe/Brussels", [QuietSpan(start="23:00", end="07:00", days=["sat"])])
    local = [dt.datetime.fromtimestamp(t, tz) for t in times]
    inside = [(lt.hour >= 23 and lt.day == 26) or (lt.day == 27 and lt.hour < 7) for lt in local]
    np.testing.assert_array_equal(q, np.array(inside))
    assert q.sum() == 9 * 60  # 23:00 -> 07:00 that night is 9 real hours (03:00 happens twice)
    # not on Sunday night: the span starts on Saturdays only
    assert not q[[i for i, lt in enumerate(local) if lt.day == 27 and lt.hour == 23]].any()


def test_quiet_span_spring_forward() -> None:
    """01:00-04:00 on the spring DST night is two real hours (02:00-03:00 does not exist)."""
    times = _grid(dt.datetime(2024, 3, 30, 12, 0, tzinfo=ZoneInfo("Europe/Brussels")), 24)
    q = quiet_mask(times, "Europe/Brussels", [QuietSpan(start="01:00", end="04:00")])
    assert q.sum() == 2 * 60


def test_switch_mask() -> None:
    """pause_learning on during any part of a row excludes it."""
    m = switch_mask(TIMES, STEP, [(at(5.5), True), (at(8.2), False), (at(30), True), (at(31), False)])
    assert np.flatnonzero(m).tolist() == [5, 6, 7, 8, 30]


def test_agent_command_the_person_set_back_is_a_rejection() -> None:
    """The agent switches off; 10 min later the person switches back on: the agent's span is no label."""
    ch = [Change(at(0), 1.0, "initial"), Change(at(10), 0.0, "agent"), Change(at(20), 1.0, "person")]
    lab = preference_labels(TIMES, STEP, [ch], np.ones((N, 1), bool), np.zeros(N, bool), 180.0, 900.0).labels
    assert (lab[:10, 0] == 1).all()
    assert np.isnan(lab[10:17, 0]).all()  # rejected: not the person's preference
    assert (lab[17:, 0] == 1).all()  # rule a before the person's change, then rule b
    late = [Change(at(0), 1.0, "initial"), Change(at(10), 0.0, "agent"), Change(at(40), 1.0, "person")]
    lab = preference_labels(
        TIMES, STEP, [late], np.ones((N, 1), bool), np.zeros(N, bool), 180.0, 900.0
    ).labels
    assert (lab[10:37, 0] == 0).all()  # accepted for 30 min: a later change is a new wish, not a rejection
