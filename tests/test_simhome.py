"""Simulated home: determinism, preference rules, history CSV + sidecar, DST, rare device, dropouts."""

from __future__ import annotations

import csv
import datetime as dt
import json
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from edge_agent.dataformat import Sidecar
from simhome import CHANNEL_NAMES, DEVICE_NAMES, Preference, SimHome, topology, write_history
from simhome.__main__ import main as cli_main
from simhome.history import sidecar_path
from simhome.home import enact
from simhome.plan import SENSOR_GROUPS

TZ = ZoneInfo("Europe/Brussels")


def _read(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_history_is_deterministic_and_seed_dependent(tmp_path):
    a = write_history(tmp_path / "a.csv", 2, seed=3, start="2023-05-01")
    b = write_history(tmp_path / "b.csv", 2, seed=3, start="2023-05-01")
    c = write_history(tmp_path / "c.csv", 2, seed=4, start="2023-05-01")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_history_csv_and_sidecar_match(tmp_path):
    path = write_history(tmp_path / "h.csv", 1, seed=1, start="2022-01-10")
    side = Sidecar.model_validate(json.loads(sidecar_path(path).read_text(encoding="utf-8")))
    head, rows = _read(path)
    assert head[0] == side.timestamp_column == "time"
    assert head[1:] == list(side.columns)
    assert side.channel_columns() == list(CHANNEL_NAMES)
    assert side.device_columns() == list(DEVICE_NAMES)
    assert side.columns["bedroom.fan"].device_kind == "level" and side.columns["bedroom.fan"].levels == 4
    assert side.columns["living.heating"].device_kind == "setpoint"
    assert all(len(r) == len(head) for r in rows)
    first = dt.datetime.fromisoformat(rows[0][0])
    assert first == dt.datetime(2022, 1, 10, tzinfo=TZ) and first.utcoffset() == dt.timedelta(hours=1)
    for r in rows[:200]:
        for cell in r[1:]:
            assert cell == "" or np.isfinite(float(cell))


@pytest.mark.parametrize(("day", "hours"), [(dt.date(2022, 3, 27), 23), (dt.date(2022, 10, 30), 25)])
def test_dst_days_have_23_or_25_hours_with_offsets(tmp_path, day, hours):
    home = SimHome(5, dt.datetime(day.year, day.month, day.day, tzinfo=TZ))
    frame = next(home.days(1, warmup_days=0))
    assert len(frame.plan) == hours * 60
    path = write_history(tmp_path / "d.csv", 1, seed=5, start=day.isoformat())
    _, rows = _read(path)
    stamps = [dt.datetime.fromisoformat(r[0]) for r in rows]
    utc = [s.timestamp() for s in stamps]
    steps = np.diff(np.array(utc))
    assert (steps > 0).all() and (steps % 60 == 0).all()  # no duplicated or shifted row across DST
    assert len(rows) == int(frame.plan.hub_ok.sum())  # only hub outages leave rows out
    assert stamps[0] == dt.datetime(day.year, day.month, day.day, tzinfo=TZ) or not frame.plan.hub_ok[0]
    offsets = {s.utcoffset() for s in stamps}
    assert offsets == {dt.timedelta(hours=1), dt.timedelta(hours=2)}
    walls = [s.replace(tzinfo=None) for s in stamps]
    if hours == 25:  # 02:00..02:59 happens twice, first at +02:00 then at +01:00
        twice = [s for s in stamps if s.hour == 2 and s.minute == 30]
        assert [s.utcoffset() for s in twice] == [dt.timedelta(hours=2), dt.timedelta(hours=1)]
    else:  # 02:00..02:59 does not exist
        assert not any(w.hour == 2 for w in walls)


def test_rare_device_over_a_year_and_agreement():
    home = SimHome(0, dt.datetime(2022, 1, 1, tzinfo=TZ), dropouts=False)
    devs, prefs = [], []
    for frame in home.days(365, warmup_days=0):
        devs.append(frame.devices)
        prefs.append(frame.preferred)
    dev, pref = np.concatenate(devs), np.concatenate(prefs)
    on = {
        d: float(np.mean(dev[:, i] != (17.0 if d == "living.heating" else 0.0)))
        for i, d in enumerate(DEVICE_NAMES)
    }
    fan = on["bedroom.fan"]
    assert 0.001 < fan < 0.05, on
    assert set(np.unique(dev[:, DEVICE_NAMES.index("bedroom.fan")])) == {0.0, 1.0, 2.0, 3.0}
    assert 0.05 < on["living.light"] < 0.4
    agree = np.mean(dev == pref, axis=0)
    assert np.all(agree > 0.95) and np.all(agree < 1.0), agree  # human lag: close, not identical


def test_dropouts_make_empty_cells_per_sensor(tmp_path):
    path = write_history(tmp_path / "h.csv", 20, seed=2, start="2022-02-01")
    head, rows = _read(path)
    cells = np.array([r[1:] for r in rows])
    empty = cells == ""
    assert empty.any()
    assert not empty.all(axis=0).any()
    col = {n: i for i, n in enumerate(head[1:])}
    for chans in SENSOR_GROUPS.values():  # a dead sensor silences all of its channels together
        idx = [col[c] for c in chans]
        assert (empty[:, idx] == empty[:, idx[:1]]).all()
    assert not empty[:, [col[d] for d in DEVICE_NAMES]].any()


def test_preference_rules():
    p = Preference()
    assert p.light("living", 1, 10.0) == 1.0
    assert p.light("living", 1, 500.0) == 0.0  # bright enough without the lamp
    assert p.light("living", 0, 10.0) == 0.0  # nobody awake in the room
    assert p.fan(1, 22.0, 50.0) == 0.0
    assert p.fan(1, 24.8, 50.0) == 1.0
    assert p.fan(1, 26.5, 50.0) == 2.0
    assert p.fan(1, 27.0, 80.0) == 3.0  # humidity makes it feel hotter
    assert p.fan(0, 30.0, 80.0) == 0.0
    assert p.heating(1, 10.0) == 20.5 and p.heating(1, 20.0) == 21.0 and p.heating(0, 20.0) == 17.0
    assert p.should_override("living.light", 1.0, 0.0, present=True, awake=True)
    assert not p.should_override("living.light", 1.0, 0.0, present=False, awake=True)
    assert not p.should_override("living.light", 1.0, 0.0, present=True, awake=False)
    assert not p.should_override("living.light", 1.0, 1.0, present=True, awake=True)
    assert not p.should_override("living.heating", 20.7, 20.5, present=True, awake=True)
    assert p.should_override("living.heating", 19.0, 20.5, present=True, awake=True)
    assert p.should_override("bedroom.fan", 3.0, 1.0, present=True, awake=True)


def test_enact_follows_preference_with_lag():
    pref = np.r_[np.zeros(2), np.ones(6), np.zeros(120)]  # on for 6 minutes, then off for 2 hours
    state = enact(pref, 0.0, 60.0, "binary", np.random.default_rng(0))
    assert state[2] == 0.0  # at least one step of human lag
    assert state.max() == 1.0 and state[-1] == 0.0
    assert set(np.unique(state)) <= {0.0, 1.0}


def test_topology_covers_every_channel_and_device():
    topo = topology()
    assert sorted(topo.channels()) == sorted(CHANNEL_NAMES)
    assert [d.name for d in topo.devices] == list(DEVICE_NAMES)
    door = next(s for s in topo.sensors if s.channel == "hall.door")
    assert door.topic == "zigbee2mqtt/hall_door" and door.field == "contact" and door.invert
    motion = next(s for s in topo.sensors if s.channel == "kitchen.illuminance")
    assert (motion.topic, motion.field) == ("zigbee2mqtt/kitchen_motion", "illuminance_lux")
    fan = topo.device("bedroom.fan")
    assert fan.command_topic == "zigbee2mqtt/bedroom_fan/set" and fan.field == "fan_mode"
    assert fan.decode("medium") == 2.0 and fan.encode(3) == "high"
    light = topo.device("living.light")
    assert light.decode("ON") == 1.0 and light.encode(0.0) == "OFF"
    heat = topo.device("living.heating")
    assert heat.field == "occupied_heating_setpoint" and heat.decode(20.5) == 20.5
    with pytest.raises(ValueError):
        fan.decode("turbo")
    assert "zigbee2mqtt/bedroom_fan/availability" in topo.availability_topics()


def test_live_steps_deterministically_and_clamps_devices():
    start = dt.datetime(2022, 12, 5, 18, 30, tzinfo=TZ)
    a, b = SimHome(9, start), SimHome(9, start)
    for h in (a, b):
        h.set_device("living.light", 1.0)
        h.step(600)
    assert a.now == b.now == start.timestamp() + 600
    ra, rb = a.readings(), b.readings()
    assert ra == rb and set(ra) == set(CHANNEL_NAMES)
    assert a.set_device("living.heating", 40.0) == 23.0
    assert a.set_device("bedroom.fan", 7) == 3.0
    pref = a.preferred()
    assert set(pref) == set(DEVICE_NAMES) and 17.0 <= pref["living.heating"] <= 21.0


def test_cli_history_and_bad_input(tmp_path, capsys):
    out = tmp_path / "x.csv"
    assert cli_main(["history", "--days", "1", "--out", str(out), "--seed", "2"]) == 0
    assert out.exists() and sidecar_path(out).exists()
    assert cli_main(["history", "--days", "0", "--out", str(out)]) == 2
    assert cli_main(["history", "--days", "1", "--out", str(out), "--start", "yesterday"]) == 2
    assert cli_main(["history", "--days", "1", "--out", str(out), "--timezone", "Mars/Olympus"]) == 2
    assert cli_main(["history", "--days", "1", "--out", str(tmp_path)]) == 2  # a directory
    assert not list(tmp_path.glob("*.tmp"))
    err = capsys.readouterr().err
    assert "--start" in err and "YYYY-MM-DD" in err and "Traceback" not in err


def test_two_occupants_and_trips():
    home = SimHome(1, dt.datetime(2022, 1, 3, tzinfo=TZ), n_occupants=2, dropouts=False)
    frames = list(home.days(7, warmup_days=0))
    occ = np.concatenate([f.plan.occ for f in frames], axis=1)  # [R, n]
    assert occ.sum(axis=0).max() == 2 and occ.max() == 2
    from simhome.routine import on_trip, trips

    first, last = trips(1, 2022)[0]
    away = SimHome(1, dt.datetime.combine(first + dt.timedelta(days=1), dt.time(), TZ), dropouts=False)
    frame = next(away.days(1, warmup_days=0))
    assert on_trip(1, frame.plan.date) and frame.plan.home.max() == 0
    assert frame.devices[:, DEVICE_NAMES.index("living.light")].max() == 0.0


def test_history_preference_labels_differ_from_state_only_by_human_lag(tmp_path):
    """labels='preference' writes the hidden preference; 'state' the (lagging) state in effect."""
    import csv as _csv

    from simhome import write_history as _write

    a = _write(tmp_path / "state.csv", 2, seed=3, start="2023-01-09")
    b = _write(tmp_path / "pref.csv", 2, seed=3, start="2023-01-09", labels="preference")
    ra = list(_csv.DictReader(a.read_text(encoding="utf-8").splitlines()))
    rb = list(_csv.DictReader(b.read_text(encoding="utf-8").splitlines()))
    assert [r["time"] for r in ra] == [r["time"] for r in rb]
    assert [r["living.illuminance"] for r in ra] == [r["living.illuminance"] for r in rb]
    differ = sum(r1["living.light"] != r2["living.light"] for r1, r2 in zip(ra, rb, strict=True))
    assert 0 < differ < 0.05 * len(ra)
