"""`edge-agent import-ha`: a real recorder database with Home Assistant's schema (tests/data/ha_recorder_schema.sql)
and known rows -> the agent's log: every usable row lands exactly once (also when imported twice), units are
converted, unavailable/unknown skipped, statistics fill where states are purged, the agent's own rows win."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import agent_config_dict
from sqlalchemy import create_engine, insert, select

from edge_agent.cli import main
from edge_agent.config import load_config
from edge_agent.ha_import import import_ha
from edge_agent.ha_mapping import propose_mapping
from edge_agent.history import load_history
from edge_agent.recorder import device_changes, metadata, readings

SCHEMA = Path(__file__).parent / "data" / "ha_recorder_schema.sql"
T0 = 1_800_000_000.0  # a whole hour
USER = bytes.fromhex("0123456789abcdef0123456789abcdef")
PARENT = bytes.fromhex("0192f3a4b5c6d7e8f90a1b2c3d4e5f60")  # a ULID as 16 bytes, as HA stores it

# (entity, seconds after T0, state, attributes, context: None | 'user' | 'parent')
STATES: list[tuple[str, float, str, dict[str, Any], str | None]] = [
    ("binary_sensor.living_motion_occupancy", 10, "off", {"device_class": "occupancy"}, None),
    ("binary_sensor.living_motion_occupancy", 130, "on", {"device_class": "occupancy"}, None),
    ("binary_sensor.living_motion_occupancy", 150, "off", {"device_class": "occupancy"}, None),
    ("binary_sensor.living_motion_occupancy", 300, "unavailable", {"device_class": "occupancy"}, None),
    ("binary_sensor.living_motion_occupancy", 400, "on", {"device_class": "occupancy"}, None),
    ("sensor.living_motion_illuminance", 20, "12", {"unit_of_measurement": "lx"}, None),
    ("sensor.living_motion_illuminance", 200, "unknown", {"unit_of_measurement": "lx"}, None),
    ("sensor.living_motion_illuminance", 500, "300.5", {"unit_of_measurement": "lx"}, None),
    ("sensor.living_climate_temperature", 60, "68", {"unit_of_measurement": "°F"}, None),
    ("sensor.living_climate_temperature", 700, "71.6", {"unit_of_measurement": "°F"}, None),
    ("sensor.living_climate_temperature", 800, "abc", {"unit_of_measurement": "°F"}, None),
    ("binary_sensor.hall_door_contact", 30, "off", {"device_class": "door"}, None),
    ("binary_sensor.hall_door_contact", 90, "on", {"device_class": "door"}, None),
    ("sensor.bedroom_rh", 40, "55", {"unit_of_measurement": "%"}, None),
    ("light.living_light", 5, "off", {"supported_color_modes": ["brightness"]}, None),
    ("light.living_light", 135, "on", {"brightness": 120}, "user"),
    ("light.living_light", 140, "on", {"brightness": 200}, "user"),  # an attribute change: no new state
    ("light.living_light", 600, "off", {}, "parent"),  # an automation switched it off
    ("light.living_light", 650, "unavailable", {}, None),
    ("light.living_light", 660, "off", {}, None),  # back: the same state, no change
    ("fan.bedroom_fan", 50, "off", {"percentage": 0}, None),
    ("fan.bedroom_fan", 250, "on", {"percentage": 67}, "user"),
    ("fan.bedroom_fan", 350, "on", {"percentage": 100}, "user"),
    ("climate.living_thermostat", 70, "heat", {"temperature": 20.5, "current_temperature": 19.0}, None),
    ("climate.living_thermostat", 900, "heat", {"temperature": 21.0, "current_temperature": 20.0}, "user"),
    ("sensor.unrelated_power", 10, "42", {"unit_of_measurement": "W"}, None),
]
# long-term statistics (hourly means, °F) of the temperature: before its first state they are the history
STATISTICS = [
    ("sensor.living_climate_temperature", "°F", -7200, 59.0),
    ("sensor.living_climate_temperature", "°F", -3600, 62.6),
    ("sensor.living_climate_temperature", "°F", 3600, 80.0),  # states cover this hour: not used
    ("sensor.bedroom_climate_humidity", "%", -3600, 48.0),  # its states were purged: statistics only
]
READINGS = {  # what a person expects in the agent's log: one reading per 60 s step, in °C
    ("living.motion", 0, 0.0),
    ("living.motion", 120, 1.0),  # on at 130, off at 150: the step keeps the event
    ("living.motion", 360, 1.0),
    ("living.illuminance", 0, 12.0),
    ("living.illuminance", 480, 300.5),
    ("living.temperature", -7200, 15.0),
    ("living.temperature", -3600, 17.0),
    ("living.temperature", 60, 20.0),
    ("living.temperature", 660, 22.0),
    ("hall.door", 0, 0.0),
    ("hall.door", 60, 1.0),  # HA's door 'on' = open = the channel's 1
    ("bedroom.humidity", 0, 55.0),
}
CHANGES = {
    ("living.light", 5, 0.0, None, "initial"),
    ("living.light", 135, 1.0, 0.0, "person"),
    ("living.light", 600, 0.0, 1.0, "automation:home-assistant"),
    ("bedroom.fan", 50, 0.0, None, "initial"),
    ("bedroom.fan", 250, 2.0, 0.0, "person"),  # 67 % of a 4-level fan: medium
    ("bedroom.fan", 350, 3.0, 2.0, "person"),
    ("living.heating", 70, 20.5, None, "initial"),
    ("living.heating", 900, 21.0, 20.5, "person"),
}


def make_ha_db(path: Path) -> Path:
    con = sqlite3.connect(path)
    con.executescript(SCHEMA.read_text())
    con.execute("INSERT INTO schema_changes (schema_version, changed) VALUES (48, '2026-01-01 00:00:00')")
    meta: dict[str, int] = {}
    attrs: dict[str, int] = {}
    last: dict[str, int] = {}
    for entity, dt, state, a, ctx in STATES:
        if entity not in meta:
            meta[entity] = (
                con.execute("INSERT INTO states_meta (entity_id) VALUES (?)", (entity,)).lastrowid or 0
            )
        shared = json.dumps(a, separators=(",", ":"))
        if shared not in attrs:
            attrs[shared] = (
                con.execute(
                    "INSERT INTO state_attributes (hash, shared_attrs) VALUES (?, ?)",
                    (hash(shared) & 0xFFFFFFFF, shared),
                ).lastrowid
                or 0
            )
        cur = con.execute(
            "INSERT INTO states (state, last_updated_ts, last_changed_ts, last_reported_ts, old_state_id, "
            "attributes_id, origin_idx, context_id_bin, context_user_id_bin, context_parent_id_bin, metadata_id) "
            "VALUES (?, ?, NULL, NULL, ?, ?, 0, ?, ?, ?, ?)",
            (
                state,
                T0 + dt,
                last.get(entity),
                attrs[shared],
                os.urandom(16),
                USER if ctx == "user" else None,
                PARENT if ctx == "parent" else None,
                meta[entity],
            ),
        )
        last[entity] = cur.lastrowid or 0
    ids: dict[str, int] = {}
    for stat_id, unit, dt, mean in STATISTICS:
        if stat_id not in ids:
            ids[stat_id] = (
                con.execute(
                    "INSERT INTO statistics_meta (statistic_id, source, unit_of_measurement, unit_class, has_mean, "
                    "has_sum, name, mean_type) VALUES (?, 'recorder', ?, ?, 1, 0, NULL, 1)",
                    (stat_id, unit, "temperature" if unit.startswith("°") else None),
                ).lastrowid
                or 0
            )
        con.execute(
            "INSERT INTO statistics (created_ts, metadata_id, start_ts, mean, min, max) VALUES (?, ?, ?, ?, ?, ?)",
            (T0 + dt + 3600 + 10, ids[stat_id], T0 + dt, mean, mean - 1, mean + 1),
        )
    con.commit()
    con.close()
    return path


def write_config(tmp_path: Path) -> Path:
    data = agent_config_dict(Path("unused"), 1883, tmp_path / "state", timezone="UTC")
    data.pop("bundle")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def log_rows(url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    eng = create_engine(url)
    with eng.connect() as c:
        r = [(x.channel, round(x.ts - T0, 6), round(x.value, 6)) for x in c.execute(select(readings))]
        d = [
            (x.device, round(x.ts - T0, 6), x.value, x.previous, x.source)
            for x in c.execute(select(device_changes))
        ]
    eng.dispose()
    return r, d


def test_every_row_lands_once_units_converted_unavailable_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = make_ha_db(tmp_path / "home-assistant_v2.db")
    cfg_path = write_config(tmp_path)
    cfg = load_config(cfg_path)
    mapping = propose_mapping(cfg, {"sensor.bedroom_rh": "bedroom.humidity"})
    assert mapping["binary_sensor.living_motion_occupancy"] == "living.motion"
    assert (
        mapping["light.living_light"] == "living.light"
        and mapping["climate.living_thermostat"] == "living.heating"
    )
    argv = [
        "import-ha",
        "--db",
        str(db),
        "--config",
        str(cfg_path),
        "--map",
        "sensor.bedroom_rh=bedroom.humidity",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "binary_sensor.living_motion_occupancy -> living.motion: 3 rows written (5 states" in out
    assert "1 unavailable/unknown" in out and "imported 20 rows" in out
    r, d = log_rows(cfg.database_url)
    assert len(r) == len(READINGS) and set(r) == READINGS  # every row once
    assert len(d) == len(CHANGES) and set(d) == CHANGES
    # the proposed mapping, as --dry-run shows it (only entities the database has)
    assert main([*argv, "--dry-run"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert "sensor.bedroom_rh -> bedroom.humidity" in shown and "light.living_light -> living.light" in shown
    assert not any("unrelated" in s for s in shown) and len(shown) == 8
    # twice: nothing new
    assert main(argv) == 0
    assert "imported 0 rows" in capsys.readouterr().out
    assert log_rows(cfg.database_url) == (r, d)
    # training's db: dataset reads it (the catalog was written with the rows)
    hist = load_history(cfg.database_url)
    assert {c.name for c in hist.channels} >= {"living.motion", "living.temperature", "hall.door"}
    assert int(hist.labels.events.sum()) >= 1  # the person's changes are labels


def test_the_agents_own_rows_win_and_the_csv_leaves_the_log_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = make_ha_db(tmp_path / "ha.db")
    cfg = load_config(write_config(tmp_path))
    eng = create_engine(cfg.database_url)
    (tmp_path / "state").mkdir()
    metadata.create_all(eng)
    with eng.begin() as c:  # the agent recorded the illuminance itself from T0+480 on
        c.execute(insert(readings), [{"ts": T0 + 480, "channel": "living.illuminance", "value": 250.0}])
    eng.dispose()
    rep = import_ha(cfg, db, cfg.database_url, propose_mapping(cfg))
    lux = next(e for e in rep.entities if e.target == "living.illuminance")
    assert (lux.written, lux.skipped_present, lux.skipped_unavailable) == (1, 1, 1)
    r, _ = log_rows(cfg.database_url)
    assert sorted(x for x in r if x[0] == "living.illuminance") == [
        ("living.illuminance", 0.0, 12.0),
        ("living.illuminance", 480.0, 250.0),
    ]
    # no --map: the proposed entity has only long-term statistics left, and they are used
    assert ("bedroom.humidity", -3600.0, 48.0) in r and rep.unmatched_targets == []
    before = log_rows(cfg.database_url)
    out = tmp_path / "ha.csv"
    assert (
        main(["import-ha", "--db", str(db), "--config", str(tmp_path / "config.yaml"), "--csv", str(out)])
        == 0
    )
    header = out.read_text().splitlines()[0].split(",")
    assert header[0] == "time" and "living.temperature" in header and "living.light" in header
    assert (tmp_path / "ha.csv.sidecar.json").is_file()
    assert log_rows(cfg.database_url) == before


def test_not_a_recorder_database_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = tmp_path / "old.db"
    con = sqlite3.connect(old)
    con.execute(
        "CREATE TABLE states (state_id INTEGER PRIMARY KEY, entity_id VARCHAR(255), state VARCHAR(255))"
    )
    con.close()
    cfg = write_config(tmp_path)
    for db, want in ((old, "older schema"), (tmp_path / "none.db", "no such file")):
        assert main(["import-ha", "--db", str(db), "--config", str(cfg)]) == 2
        err = capsys.readouterr().err
        assert want in err and "Traceback" not in err
    assert main(["import-ha", "--db", str(old), "--config", str(cfg), "--map", "bad"]) == 2
    assert "ENTITY=TARGET" in capsys.readouterr().err
