"""Command line: `edge-agent run | check-config | status | export-history | demo`, `train | model`
(edge_agent.cli_model), `explain` (edge_agent.cli_explain), `discover` (edge_agent.cli_discover), `import-ha`
(edge_agent.cli_import_ha) and `mode | suggest` (edge_agent.cli_control).

Bad input (config, bundle, database) is one clear message on stderr and exit code 2, never a traceback.
`run` stays in the foreground, logs to stderr, and stops cleanly on SIGTERM/SIGINT (recorder flushed,
`offline` published). `status` reads the retained stats topic, or falls back to the database.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from edge_agent import (
    cli_control,
    cli_discover,
    cli_explain,
    cli_import_ha,
    cli_model,
    cli_retrain,
    cli_shadow,
)
from edge_agent.cli_common import EXIT_BAD_INPUT, config_or_none, fail
from edge_agent.cli_history import add_parser as add_export_history_parser
from edge_agent.cli_history import cmd_export_history
from edge_agent.config import AgentConfig, ConfigError, redacted_dump
from edge_agent.logsetup import add_secret, setup_logging

logger = logging.getLogger(__name__)


STATUS_SECONDS = 10.0  # how often `systemctl status` gets a fresh STATUS= line


def _setup_logging(level: str) -> None:
    """Terminal: timestamped lines; under systemd: `<N>` priorities, no timestamp (edge_agent.logsetup)."""
    setup_logging(level)


def _status_line(agent: Any) -> str:
    link = "connected" if agent.link.connected.is_set() else "disconnected"
    return (
        f"mqtt {link}; model {agent.controller.version}; tier {agent.controller.tier}; mode {agent.controller.modes.global_mode}; "
        f"decisions {agent.counters.decisions}; commands {agent.counters.commands}"
    )


def cmd_run(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from edge_agent.agent import Agent
    from edge_agent.inference import BundleError
    from edge_agent.service_notify import ServiceNotifier
    from edge_agent.statelock import StateLockError

    cfg = config_or_none(args.config)
    if cfg is None:
        return EXIT_BAD_INPUT
    _setup_logging(args.log_level or cfg.log_level)
    if cfg.broker.password is not None:
        add_secret(cfg.broker.password.get_secret_value())
    notifier = ServiceNotifier()  # no-op unless systemd set $NOTIFY_SOCKET
    notifier.status(f"loading bundle {cfg.bundle}")
    try:
        agent = Agent(cfg)
    except BundleError as e:
        notifier.status(f"bundle error: {e}")
        return fail(f"bundle error: {e}")
    except ConfigError as e:  # a config that only the bundle shows to be wrong (e.g. too few level values)
        return fail(f"config error:\n{e}")
    except (SQLAlchemyError, OSError) as e:
        return fail(
            f"cannot open the database {redacted_dump(cfg)['database_url']} ({e.__class__.__name__}: "
            f"{str(e).splitlines()[0]}); fix recorder.database_url or the state_dir permissions"
        )
    stop = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        logger.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)  # no config reload yet: stop cleanly (flush, offline), not die
    agent.heartbeat_hooks.append(notifier.ping)  # WATCHDOG=1 from the decider loop, rate-limited
    where = f"{cfg.broker.host}:{cfg.broker.port}"

    def _announce_ready() -> None:
        while not stop.is_set():
            if agent.ready.wait(0.5):
                notifier.ready(f"connected to {where}; {_status_line(agent)}")
                logger.info("service ready: model %s, broker %s connected", agent.controller.version, where)
                return

    notifier.status(f"model {agent.controller.version}; waiting for the broker at {where}")
    try:
        agent.start()
    except StateLockError as e:
        agent.recorder.close()
        notifier.close()
        return fail(str(e))
    threading.Thread(target=_announce_ready, name="sd-ready", daemon=True).start()
    next_status = time.monotonic() + STATUS_SECONDS
    while not stop.wait(0.5):
        if notifier.enabled and agent.ready.is_set() and time.monotonic() >= next_status:
            next_status = time.monotonic() + STATUS_SECONDS
            notifier.status(_status_line(agent))
    notifier.stopping("stopping: flushing the recorder")
    agent.stop()
    notifier.close()
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from edge_agent.devices import build_devices
    from edge_agent.inference import Bundle, BundleError

    cfg = config_or_none(args.file)
    if cfg is None:
        return EXIT_BAD_INPUT
    problems = []
    path = cfg.bundle_path()
    if path is None:
        print(yaml.safe_dump(redacted_dump(cfg), sort_keys=False, allow_unicode=True), end="")
        print(
            f"# config OK; no bundle (none set, none in {cfg.bundle_store}): the agent will observe and record "
            "until a first model is trained (`edge-agent train`)",
            file=sys.stderr,
        )
        return 0
    try:
        bundle = Bundle.load(path)
    except BundleError as e:
        return fail(f"bundle error: {e}")
    known = set(bundle.manifest.channel_index())
    devices = {d.name for d in bundle.manifest.devices}
    for i, r in enumerate(cfg.channels):
        if r.channel not in known:
            problems.append(
                f"channels[{i}].channel: {r.channel!r} is not in the bundle (has {sorted(known)})"
            )
    for i, d in enumerate(cfg.devices):
        if d.name not in devices:
            problems.append(
                f"devices[{i}].name: {d.name!r} is not decided by the bundle (has {sorted(devices)})"
            )
    print(yaml.safe_dump(redacted_dump(cfg), sort_keys=False, allow_unicode=True), end="")
    try:
        build_devices(cfg, bundle.manifest)
    except ConfigError as e:
        return fail(f"config error:\n{e}")
    for p in problems:
        print(f"warning: {p}", file=sys.stderr)
    print(f"# config OK; bundle {bundle.version} verified ({len(bundle.tiers)} tiers)", file=sys.stderr)
    return 0


def _stats_from_broker(cfg: AgentConfig, timeout: float) -> tuple[dict[str, Any] | None, str | None]:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    topics = cfg.topics()
    got: dict[str, Any] = {}
    done = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    b = cfg.broker
    if b.username:
        c.username_pw_set(b.username, b.password.get_secret_value() if b.password else None)
    if b.tls is not None:
        c.tls_set(
            ca_certs=str(b.tls.ca_file) if b.tls.ca_file else None,
            certfile=str(b.tls.cert_file) if b.tls.cert_file else None,
            keyfile=str(b.tls.key_file) if b.tls.key_file else None,
        )

    def _on_msg(_c: Any, _u: Any, msg: Any) -> None:
        got[msg.topic] = msg.payload
        if topics["stats"] in got and topics["availability"] in got:
            done.set()

    c.on_message = _on_msg
    c.on_connect = lambda cl, *_: cl.subscribe([(topics["stats"], 0), (topics["availability"], 0)])
    try:
        c.connect(b.host, b.port, keepalive=10)
    except OSError:
        return None, None
    c.loop_start()
    done.wait(timeout)
    c.loop_stop()
    c.disconnect()
    stats = None
    if topics["stats"] in got:
        try:
            stats = json.loads(got[topics["stats"]])
        except ValueError:
            stats = None
    avail = got.get(topics["availability"])
    return stats, avail.decode(errors="replace") if avail is not None else None


def _state_from_db(cfg: AgentConfig) -> dict[str, Any] | None:
    from sqlalchemy import func, select
    from sqlalchemy.exc import SQLAlchemyError

    from edge_agent.recorder import decisions, make_engine, overrides, tier_changes

    url = cfg.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None
    try:
        eng = make_engine(url)
        with eng.connect() as c:
            last = c.execute(
                select(decisions.c.device, func.max(decisions.c.ts)).group_by(decisions.c.device)
            ).all()
            devs = {}
            for dev, ts in last:
                row = (
                    c.execute(select(decisions).where(decisions.c.device == dev, decisions.c.ts == ts))
                    .mappings()
                    .first()
                )
                devs[dev] = dict(row) if row else {}
            n_over = c.execute(select(func.count()).select_from(overrides)).scalar()
            tier = (
                c.execute(select(tier_changes).order_by(tier_changes.c.ts.desc()).limit(1)).mappings().first()
            )
        eng.dispose()
    except SQLAlchemyError:
        return None
    return {"devices": devs, "overrides": n_over, "last_tier_change": dict(tier) if tier else None}


def liveness(stats: dict[str, Any], avail: str | None, cfg: AgentConfig, now: float) -> str:
    """'online' only when the availability topic says so AND the retained stats are recent: a retained
    stats message outlives its agent (or can be spoofed), so its age is checked against the stats period."""
    if avail != "online":
        return f"offline (availability: {avail or 'none'})"
    t = stats.get("time")
    if not isinstance(t, int | float):
        return "unknown (the stats carry no time)"
    age = now - float(t)
    if age > max(30.0, 3 * cfg.stats_interval_seconds):
        return f"not running? (last stats {age:.0f}s old, availability says online)"
    return "online"


def cmd_status(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    cfg = config_or_none(args.config)
    if cfg is None:
        return EXIT_BAD_INPUT
    console = Console()
    stats, avail = _stats_from_broker(cfg, args.timeout)
    if stats is not None:
        t = Table(
            title=f"edge-agent {cfg.agent_id}: {liveness(stats, avail, cfg, time.time())} (from the stats topic)"
        )
        t.add_column("metric")
        t.add_column("value")
        for k in (
            "tier",
            "mode",
            "model_version",
            "connected",
            "msgs_per_s",
            "received",
            "invalid",
            "unknown_topic",
            "dropped",
            "queue_depth",
            "decisions",
            "commands",
            "overrides",
            "latency_ms_p50",
            "latency_ms_p99",
            "cpu_percent",
            "rss_mb",
            "uptime_s",
        ):
            t.add_row(k, str(stats.get(k)))
        for k in ("pause_learning", "pause_control"):
            t.add_row(k, "ON" if stats.get(k) else "OFF")
        console.print(t)
        _print_devices(console, stats)
        return 0
    db = _state_from_db(cfg)
    if db is None:
        print(
            f"edge-agent: no stats on {cfg.broker.host}:{cfg.broker.port} and no database at "
            f"{redacted_dump(cfg)['database_url']}; is the agent running?",
            file=sys.stderr,
        )
        return 1
    t = Table(
        title=f"edge-agent {cfg.agent_id}: broker unreachable or no stats; last state from the database"
    )
    for col in ("device", "time", "value", "mode", "tier", "reason", "sent"):
        t.add_column(col)
    for dev, r in sorted(db["devices"].items()):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.get("ts", 0)))
        t.add_row(
            dev,
            when,
            f"{r.get('target')}",
            str(r.get("mode")),
            str(r.get("tier")),
            str(r.get("reason")),
            str(r.get("sent")),
        )
    console.print(t)
    console.print(f"overrides recorded: {db['overrides']}; last tier change: {db['last_tier_change']}")
    return 0


def _print_devices(console: Any, stats: dict[str, Any]) -> None:
    """Per device: effective mode, what readiness allows and why, labels collected and in the model."""
    from rich.table import Table

    devices = stats.get("devices")
    if isinstance(devices, dict) and devices:
        t = Table(title="devices: readiness")
        for col in (
            "device",
            "mode",
            "may enter",
            "labels collected",
            "model: labels",
            "held-out agreement",
            "why",
        ):
            t.add_column(col)
        for name, v in sorted(devices.items()):
            if not isinstance(v, dict):
                continue
            agree = v.get("agreement")
            t.add_row(
                name,
                str(v.get("mode")),
                str(v.get("max_mode")),
                str(v.get("labels_collected")),
                "-" if v.get("label_events") is None else str(v.get("label_events")),
                "-" if not isinstance(agree, int | float) else f"{agree:.1%}",
                str(v.get("reason")),
            )
        console.print(t)
    extra = stats.get("unmodelled_channels")
    if extra:
        console.print(
            f"channels recorded but not in the model (inputs at the next training): {', '.join(extra)}"
        )
    from edge_agent.z2m_follow import status_lines

    for line in status_lines(stats.get("zigbee2mqtt")):
        console.print(line, markup=False)


def cmd_demo(argv: list[str]) -> int:
    try:
        from simhome import demo  # the simulator is not part of the daemon: loaded only here
    except ImportError as e:
        return fail(f"the demo is not available in this build ({e})")
    return int(demo.main(argv) or 0)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edge-agent", description="Smart-home controller with an attention model"
    )
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the agent in the foreground")
    r.add_argument("--config", required=True, help="YAML config file")
    r.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="override log_level")
    c = sub.add_parser(
        "check-config", help="validate a config (and its bundle), print it with secrets redacted"
    )
    c.add_argument("file", help="YAML config file")
    s = sub.add_parser("status", help="show the running agent's state (stats topic, else the database)")
    s.add_argument("--config", required=True, help="YAML config file")
    s.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the retained stats")
    add_export_history_parser(sub)
    sub.add_parser(
        "demo", help="simulated home + agent + live view (options: edge-agent demo --help)", add_help=False
    )
    handlers = cli_model.add_parsers(sub)
    handlers.update(cli_explain.add_parser(sub))  # explain (plots from the log)
    handlers.update(cli_discover.add_parsers(sub))  # discover (Zigbee2MQTT)
    handlers.update(cli_import_ha.add_parsers(sub))  # import-ha (Home Assistant history)
    handlers.update(cli_control.add_parsers(sub))  # mode | suggest (what HA's entities send)
    handlers.update(cli_retrain.add_parser(sub))  # retrain now
    handlers.update(cli_shadow.add_parser(sub))  # shadow-score: shadow decisions vs the person
    p.set_defaults(model_handlers=handlers)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "demo":
        return cmd_demo(argv[1:])
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on bad usage already; keep its code
        return int(e.code or 0)
    handlers = {
        "run": cmd_run,
        "check-config": cmd_check_config,
        "status": cmd_status,
        "export-history": cmd_export_history,
        **args.model_handlers,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
