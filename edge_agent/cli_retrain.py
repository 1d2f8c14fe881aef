"""`edge-agent retrain --config FILE`: one retrain now (edge_agent.retrain), the same as the nightly one.

Prints the training child's progress lines (unless --quiet) and one result line: promoted (the running
daemon swaps it in within seconds), kept (the gate's reason), skipped (too few new labels, or another retrain
is running) or failed (crash, timeout, killed, refused; the model in service stays). Exit 0 for promoted,
kept and skipped; 1 for failed; 2 for a bad config.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from edge_agent.cli_common import EXIT_BAD_INPUT, EXIT_FAILED, config_or_none, fail


def add_parser(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    r = sub.add_parser(
        "retrain",
        help="retrain now from the logged preferences; promote only if it beats the model in service",
    )
    r.add_argument("--config", required=True, help="YAML config file")
    r.add_argument("--quiet", action="store_true", help="no progress lines, only the result")
    return {"retrain": cmd_retrain}


def cmd_retrain(args: argparse.Namespace) -> int:
    from edge_agent.cli_model import NOISE
    from edge_agent.retrain import Retrainer

    cfg = config_or_none(args.config)
    if cfg is None:
        return EXIT_BAD_INPUT
    t0 = time.monotonic()

    def line(text: str) -> None:
        if not args.quiet and not text.startswith(NOISE):
            print(f"[{time.monotonic() - t0:6.1f}s] {text}", flush=True)

    def started(pid: int) -> None:
        if not args.quiet:
            print(f"retrain: training the challenger (pid {pid}, lowest priority)", flush=True)

    r = Retrainer(cfg, on_line=line, on_start=started).run("manual")
    versions = f"champion {r.champion or 'none'}" + (f", challenger {r.challenger}" if r.challenger else "")
    if r.outcome == "failed":
        fail(f"retrain failed ({versions}): {r.reason}")
        return EXIT_FAILED
    print(f"retrain {r.outcome} in {r.seconds:.0f}s ({versions}): {r.reason}")
    verdict = r.detail.get("verdict")
    if isinstance(verdict, dict):
        for dev, s in sorted(verdict.get("devices", {}).items()):
            champ = "-" if s["champion"] is None else f"{s['champion']:.3f}"
            chal = "-" if s["challenger"] is None else f"{s['challenger']:.3f}"
            print(f"  {dev}: champion {champ}, challenger {chal} ({s['labels']} held-out labels)")
    return 0
