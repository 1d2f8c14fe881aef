"""`edge-agent shadow-score --config FILE [--days N] [--json]`: shadow decisions beside what the person did.

Per device with shadow decisions in the span (edge_agent.shadow_score): the would-be commands and how many the
person then confirmed, contradicted or left unanswered (precision), and the person's own changes the shadow
decision before them anticipated (recall). Exit 0 (also with nothing to score: it says so), 2 for a bad
config or an unreadable database.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from edge_agent.cli_common import EXIT_BAD_INPUT, config_or_none, fail


def add_parser(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = sub.add_parser(
        "shadow-score",
        help="how the shadow decisions compare with what the person then did, per device",
    )
    p.add_argument("--config", required=True, help="YAML config file")
    p.add_argument("--days", type=float, default=None, help="days of the log (default: the config's)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    return {"shadow-score": cmd_shadow_score}


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:5.1f} %"


def cmd_shadow_score(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from edge_agent.shadow_report import compute

    cfg = config_or_none(args.config)
    if cfg is None:
        return EXIT_BAD_INPUT
    if args.days is not None and args.days <= 0:
        return fail(f"--days {args.days:g}: give a positive number of days, e.g. --days 7")
    days = args.days if args.days is not None else cfg.learning.shadow_score.days
    try:
        scores = compute(cfg, time.time(), days)
    except SQLAlchemyError as e:
        return fail(
            f"cannot read the database {cfg.database_url.split('@')[-1]} "
            f"({str(e).splitlines()[0][:160]}); check recorder.database_url"
        )
    if args.json:
        print(json.dumps({dev: s.as_dict() for dev, s in scores.items()}, sort_keys=True))
        return 0
    horizon = cfg.learning.shadow_score.horizon_seconds
    if not scores:
        print(f"no shadow decisions in the last {days:g} days (a device in shadow mode makes them)")
        return 0
    print(f"shadow decisions of the last {days:g} days against the person's next change within {horizon:g} s")
    print(
        f"{'device':<28} {'would':>6} {'confirmed':>9} {'contra':>6} {'unans':>6} {'precision':>9}"
        f" {'changes':>7} {'anticip':>7} {'recall':>8}"
    )
    for dev, s in scores.items():
        print(
            f"{dev:<28} {s.would_commands:>6} {s.confirmed:>9} {s.contradicted:>6} {s.unanswered:>6}"
            f" {_pct(s.precision):>9} {s.person_changes:>7} {s.anticipated:>7} {_pct(s.recall):>8}"
        )
    return 0
