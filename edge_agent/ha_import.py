"""Home Assistant's recorder history -> the agent's log (readings, device changes), as a head start.

The entities mapped to configured channels and devices (`edge_agent.ha_mapping`) are read from HA's database
(`edge_agent.ha_recorder`): states, and for sensors the hourly long-term statistics where the (purged) states
no longer reach. `unavailable` / `unknown` / unusable states are skipped and counted per entity.

Written like the agent writes: readings one per recording step (event kinds the max, others the last),
device changes on change only (first `initial`; later `person`, or `automation:home-assistant` when HA's
context has a parent: an automation or script did it). The catalog is written if the log has none, so
`export-history` and training's `db:` dataset read the log as the agent's own. Idempotent: a ledger
(`agent_state['ha_import']`) keeps the span written per target, rows already there are skipped, and nothing
is written at or after the first row the agent itself recorded for that target (its own log wins).
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, insert, not_, select
from sqlalchemy.exc import SQLAlchemyError

from edge_agent.catalog import CATALOG_KEY, build_catalog
from edge_agent.config import AgentConfig
from edge_agent.ha_mapping import Target, convert, state_value, targets_of
from edge_agent.ha_recorder import HaImportError, known_entities, open_ha, read_states, read_statistics
from edge_agent.kinds import EVENT_KINDS
from edge_agent.recorder import agent_state, device_changes, make_engine, metadata, readings

logger = logging.getLogger(__name__)

LEDGER_KEY = "ha_import"
SKIP_STATES = frozenset({"unavailable", "unknown", "", "none"})
HA_SOURCE_AUTOMATION = "automation:home-assistant"


@dataclass
class EntityReport:
    entity: str
    target: str
    states: int = 0
    statistics: int = 0
    written: int = 0
    skipped_unavailable: int = 0
    skipped_unparseable: int = 0
    skipped_present: int = 0  # already in the log (an earlier import, or the agent's own rows)


@dataclass
class ImportReport:
    entities: list[EntityReport] = field(default_factory=list)
    unmatched_targets: list[str] = field(default_factory=list)
    catalog_written: bool = False

    @property
    def written(self) -> int:
        return sum(e.written for e in self.entities)


def _attrs(raw: str | None) -> dict[str, Any]:
    try:
        v = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return v if isinstance(v, dict) else {}


def import_ha(
    cfg: AgentConfig, db: Path, url: str, mapping: dict[str, str], temp_unit: str = "°C"
) -> ImportReport:
    """Import the mapped entities of HA's database `db` into the agent's log at `url` (module docstring)."""
    targets = targets_of(cfg)
    for e, t in mapping.items():
        if t not in targets:
            raise HaImportError(
                f"--map {e}={t}: {t!r} is neither a configured channel nor a device; fix the name"
            )
    con = open_ha(db)
    try:
        engine = make_engine(url)
    except OSError as e:
        con.close()
        raise HaImportError(
            f"cannot create the agent's database at {url} ({e.strerror}); check state_dir"
        ) from None
    report = ImportReport()
    try:
        found = known_entities(con, list(mapping))
        by_target: dict[str, list[str]] = defaultdict(list)
        for entity_id, tname in mapping.items():
            if entity_id in found:
                by_target[tname].append(entity_id)
        report.unmatched_targets = sorted(t for t in targets if t not in by_target)
        step = cfg.learning.recording_step_seconds
        metadata.create_all(engine)
        with engine.begin() as conn:  # one transaction: an import lands whole or not at all
            ledger = _get_state(conn, LEDGER_KEY) or {}
            if _get_state(conn, CATALOG_KEY) is None:
                conn.execute(insert(agent_state), [_state_row(CATALOG_KEY, build_catalog(cfg, None))])
                report.catalog_written = True
            for tname, entities in sorted(by_target.items()):
                target, entity = targets[tname], sorted(entities)[0]  # one entity per target
                for other in sorted(entities)[1:]:
                    logger.warning("import-ha: %s also maps to %s; only %s is read", other, tname, entity)
                rep = EntityReport(entity, tname)
                states = read_states(con, [entity]).get(entity, [])  # one entity at a time: bounded memory
                stats = read_statistics(con, [entity]).get(entity, []) if target.role == "channel" else []
                series = _series(target, entity, states, stats, temp_unit, rep)
                rows = (
                    _downsample(series, step, target.kind in EVENT_KINDS)
                    if target.role == "channel"
                    else _changes(series)
                )
                span = _write(conn, target, rows, ledger.get(tname), rep)
                if span is not None:
                    ledger[tname] = span
                report.entities.append(rep)
            _set_state(conn, LEDGER_KEY, ledger)
    except sqlite3.DatabaseError as e:
        raise HaImportError(
            f"--db {db}: cannot read ({e}); is it intact (copy it while Home Assistant is stopped)?"
        ) from None
    except SQLAlchemyError as e:
        first = str(getattr(e, "orig", None) or e).splitlines()[0][:200]
        raise HaImportError(
            f"cannot write the agent's database ({first}); nothing was imported (check recorder.database_url)"
        ) from None
    finally:
        con.close()
        engine.dispose()
    return report


def _series(
    t: Target, entity: str, st: list[sqlite3.Row], sta: list[sqlite3.Row], temp_unit: str, rep: EntityReport
) -> list[tuple[float, float, bool]]:
    """(ts, value, by_automation) in time order: the hourly statistics before the first state, then states."""
    domain = entity.split(".", 1)[0]
    first = float(st[0]["ts"]) if st else math.inf
    out: list[tuple[float, float, bool]] = []
    parsed: dict[str | None, dict[str, Any]] = {}
    if t.role == "channel":
        for r in sta:
            if float(r["ts"]) >= first:
                break
            rep.statistics += 1
            v = convert(float(r["mean"]), r["unit"], t.unit)
            if v is None:
                rep.skipped_unparseable += 1
            else:
                out.append((float(r["ts"]), v, False))
    for r in st:
        rep.states += 1
        state = str(r["state"] or "")
        if state.strip().lower() in SKIP_STATES:
            rep.skipped_unavailable += 1
            continue
        raw = r["attrs"]
        if raw not in parsed:  # attributes are shared between states: parse each once
            parsed[raw] = _attrs(raw)
        v = state_value(t, domain, state, parsed[raw], temp_unit)
        if v is None:
            rep.skipped_unparseable += 1
        else:
            out.append((float(r["ts"]), v, bool(r["by_automation"])))
    return out


def _downsample(series: list[tuple[float, float, bool]], step: float, event: bool) -> list[dict[str, Any]]:
    """One reading per step (the step's start), like the agent's window: event kinds the max, others the last."""
    cells: dict[float, float] = {}
    for ts, v, _ in series:
        s = math.floor(ts / step) * step
        cells[s] = max(cells[s], v) if event and s in cells else v
    return [{"ts": s, "value": v} for s, v in sorted(cells.items())]


def _changes(series: list[tuple[float, float, bool]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    prev: float | None = None
    for ts, v, auto in series:
        if v == prev:
            continue
        source = "initial" if prev is None else HA_SOURCE_AUTOMATION if auto else "person"
        out.append({"ts": ts, "value": v, "previous": prev, "source": source, "learning_paused": False})
        prev = v
    return out


def _write(
    conn: Any, t: Target, rows: list[dict[str, Any]], span: Any, rep: EntityReport
) -> list[float] | None:
    table = readings if t.role == "channel" else device_changes
    col = table.c.channel if t.role == "channel" else table.c.device
    lo, hi = (
        (float(span[0]), float(span[1]))
        if isinstance(span, list) and len(span) == 2
        else (math.inf, -math.inf)
    )
    own = select(func.min(table.c.ts)).where(col == t.name)
    if lo <= hi:
        own = own.where(not_(and_(table.c.ts >= lo, table.c.ts <= hi)))
    agent_start = conn.execute(own).scalar()
    cut = math.inf if agent_start is None else float(agent_start)
    have = {float(x) for x in conn.execute(select(table.c.ts).where(col == t.name)).scalars()}
    new = []
    for r in rows:
        if r["ts"] >= cut or r["ts"] in have or lo <= r["ts"] <= hi:
            rep.skipped_present += 1
        else:
            new.append({**r, ("channel" if t.role == "channel" else "device"): t.name})
    if new:
        conn.execute(insert(table), new)
    rep.written = len(new)
    if not new:
        return None if not math.isfinite(lo) else [lo, hi]
    return [min(lo, new[0]["ts"]), max(hi, new[-1]["ts"])]


def _state_row(key: str, value: Any) -> dict[str, Any]:
    import time

    return {"key": key, "value": json.dumps(value), "updated": time.time()}


def _get_state(conn: Any, key: str) -> Any:
    v = conn.execute(select(agent_state.c.value).where(agent_state.c.key == key)).scalar()
    return None if v is None else json.loads(v)


def _set_state(conn: Any, key: str, value: Any) -> None:
    conn.execute(agent_state.delete().where(agent_state.c.key == key))
    conn.execute(insert(agent_state), [_state_row(key, value)])
