"""Command line for models: `edge-agent train`, `edge-agent model import | list | rollback`.

`train` runs the training child (edge_agent.trainjob) on the home's own log, prints its progress lines and
the result (version, per-device metrics), and installs the bundle into the store, where the running daemon
picks it up. `model import DIR` installs a bundle trained elsewhere; `model list` shows the store; `model
rollback VERSION` serves an earlier version again. Bad input is one line and exit 2; a training that fails
(crash, timeout, out of memory, refused bundle) is one line and exit 1; the bundle in service stays.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable

from edge_agent.cli_common import EXIT_BAD_INPUT, EXIT_FAILED, config_or_none, fail
from edge_agent.config import AgentConfig

logger = logging.getLogger(__name__)

NOISE = ("INFO root:",)  # onnxruntime's quantizer logs every tensor it skips on the root logger
BAD_INPUT_OUTCOMES = {"no torch", "not enough data", "bad input", "busy"}


def add_parsers(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Register `train` and `model` on the main parser's subcommands; returns their handlers."""
    t = sub.add_parser("train", help="train a model on the home's own log and install it (lowest priority)")
    t.add_argument("--config", required=True, help="YAML config file")
    t.add_argument(
        "--dataset",
        default=None,
        help="train on another dataset than the home's log (default db:<database_url>), e.g. a CSV path",
    )
    t.add_argument("--quiet", action="store_true", help="no progress lines, only the result")
    m = sub.add_parser("model", help="the bundle store: import, list, rollback")
    msub = m.add_subparsers(dest="model_command", required=True)
    i = msub.add_parser("import", help="install a bundle trained elsewhere and serve it")
    i.add_argument("dir", help="bundle directory (manifest.json + ONNX tiers)")
    i.add_argument("--config", required=True, help="YAML config file")
    ls = msub.add_parser("list", help="versions in the store (the one in service marked *)")
    ls.add_argument("--config", required=True, help="YAML config file")
    r = msub.add_parser("rollback", help="serve an earlier version again (default: the previous one)")
    r.add_argument(
        "version", nargs="?", default=None, help="version directory name, as `model list` shows it"
    )
    r.add_argument("--config", required=True, help="YAML config file")
    return {"train": cmd_train, "model": cmd_model}


def cmd_train(args: argparse.Namespace) -> int:
    from edge_agent.trainjob import TrainJob

    cfg = config_or_none(args.config)
    if cfg is None:
        return EXIT_BAD_INPUT
    t = cfg.learning.train
    t0 = time.monotonic()

    def line(text: str) -> None:
        if not args.quiet and not text.startswith(NOISE):
            print(f"[{time.monotonic() - t0:6.1f}s] {text}", flush=True)

    data = (
        f"the home's log ({t.history_days:g} days, the last {t.holdout_days:g} held out)"
        if args.dataset is None
        else args.dataset
    )

    def started(pid: int) -> None:
        if not args.quiet:
            print(
                f"training started (pid {pid}) on {data}: budget {t.budget_seconds:.0f}s, memory {t.memory_mb} MB",
                flush=True,
            )

    job = TrainJob(cfg, dataset=args.dataset, on_line=line, on_start=started)
    result = job.run()
    if not result.ok:
        code = EXIT_BAD_INPUT if result.outcome in BAD_INPUT_OUTCOMES else EXIT_FAILED
        fail(result.message)
        return code
    assert result.info is not None and result.manifest is not None
    rss = f", peak RSS {result.peak_rss_mb:.0f} MB" if result.peak_rss_mb else ""
    print(f"trained {result.manifest.version} in {result.seconds:.0f}s{rss} ({', '.join(result.priority)})")
    _print_installed(cfg, result.info.name, result.info.metrics)
    return 0


def _print_installed(cfg: AgentConfig, name: str, metrics: dict[str, dict[str, float]]) -> None:
    from edge_agent.bundlestore import BundleStore

    print(
        f"installed {name} into {cfg.bundle_store}: now current (a running agent swaps it in within seconds)"
    )
    for dev, ms in sorted(metrics.items()):
        print(f"  {dev}: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(ms.items())))
    if not metrics:
        print("  (the manifest carries no per-device metrics)")
    removed = BundleStore(cfg.bundle_store).prune(cfg.learning.train.keep_versions)
    if removed:
        print(
            f"pruned {', '.join(removed)} (learning.train.keep_versions: {cfg.learning.train.keep_versions})"
        )


def cmd_model(args: argparse.Namespace) -> int:
    from edge_agent.bundlestore import BundleStore, StoreError

    cfg = config_or_none(args.config)
    if cfg is None:
        return EXIT_BAD_INPUT
    store = BundleStore(cfg.bundle_store, threads=cfg.process.inference_threads)
    try:
        if args.model_command == "import":
            info = store.install(args.dir, source="import")
            print(f"imported {info.version}")
            _print_installed(cfg, info.name, info.metrics)
        elif args.model_command == "rollback":
            from edge_agent.retrain_service import previous_version

            target = args.version or previous_version(store)
            if target is None:
                return fail(
                    f"no earlier version in {cfg.bundle_store} to roll back to; `edge-agent model list`"
                )
            info = store.rollback(target)
            print(f"current is now {info.name} ({info.version}); a running agent swaps it in within seconds")
        else:
            _list(cfg, store)
    except StoreError as e:
        return fail(str(e))
    if cfg.bundle is not None and args.model_command != "list":
        print(
            f"note: the config sets bundle: {cfg.bundle}, so the agent serves that one, not the store's current; "
            "remove bundle: to serve the store's",
            file=sys.stderr,
        )
    return 0


def _list(cfg: AgentConfig, store: object) -> None:
    from rich.console import Console
    from rich.table import Table

    from edge_agent.bundlestore import BundleStore

    assert isinstance(store, BundleStore)
    versions = store.versions()
    if not versions:
        print(f"no versions in {cfg.bundle_store}; `edge-agent train` or `edge-agent model import DIR`")
        return
    table = Table(title=f"bundle store {cfg.bundle_store}")
    for col in ("", "version", "created", "installed", "source", "parent", "outcome", "metrics"):
        table.add_column(col)
    for v in versions:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(v.installed_at)) if v.installed_at else ""
        table.add_row(
            "*" if v.current else "",
            v.name,
            v.created,
            when,
            v.source,
            v.parent or "",
            v.outcome,
            v.problem or v.summary(),
        )
    Console(width=200).print(table)
