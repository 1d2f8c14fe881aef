"""`edge-agent import-ha`: Home Assistant's recorder history into the agent's log (edge_agent.ha_import).

    edge-agent import-ha --db home-assistant_v2.db --config FILE [--map ENTITY=TARGET ...] [--csv OUT]
                         [--temperature-unit C|F] [--dry-run]

Without --csv the rows go into the agent's database (recorder.database_url); with --csv into a temporary
log that is written as the generic CSV + sidecar (the agent's database is not touched). --dry-run prints
the proposed entity -> channel/device mapping only. Bad input is one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_agent.cli_common import EXIT_BAD_INPUT, config_or_none, fail


def add_parsers(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = sub.add_parser(
        "import-ha", help="import Home Assistant's history (recorder database) as a head start"
    )
    p.add_argument("--db", required=True, help="Home Assistant's home-assistant_v2.db (SQLite; read only)")
    p.add_argument(
        "--config", required=True, help="YAML config file (channels, devices, the agent's database)"
    )
    p.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="ENTITY=TARGET",
        help="map an entity to a channel or device, e.g. sensor.lounge_temp=living.temperature (repeatable)",
    )
    p.add_argument("--csv", help="write the generic CSV + sidecar here instead of into the agent's database")
    p.add_argument(
        "--temperature-unit",
        choices=["C", "F"],
        default="C",
        help="Home Assistant's unit for climate setpoints",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print the mapping found in the database, import nothing"
    )
    return {"import-ha": cmd_import_ha}


def parse_maps(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        entity, sep, target = item.partition("=")
        entity, target = entity.strip(), target.strip()
        if not sep or "." not in entity or not target:
            raise ValueError(
                f"--map {item!r}: write ENTITY=TARGET, e.g. sensor.lounge_temp=living.temperature"
            )
        out[entity] = target
    return out


def cmd_import_ha(args: argparse.Namespace) -> int:
    from edge_agent.ha_import import import_ha
    from edge_agent.ha_mapping import propose_mapping
    from edge_agent.ha_recorder import HaImportError, known_entities, open_ha
    from edge_agent.history import HistoryError, load_history
    from edge_agent.history_csv import write_history_csv
    from edge_agent.logsetup import setup_logging

    cfg = config_or_none(args.config)
    if cfg is None:
        return EXIT_BAD_INPUT
    setup_logging("WARNING")
    try:
        explicit = parse_maps(args.map)
    except ValueError as e:
        return fail(str(e))
    mapping = propose_mapping(cfg, explicit)
    db = Path(args.db)
    unit = "°F" if args.temperature_unit == "F" else "°C"
    if args.dry_run:
        try:
            con = open_ha(db)
            known = known_entities(con, list(mapping))
            con.close()
        except HaImportError as e:
            return fail(str(e))
        for entity, target in sorted(mapping.items(), key=lambda x: x[1]):
            if entity in known:
                print(f"{entity} -> {target}")
        return 0
    try:
        if args.csv:
            out = Path(args.csv)
            if out.is_dir():
                return fail(f"--csv {out}: is a directory; give a CSV file path")
            with tempfile.TemporaryDirectory(prefix="edge-agent-ha-") as tmp:
                url = f"sqlite:///{Path(tmp) / 'import.db'}"
                report = import_ha(cfg, db, url, mapping, unit)
                if report.written == 0:
                    return fail(
                        f"--db {db}: no usable rows for the configured channels and devices (try --map)"
                    )
                hist = load_history(url)
                path, _, _ = write_history_csv(hist, out)
            where = f"{path} ({len(hist)} rows of {hist.step:g}s)"
        else:
            report = import_ha(cfg, db, cfg.database_url, mapping, unit)
            where = cfg.database_url
    except (HaImportError, HistoryError) as e:
        return fail(str(e))
    for r in report.entities:
        print(
            f"{r.entity} -> {r.target}: {r.written} rows written ({r.states} states, {r.statistics} hourly "
            f"statistics; skipped: {r.skipped_unavailable} unavailable/unknown, {r.skipped_unparseable} "
            f"unusable, {r.skipped_present} already in the log)"
        )
    if report.unmatched_targets:
        print(
            f"no Home Assistant entity found for: {', '.join(report.unmatched_targets)} (use --map ENTITY=TARGET)"
        )
    print(f"imported {report.written} rows into {where}")
    return 0
