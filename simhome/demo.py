"""`edge-agent demo`: a private broker, the simulated home and the agent in `auto` mode, shown live.

Everything runs on a shared, accelerated simulation clock (`--speed` simulated seconds per real second):
the simulated home publishes Zigbee2MQTT-style messages, the agent decides with the committed int8 demo
bundle (no torch), the simulated person overrides commands they disagree with. A rich live view shows the
devices, the last decisions with their top attention channels, the tier and the overrides; at the end a
summary: decisions, commands, overrides, and agreement with the person's hidden preference, then why one
light did what it did (`simhome.demo_explain`: the summary line, and a PNG when matplotlib is installed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import tempfile
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from edge_agent.agent import Agent
from edge_agent.config import ConfigError
from edge_agent.inference import BundleError
from simhome.config import simhome_config
from simhome.demo_explain import explain_lights
from simhome.driver import SimHomeDriver
from simhome.localbroker import BrokerError, LocalBroker

log = logging.getLogger(__name__)

DEMO_BUNDLE = Path(__file__).resolve().parent / "demo_bundle"
DEMO_TIMEZONE = "Europe/Brussels"
BAR_WIDTH = 10


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-agent demo", description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=3.0, help="real minutes to run (default 3)")
    p.add_argument(
        "--speed", type=float, default=120.0, help="simulated seconds per real second (default 120)"
    )
    p.add_argument(
        "--start",
        default="2026-01-14T16:30",
        help="simulated local start time, ISO (default a winter afternoon: dusk comes soon)",
    )
    p.add_argument("--seed", type=int, default=7, help="seed of the simulated home")
    p.add_argument(
        "--broker", default=None, help="HOST:PORT of an existing broker (default: start mosquitto)"
    )
    p.add_argument("--bundle", type=Path, default=DEMO_BUNDLE, help="model bundle (default: the demo bundle)")
    p.add_argument("--mode", choices=["auto", "shadow"], default="auto", help="agent mode (default auto)")
    p.add_argument(
        "--state-dir", type=Path, default=None, help="where the SQLite file goes (default: temp dir)"
    )
    p.add_argument("--no-live", action="store_true", help="no live view; print a line every few seconds")
    p.add_argument(
        "--explain-out",
        type=Path,
        default=None,
        help="the explanation PNG (default: <state-dir>/explain.png, or edge-agent-demo-explain.png in the temp dir)",
    )
    return p


def _bar(weight: float) -> str:
    n = max(0, min(BAR_WIDTH, round(weight * BAR_WIDTH)))
    return "█" * n + "·" * (BAR_WIDTH - n)


def _fmt_value(device: str, value: Any) -> str:
    if value is None:
        return "-"
    v = float(value)
    if device.endswith(".light"):
        return "ON" if v >= 0.5 else "off"
    if device.endswith(".fan"):
        return ["off", "low", "med", "high"][max(0, min(3, round(v)))]
    return f"{v:.1f}"


def render(snap: dict[str, Any], home: dict[str, Any], stats: dict[str, Any]) -> Group:
    """The live view: a header line and one row per device."""
    head = Text.assemble(
        ("edge-agent demo  ", "bold"),
        (f"sim {home['sim_time']}  ", "cyan"),
        (f"tier {snap['tier']}  ", "magenta"),
        f"msgs/s {stats.get('msgs_per_s') or 0:.0f}  decisions {snap['counters'].get('decisions', 0)}  "
        f"commands {snap['counters'].get('commands', 0)}  overrides {sum(home['overrides'].values())}  "
        f"latency p50/p99 {stats.get('latency_ms_p50') or 0:.2f}/{stats.get('latency_ms_p99') or 0:.2f} ms",
    )
    t = Table(expand=True)
    for col in ("device", "state", "preferred", "decision", "conf", "why (top attention)", "mode / hold"):
        t.add_column(col)
    for name, d in snap["devices"].items():
        last = d.get("last_decision") or {}
        why = "\n".join(f"{_bar(w)} {ch} {w:.2f}" for ch, w in d.get("top", []))
        hold = "held by person" if d.get("held_until") else ""
        state = home["devices"].get(name)
        pref = home["preferred"].get(name)
        style = "green" if state is not None and pref is not None and abs(state - pref) < 0.5 else "yellow"
        t.add_row(
            name,
            Text(_fmt_value(name, state), style=style),
            _fmt_value(name, pref),
            f"{_fmt_value(name, last.get('value'))} ({last.get('reason', '-')})",
            f"{last.get('confidence', 0):.2f}" if last else "-",
            why,
            f"{d['mode']} {hold}".strip(),
        )
    return Group(head, t)


def summary_table(agent_stats: dict[str, Any], home: dict[str, Any], minutes: float) -> Table:
    t = Table(title=f"demo summary ({minutes:g} real minutes, sim ends {home['sim_time']})")
    t.add_column("device")
    t.add_column("commands", justify="right")
    t.add_column("overrides by person", justify="right")
    t.add_column("agreement with preference", justify="right")
    for name, agree in home["agreement"].items():
        t.add_row(
            name,
            str(home["commands"].get(name, 0)),
            str(home["overrides"].get(name, 0)),
            "-" if agree is None else f"{agree:.1%}",
        )
    all_agree = home.get("agreement_all")
    t.add_row(
        "all",
        str(sum(home["commands"].values())),
        str(sum(home["overrides"].values())),
        "-" if all_agree is None else f"{all_agree:.1%}",
        style="bold",
    )
    t.caption = (
        f"decisions {agent_stats.get('decisions', 0)}, commands sent {agent_stats.get('commands', 0)}, "
        f"invalid messages {agent_stats.get('invalid', 0)}, tier {agent_stats.get('tier')}, "
        f"latency p50/p99 {agent_stats.get('latency_ms_p50') or 0:.2f}/"
        f"{agent_stats.get('latency_ms_p99') or 0:.2f} ms"
    )
    return t


def _broker(arg: str | None) -> tuple[str, int, LocalBroker | None]:
    if arg:
        host, _, port = arg.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--broker {arg!r}: expected HOST:PORT, e.g. 127.0.0.1:1883")
        return host, int(port), None
    b = LocalBroker().start()
    return b.host, b.port, b


def run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """Run the demo; returns the final summary (agent stats + home stats)."""
    start = dt.datetime.fromisoformat(args.start)
    if start.tzinfo is None:
        start = start.replace(tzinfo=ZoneInfo(DEMO_TIMEZONE))
    host, port, broker = _broker(args.broker)
    tmp = None
    state_dir = args.state_dir
    if state_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="edge-agent-demo-")
        state_dir = Path(tmp.name)
    driver = SimHomeDriver(
        host,
        port,
        speed=args.speed,
        seed=args.seed,
        start=start,
        overrides=True,
        manual_operation=False,
        timezone=DEMO_TIMEZONE,
    )
    cfg = simhome_config(
        args.bundle, host=host, port=port, state_dir=state_dir, mode=args.mode, log_level="WARNING"
    )
    agent = Agent(cfg, clock=driver.clock)
    result: dict[str, Any] | None = None
    try:
        driver.start()
        agent.start()
        deadline = time.monotonic() + args.minutes * 60.0
        if args.no_live:
            next_line = 0.0
            while time.monotonic() < deadline:
                if time.monotonic() >= next_line:
                    next_line = time.monotonic() + 5.0
                    s, h = agent.stats(), driver.stats()
                    console.print(
                        f"sim {h['sim_time']} tier {s['tier']} decisions {s['decisions']} "
                        f"commands {s['commands']} overrides {sum(h['overrides'].values())}"
                    )
                time.sleep(0.1)
        else:
            with Live(console=console, refresh_per_second=4, transient=False) as live:
                while time.monotonic() < deadline:
                    live.update(render(agent.snapshot(), driver.stats(), agent.stats()))
                    time.sleep(0.25)
        result = {"agent": agent.stats(), "home": driver.stats()}
    finally:
        agent.stop()  # the recorder is flushed: the log is complete
        driver.stop()
        if broker is not None:
            broker.stop()
        try:
            if result is not None:  # the run completed: explain one light from its log
                out = args.explain_out or (
                    Path(tempfile.gettempdir()) / "edge-agent-demo-explain.png"
                    if tmp is not None
                    else state_dir / "explain.png"
                )
                lights = [d.name for d in cfg.devices if d.name.endswith(".light")]
                result["explain"] = explain_lights(cfg.database_url, cfg.timezone, lights, out)
        finally:
            if tmp is not None:
                tmp.cleanup()
    return result


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    console = Console()
    try:
        result = run(args, console)
    except (BrokerError, BundleError, ConfigError, ValueError) as e:
        console.print(f"[red]edge-agent demo: {e}[/red]")
        return 2
    except KeyboardInterrupt:
        return 130
    console.print(summary_table(result["agent"], result["home"], args.minutes))
    for line in result["explain"]:
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    return 0
