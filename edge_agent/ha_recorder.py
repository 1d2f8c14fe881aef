"""Home Assistant's recorder database, read only (SQLite, the schema of current releases).

`states` (state text, `last_updated_ts` epoch float, `metadata_id` -> `states_meta.entity_id`, `attributes_id`
-> `state_attributes.shared_attrs` JSON, `context_parent_id_bin`: set when an automation or script caused the
change) and the long-term `statistics` (hourly `mean` from `start_ts`) with `statistics_meta` (`statistic_id`,
`unit_of_measurement`). The schema is homeassistant/components/recorder/db_schema.py; an older database
(before states_meta, 2023.4) is refused with the fix.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from pathlib import Path


class HaImportError(Exception):
    """Bad input for an import: one line saying what, where and the fix."""


def open_ha(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise HaImportError(
            f"--db {path}: no such file; give Home Assistant's home-assistant_v2.db (its config folder)"
        )
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as e:
        raise HaImportError(f"--db {path}: not an SQLite database ({e}); give home-assistant_v2.db") from None
    if not {"states", "states_meta", "state_attributes"} <= tables:
        why = (
            "an older schema (before 2023.4)"
            if "states" in tables
            else "not a Home Assistant recorder database"
        )
        raise HaImportError(
            f"--db {path}: {why}: no states_meta table; open it once with a current Home Assistant to migrate"
        )
    con.row_factory = sqlite3.Row
    return con


def known_entities(con: sqlite3.Connection, entities: list[str]) -> set[str]:
    """The entities of `entities` that have states or long-term statistics in the database."""
    found = set()
    has_stats = {"statistics", "statistics_meta"} <= _tables(con)
    for e in entities:
        if con.execute("SELECT 1 FROM states_meta WHERE entity_id = ?", (e,)).fetchone() is not None or (
            has_stats and con.execute("SELECT 1 FROM statistics_meta WHERE statistic_id = ?", (e,)).fetchone()
        ):
            found.add(e)
    return found


def _tables(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def read_states(con: sqlite3.Connection, entities: list[str]) -> dict[str, list[sqlite3.Row]]:
    marks = ",".join("?" * len(entities))
    q = (
        "SELECT m.entity_id AS entity, s.state AS state, s.last_updated_ts AS ts, a.shared_attrs AS attrs, "
        "s.context_parent_id_bin IS NOT NULL AS by_automation "
        "FROM states s JOIN states_meta m ON s.metadata_id = m.metadata_id "
        "LEFT JOIN state_attributes a ON s.attributes_id = a.attributes_id "
        f"WHERE m.entity_id IN ({marks}) AND s.last_updated_ts IS NOT NULL ORDER BY m.entity_id, s.last_updated_ts"
    )
    out: dict[str, list[sqlite3.Row]] = defaultdict(list)
    for row in con.execute(q, entities):
        out[row["entity"]].append(row)
    return out


def read_statistics(con: sqlite3.Connection, entities: list[str]) -> dict[str, list[sqlite3.Row]]:
    out: dict[str, list[sqlite3.Row]] = defaultdict(list)
    if not {"statistics", "statistics_meta"} <= _tables(con):
        return out
    marks = ",".join("?" * len(entities))
    q = (
        "SELECT m.statistic_id AS entity, m.unit_of_measurement AS unit, s.start_ts AS ts, s.mean AS mean "
        "FROM statistics s JOIN statistics_meta m ON s.metadata_id = m.id "
        f"WHERE m.statistic_id IN ({marks}) AND s.mean IS NOT NULL AND s.start_ts IS NOT NULL "
        "ORDER BY m.statistic_id, s.start_ts"
    )
    for row in con.execute(q, entities):
        out[row["entity"]].append(row)
    return out
