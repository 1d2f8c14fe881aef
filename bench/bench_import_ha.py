"""Home Assistant history as a head start: `edge_agent.ha_import.import_ha` on a recorder database of N days.

A Home Assistant recorder (its SQLite schema, tests/data/ha_recorder_schema.sql) holding N days (default 10,
HA's default purge_keep_days) of a small Zigbee2MQTT home: two temperature and two illuminance sensors
reporting every minute, two motion sensors and a door (on/off a few dozen times a day), a light and a fan
changing ~30 times a day, and a year of hourly statistics for the temperatures. Timed: the import into a fresh
agent log (rows written per second), then a second import of the same database (idempotent: nothing written).
Baseline in the same run: the bare SELECT of the same states (JOIN states_meta + state_attributes) through
the stdlib sqlite3 module, the floor of reading HA's database. One JSON line per stage.
Usage: python bench/bench_import_ha.py [--days 10]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from _common import ROOT, emit

from edge_agent.config import parse_config
from edge_agent.ha_import import import_ha
from edge_agent.ha_mapping import propose_mapping

T0 = 1_780_000_000.0
SCHEMA = ROOT / "tests" / "data" / "ha_recorder_schema.sql"
Z = "zigbee2mqtt/"


def config(state: Path) -> dict[str, object]:
    ch = [
        (Z + "living motion", "living.motion", "occupancy"),
        (Z + "living motion", "living.illuminance", "illuminance"),
        (Z + "kitchen motion", "kitchen.motion", "occupancy"),
        (Z + "kitchen motion", "kitchen.illuminance", "illuminance"),
        (Z + "living climate", "living.temperature", "temperature"),
        (Z + "bedroom climate", "bedroom.temperature", "temperature"),
        (Z + "hall door", "hall.door", "contact"),
    ]
    return {
        "agent_id": "bench",
        "timezone": "UTC",
        "state_dir": str(state),
        "channels": [{"topic": t, "channel": c, "field": f} for t, c, f in ch],
        "devices": [
            {"name": "living.light", "state_topic": Z + "living light"},
            {
                "name": "bedroom.fan",
                "state_topic": Z + "bedroom fan",
                "field": "fan_mode",
                "values": ["off", "low", "medium", "high"],
            },
        ],
    }


def build(path: Path, days: float) -> int:
    rnd = random.Random(7)
    con = sqlite3.connect(path)
    con.executescript(SCHEMA.read_text())
    attrs = {}
    for unit in ("°C", "lx", ""):
        shared = json.dumps({"unit_of_measurement": unit} if unit else {"device_class": "occupancy"})
        attrs[unit] = con.execute(
            "INSERT INTO state_attributes (hash, shared_attrs) VALUES (0, ?)", (shared,)
        ).lastrowid
    rows: list[tuple[str, float, int, int]] = []
    span = days * 86400.0

    def entity(e: str) -> int:
        return con.execute("INSERT INTO states_meta (entity_id) VALUES (?)", (e,)).lastrowid or 0

    for e, unit, base in (
        ("sensor.living_climate_temperature", "°C", 21.0),
        ("sensor.bedroom_climate_temperature", "°C", 18.0),
        ("sensor.living_motion_illuminance", "lx", 200.0),
        ("sensor.kitchen_motion_illuminance", "lx", 150.0),
    ):
        mid = entity(e)
        rows += [
            (f"{base + rnd.uniform(-2, 2):.2f}", T0 + t, attrs[unit], mid) for t in range(0, int(span), 60)
        ]
    for e, per_day in (
        ("binary_sensor.living_motion_occupancy", 80),
        ("binary_sensor.kitchen_motion_occupancy", 60),
        ("binary_sensor.hall_door_contact", 20),
        ("light.living_light", 30),
        ("fan.bedroom_fan", 30),
    ):
        mid = entity(e)
        times = sorted(rnd.uniform(0, span) for _ in range(int(per_day * days)))
        for k, t in enumerate(times):
            state = "unavailable" if k % 97 == 0 else ("on" if k % 2 else "off")
            rows.append((state, T0 + t, attrs[""], mid))
    con.executemany(
        "INSERT INTO states (state, last_updated_ts, attributes_id, metadata_id) VALUES (?, ?, ?, ?)", rows
    )
    for k, e in enumerate(("sensor.living_climate_temperature", "sensor.bedroom_climate_temperature")):
        sid = con.execute(
            "INSERT INTO statistics_meta (statistic_id, source, unit_of_measurement, has_mean, has_sum, mean_type) "
            "VALUES (?, 'recorder', '°C', 1, 0, 1)",
            (e,),
        ).lastrowid
        con.executemany(
            "INSERT INTO statistics (metadata_id, start_ts, mean) VALUES (?, ?, ?)",
            [(sid, T0 - h * 3600.0, 20.0 + k) for h in range(1, 365 * 24)],
        )
    con.commit()
    con.close()
    return len(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=float, default=10.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "home-assistant_v2.db"
        n_states = build(db, args.days)
        cfg = parse_config(config(Path(tmp) / "state"))
        mapping = propose_mapping(cfg)
        for run in ("first", "again"):
            t0 = time.perf_counter()
            rep = import_ha(cfg, db, cfg.database_url, mapping)
            dt = time.perf_counter() - t0
            emit(
                bench="import_ha",
                run=run,
                days=args.days,
                states=n_states,
                statistics_read=sum(e.statistics for e in rep.entities),
                rows_written=rep.written,
                seconds=round(dt, 3),
                states_per_s=round(n_states / dt),
            )
        t0 = time.perf_counter()
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        n = sum(
            1
            for _ in con.execute(
                "SELECT m.entity_id, s.state, s.last_updated_ts, a.shared_attrs FROM states s "
                "JOIN states_meta m ON s.metadata_id = m.metadata_id "
                "LEFT JOIN state_attributes a ON s.attributes_id = a.attributes_id ORDER BY m.entity_id, s.last_updated_ts"
            )
        )
        con.close()
        dt = time.perf_counter() - t0
        emit(
            bench="import_ha",
            run="baseline_bare_select",
            states=n,
            seconds=round(dt, 3),
            states_per_s=round(n / dt),
        )


if __name__ == "__main__":
    main()
