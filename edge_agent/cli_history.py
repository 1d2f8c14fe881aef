"""`edge-agent export-history`: the home's log as the generic CSV + sidecar, to train on another machine.

    edge-agent export-history --config FILE [--since 30d|YYYY-MM-DD] [--until ...] --out h.csv
                              [--labels preference|naive] [--step SECONDS]

`--since`/`--until`: `30d` / `12h` (that long before now), a local date `2024-06-30` (midnight in the
home's zone) or a local date-time `2024-06-30T18:00`. Bad input (config, no database, no catalog, empty
span, unwritable --out) is one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any

from edge_agent.cli_common import EXIT_BAD_INPUT, config_or_none, fail, parse_span

logger = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    e = sub.add_parser(
        "export-history", help="write the home's log as the generic CSV + sidecar (training data)"
    )
    e.add_argument("--config", required=True, help="YAML config file (its database is read)")
    e.add_argument("--since", help="start: 30d, 12h, a local date 2024-06-30 or date-time (default: all)")
    e.add_argument("--until", help="end (exclusive), same forms (default: now)")
    e.add_argument("--out", required=True, help="CSV file to write (the sidecar goes next to it)")
    e.add_argument(
        "--labels",
        choices=["preference", "naive"],
        default="preference",
        help="preference: what the person wanted (+ <device>.state inputs); naive: the state in effect",
    )
    e.add_argument("--step", type=float, default=None, help="grid step in seconds (default: the catalog's)")


def cmd_export_history(args: argparse.Namespace) -> int:
    from edge_agent.history import HistoryError, load_history
    from edge_agent.history_csv import sidecar_path, write_history_csv
    from edge_agent.logsetup import setup_logging

    cfg = config_or_none(args.config)
    if cfg is None:
        return EXIT_BAD_INPUT
    setup_logging("WARNING")
    if args.step is not None and not 1 <= args.step <= 86400:
        return fail(f"--step {args.step:g}: must be between 1 and 86400 seconds (e.g. 60)")
    out = Path(args.out)
    if out.is_dir():
        return fail(f"--out {out}: is a directory; give a CSV file path, e.g. {out / 'history.csv'}")
    try:
        since, until = parse_span(args.since, args.until, time.time(), cfg.timezone)
    except ValueError as e:
        return fail(str(e))
    try:
        hist = load_history(cfg.database_url, since=since, until=until, step=args.step, labels=args.labels)
        path, side, sc = write_history_csv(hist, out)
    except HistoryError as e:
        return fail(str(e))
    first = dt.datetime.fromtimestamp(float(hist.times[0]), dt.UTC).isoformat(timespec="minutes")
    last = dt.datetime.fromtimestamp(float(hist.times[-1]), dt.UTC).isoformat(timespec="minutes")
    per_dev = ", ".join(
        f"{d.name} {int(hist.labels.events[k])} events/{int(hist.labels.labelled[k])} rows"
        for k, d in enumerate(hist.devices)
    )
    print(
        f"wrote {path} and {sidecar_path(path).name}: {len(hist)} rows of {hist.step:g}s from {first} to "
        f"{last} UTC, {len(sc.channel_columns())} channels, {len(sc.device_columns())} devices "
        f"({hist.mode} labels: {per_dev or 'none'})"
    )
    return 0
