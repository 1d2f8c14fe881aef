"""`edge-agent explain`: why a device did what it did, from the log, as text and (with matplotlib) a PNG.

    edge-agent explain --config FILE --device NAME [--since 24h|all|YYYY-MM-DD] [--until ...] [--out FILE.png]

The text summary (`edge_agent.explain`) is always printed on stdout; `--out` also renders the picture
(`edge_agent.explain_plot`, the optional extra `plots`). `--since` / `--until` take the forms of
`export-history` (`24h`, `7d`, a local date or date-time), `--since all` the whole log. Exit codes: 0 done;
1 nothing recorded for the device in the span (the line says what the log holds); 2 bad input (config,
database, unknown device, bad span, unwritable --out) or matplotlib missing for --out — one line on stderr,
never a traceback.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from edge_agent.cli_common import EXIT_BAD_INPUT, config_or_none, fail, parse_span

EXIT_EMPTY = 1


def add_parser(sub: Any) -> dict[str, Any]:
    """Register `explain` on the main parser's subcommands; returns its handler."""
    e = sub.add_parser("explain", help="why a device did what it did: text summary and a PNG (--out)")
    e.add_argument("--config", required=True, help="YAML config file (its database is read)")
    e.add_argument("--device", required=True, help="device name, e.g. living.light")
    e.add_argument(
        "--since",
        default="24h",
        help="start: 24h, 7d, a local date 2024-06-30 or date-time, or all (default 24h)",
    )
    e.add_argument("--until", help="end (exclusive), same forms (default: now)")
    e.add_argument("--out", help="PNG file to write (needs the extra: pip install 'edge-agent[plots]')")
    return {"explain": cmd_explain}


def cmd_explain(args: argparse.Namespace) -> int:
    from edge_agent.explain import ExplainError, NothingRecorded, explain
    from edge_agent.explain_plot import PlotError, PlotUnavailable, render
    from edge_agent.logsetup import setup_logging

    cfg = config_or_none(args.config)
    if cfg is None:
        return EXIT_BAD_INPUT
    setup_logging("WARNING")
    out = Path(args.out) if args.out else None
    if out is not None and (out.is_dir() or out.suffix.lower() != ".png"):
        return fail(f"--out {out}: give a PNG file path, e.g. {out.with_suffix('.png').name}")
    try:
        since, until = parse_span(
            None if args.since == "all" else args.since, args.until, time.time(), cfg.timezone
        )
    except ValueError as e:
        return fail(str(e))
    try:
        exp = explain(
            cfg.database_url,
            args.device,
            since=since,
            until=until,
            configured=[d.name for d in cfg.devices],
            timezone=cfg.timezone,
        )
    except NothingRecorded as e:
        return fail(str(e), EXIT_EMPTY)
    except ExplainError as e:
        return fail(str(e))
    print(exp.summary(), flush=True)
    if out is None:
        return 0
    try:
        path = render(exp, out)
    except (PlotUnavailable, PlotError) as e:
        return fail(str(e))
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
    return 0
