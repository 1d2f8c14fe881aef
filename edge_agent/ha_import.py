"""Home Assistant's recorder history -> the agent's log (readings, device changes), as a head start.

Reads HA's SQLite recorder (read-only) in the schema of current releases: `states` (state text,
`last_updated_ts` epoch float, `metadata_id` -> `states_meta.entity_id`, `attributes_id` ->
`state_attributes.shared_attrs` JSON with `unit_of_measurement`, `context_user_id_bin` /
`context_parent_id_bin`) and the long-term `statistics` (hourly `mean`, `start_ts`) with `statistics_meta`
(`statistic_id`, `unit_of_measurement`) for sensors, used where the (purged) states no longer reach.

Mapping (`propose_mapping`): a channel rule on `<base>/<friendly name>` field `f` <- `sensor.` /
`binary_sensor.<slug(friendly name)>_<f>` (Zigbee2MQTT's Home Assistant entity ids, aliases tried); a
device <- `light.` / `switch.` / `fan.` / `climate.` / `cover.<slug(friendly name)>`; `--map` adds or
replaces. Values: `on`/`off` -> 1/0; units converted to the kind's unit (°F/K -> °C, kW/mW -> W, klx -> lx);
a fan's `percentage` -> its level; a climate's `temperature` attribute -> the setpoint; `unavailable` /
`unknown` / unparseable states are skipped and counted.

Written like the agent writes: readings one per recording step (event kinds the max, others the last),
device changes on change only (first `initial`; later `person`, or `automation:home-assistant` when HA's
context has a parent: an automation or script did it). Idempotent: a ledger (`agent_state['ha_import']`)
keeps the span written per target, rows already there are skipped, and nothing is written at or after the
first row the agent itself recorded for that target (its own log wins).
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

from edge_agent.catalog import CATALOG_KEY, build_catalog, channel_kinds
from edge_agent.config import AgentConfig, DeviceConfig
from edge_agent.devices import spec_from_config
from edge_agent.ingest import BOOLEAN_KINDS
from edge_agent.kinds import EVENT_KINDS, kind_spec
from edge_agent.recorder import agent_state, device_changes, make_engine, metadata, readings
from edge_agent.zigbee2mqtt import slug

logger = logging.getLogger(__name__)

LEDGER_KEY = "ha_import"
SKIP_STATES = frozenset({"unavailable", "unknown", "", "none"})
HA_SOURCE_AUTOMATION = "automation:home-assistant"
# unit -> (target unit, factor, offset): value * factor + offset
UNIT_CONVERSIONS: dict[str, tuple[str, float, float]] = {
    "°F": ("°C", 5.0 / 9.0, -32.0 * 5.0 / 9.0),
    "K": ("°C", 1.0, -273.15),
    "kW": ("W", 1000.0, 0.0),
    "mW": ("W", 0.001, 0.0),
    "klx": ("lx", 1000.0, 0.0),
    "lux": ("lx", 1.0, 0.0),
}
_DEVICE_DOMAINS = ("light", "switch", "fan", "climate", "cover")


class ImportError_(Exception):
    """Bad input for an import: one line saying what, where and the fix."""


@dataclass(frozen=True)
class Target:
    name: str
    role: str  # channel | device
    kind: str  # channel kind, or device kind (binary | level | setpoint)
    unit: str = ""
    levels: int = 2
    values: tuple[str, ...] = ()  # a level device's payload values (fan modes)


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


def targets_of(cfg: AgentConfig) -> dict[str, Target]:
    kinds = channel_kinds(cfg, None)
    out = {n: Target(n, "channel", k, kind_spec(k).unit) for n, k in kinds.items()}
    for d in cfg.devices:
        spec = spec_from_config(d)
        vals = tuple(str(v) for v in d.values) if d.values else ()
        out[d.name] = Target(d.name, "device", spec.kind, d.unit, spec.levels, vals)
    return out


def _device_domains(d: DeviceConfig) -> tuple[str, ...]:
    kind = d.own_kind()
    if kind == "setpoint":
        return ("cover",) if "position" in d.field else ("climate",)
    if kind == "level":
        return ("fan",)
    return (
        ("light", "switch", "fan")
        if d.field in ("state", "fan_state") or d.field.startswith("state_")
        else ("switch",)
    )


def propose_mapping(cfg: AgentConfig, explicit: dict[str, str] | None = None) -> dict[str, str]:
    """entity_id -> target name (channel or device), from Zigbee2MQTT friendly names; `explicit` wins."""
    prefix = cfg.zigbee2mqtt.base_topic + "/"
    out: dict[str, str] = {}
    for r in cfg.channels:
        if not r.topic.startswith(prefix) or not r.field:
            continue
        base = slug(r.topic[len(prefix) :])
        for f in [r.field, *cfg.field_aliases.get(r.field, [])]:
            for domain in ("binary_sensor", "sensor"):
                out.setdefault(f"{domain}.{base}_{slug(f)}", r.channel)
    for d in cfg.devices:
        if d.state_topic.startswith(prefix):
            base = slug(d.state_topic[len(prefix) :])
            for domain in _device_domains(d):
                out.setdefault(f"{domain}.{base}", d.name)
    if explicit:
        taken = set(explicit.values())
        out = {e: t for e, t in out.items() if t not in taken}  # an explicit entity replaces the proposal
        out.update(explicit)
    return out


def convert(value: float, unit: str | None, want: str) -> float | None:
    """`value` in `unit` -> in `want` (None: a unit that cannot be converted)."""
    unit = (unit or "").strip()
    if not want or not unit or unit == want:
        return value
    conv = UNIT_CONVERSIONS.get(unit)
    if conv is None or conv[0] != want:
        return None
    return value * conv[1] + conv[2]


def state_value(t: Target, domain: str, state: str, attrs: dict[str, Any], temp_unit: str) -> float | None:
    """One HA state -> the target's value (None: not usable)."""
    s = state.strip().lower()
    if t.role == "channel":
        if s in ("on", "off") and (t.kind in BOOLEAN_KINDS or domain == "binary_sensor"):
            return 1.0 if s == "on" else 0.0
        try:
            v = float(state)
        except ValueError:
            return None
        return convert(v, attrs.get("unit_of_measurement"), t.unit) if math.isfinite(v) else None
    if t.kind == "binary":
        return 1.0 if s == "on" else 0.0 if s == "off" else None
    if t.kind == "level":
        if s == "off":
            return 0.0
        lowered = [v.lower() for v in t.values]
        for key in (s, str(attrs.get("preset_mode") or "").lower()):
            if key in lowered:
                return float(lowered.index(key))
        pct = attrs.get("percentage")
        if isinstance(pct, int | float) and s == "on":
            return float(min(max(round(pct / 100.0 * (t.levels - 1)), 1), t.levels - 1))
        return None
    raw = attrs.get("current_position") if domain == "cover" else attrs.get("temperature")
    if not isinstance(raw, int | float) or isinstance(raw, bool) or not math.isfinite(raw):
        return None
    return convert(float(raw), temp_unit if domain == "climate" else "%", t.unit or "")


def open_ha(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise ImportError_(
            f"--db {path}: no such file; give Home Assistant's home-assistant_v2.db (its config folder)"
        )
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as e:
        raise ImportError_(f"--db {path}: not an SQLite database ({e}); give home-assistant_v2.db") from None
    if not {"states", "states_meta", "state_attributes"} <= tables:
        why = (
            "an older schema (before 2023.4)"
            if "states" in tables
            else "not a Home Assistant recorder database"
        )
        raise ImportError_(
            f"--db {path}: {why}: no states_meta table; open it once with a current Home Assistant to migrate"
        )
    con.row_factory = sqlite3.Row
    return con


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
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    out: dict[str, list[sqlite3.Row]] = defaultdict(list)
    if not {"statistics", "statistics_meta"} <= tables:
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
            raise ImportError_(
                f"--map {e}={t}: {t!r} is neither a configured channel nor a device; fix the name"
            )
    con = open_ha(db)
    try:
        states = read_states(con, list(mapping))
        stats = read_statistics(con, list(mapping))
    except sqlite3.DatabaseError as e:
        raise ImportError_(
            f"--db {db}: cannot read ({e}); is it intact (copy it while Home Assistant is stopped)?"
        ) from None
    finally:
        con.close()
    report = ImportReport()
    found = set(states) | set(stats)
    by_target: dict[str, list[str]] = defaultdict(list)
    for entity_id, tname in mapping.items():
        if entity_id in found:
            by_target[tname].append(entity_id)
    report.unmatched_targets = sorted(t for t in targets if t not in by_target)
    step = cfg.learning.recording_step_seconds
    engine = make_engine(url)
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            ledger = _get_state(conn, LEDGER_KEY) or {}
            if _get_state(conn, CATALOG_KEY) is None:
                conn.execute(insert(agent_state), [_state_row(CATALOG_KEY, build_catalog(cfg, None))])
                report.catalog_written = True
            for tname, entities in sorted(by_target.items()):
                target = targets[tname]
                for entity in sorted(entities)[:1]:  # one entity per target (the first that exists)
                    rep = EntityReport(entity, tname)
                    series = _series(
                        target, entity, states.get(entity, []), stats.get(entity, []), temp_unit, rep
                    )
                    rows = (
                        _downsample(series, step, target.kind in EVENT_KINDS)
                        if target.role == "channel"
                        else _changes(series)
                    )
                    span = _write(conn, target, rows, ledger.get(tname), rep)
                    if span is not None:
                        ledger[tname] = span
                    report.entities.append(rep)
                for other in sorted(entities)[1:]:
                    logger.warning(
                        "import-ha: %s also maps to %s; only %s is read", other, tname, sorted(entities)[0]
                    )
            _set_state(conn, LEDGER_KEY, ledger)
    finally:
        engine.dispose()
    return report


def _series(
    t: Target, entity: str, st: list[sqlite3.Row], sta: list[sqlite3.Row], temp_unit: str, rep: EntityReport
) -> list[tuple[float, float, bool]]:
    """(ts, value, by_automation) in time order: the hourly statistics before the first state, then states."""
    domain = entity.split(".", 1)[0]
    first = float(st[0]["ts"]) if st else math.inf
    out: list[tuple[float, float, bool]] = []
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
        v = state_value(t, domain, state, _attrs(r["attrs"]), temp_unit)
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
