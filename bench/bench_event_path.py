"""Where the event path's time goes: bench_latency's configuration with the agent in this process, its stages
stamped on the monotonic clock, and a cProfile of the agent's threads (`PROFILE=1`).

Stages of one motion event (probe publish -> `/set` received by the probe):
  inbox   paho's network thread stamped the message (`received`) -> the controller's `handle` starts (the
          inbox hand-off and the decider's wake-up; ~0 when decided inline on paho's thread)
  decide  `handle` (ingest, window, tier, model, policy) -> the command's effects
  send    the effects -> the command handed to paho (publish returns)
  write   the command handed to paho -> its bytes written to the socket
  wire    the rest of the total (probe -> broker -> agent, agent -> broker -> probe)
Rows, same run, same broker and probe: the bare paho relay of bench_latency (baseline), the agent with the event
decided on paho's thread when the decider is idle (`inline_events`, the default), and the agent with every
message through the decider's queue (`inline_events: false`, the path before). JSON lines; p50/p99 in ms.

Each agent row and stage breakdown runs in its own child process whose `edge_agent` is imported from a source
tree (`src` in the row): this one, and with `--baseline-src DIR` (a checkout of the code before a change, e.g.
`git archive <commit> | tar -x -C DIR`) the same rows for it too, alternating, on the same broker and probe:
before/after in one run. Each of `--rounds` starts with a relay row (the `*_over_relay_ms` of its rows); one
more relay row ends the run (the load's drift over it).

    python bench/bench_event_path.py [--baseline-src DIR] [--paths inline,queued] [--rounds N]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import multiprocessing as mp
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ROOT, Mosquitto, emit, pct
from bench_latency import MOTION, SET, measure, relay

ITER = int(os.environ.get("ITER", 200))
COLD_EVENTS = int(os.environ.get("COLD_EVENTS", 60))  # events 0.3 s apart for the cold stage breakdown


def agent_config(bundle: Path, port: int, state: Path, inline: bool = True) -> dict[str, Any]:
    dev = {"min_dwell_seconds": 0, "max_commands_per_hour": 1_000_000}
    return {
        "agent_id": "bench",
        "mode": "auto",
        "bundle": str(bundle),
        "state_dir": str(state),
        "log_level": "WARNING",
        "inline_events": inline,
        "broker": {"host": "127.0.0.1", "port": port},
        "channels": [
            {"topic": MOTION, "channel": "living.motion", "field": "occupancy"},
            {"topic": MOTION, "channel": "living.illuminance", "field": "illuminance"},
        ],
        "devices": [{"name": "living.light", "state_topic": "zigbee2mqtt/living_light", **dev}],
    }


def run_agent(port: int, bundle: Path, state: Path, inline: bool) -> dict[str, Any]:
    from edge_agent.agent import Agent
    from edge_agent.config import parse_config

    agent = Agent(parse_config(agent_config(bundle, port, state, inline)))
    stamps: dict[str, list[float]] = {k: [] for k in ("inbox", "decide", "send", "write")}
    cur: dict[str, float] = {}
    ctrl, link = agent.controller, agent.link
    handle, send = ctrl.handle, link.send_command

    def handle_(batch, now, **kw):  # type: ignore[no-untyped-def]
        t = time.monotonic()
        fx = handle(batch, now, **kw)
        if batch and fx.commands:
            cur["recv"], cur["start"], cur["decided"] = batch[0][2], t, time.monotonic()
        return fx

    def send_(*a, **kw):  # type: ignore[no-untyped-def]
        cur["sent_at"] = time.monotonic()  # before publish: a write from this thread lands inside the call
        r = send(*a, **kw)
        if "decided" in cur:
            stamps["inbox"].append((cur["start"] - cur["recv"]) * 1e3)
            stamps["decide"].append((cur["decided"] - cur["start"]) * 1e3)
            stamps["send"].append((time.monotonic() - cur.pop("decided")) * 1e3)
        return r

    ctrl.handle, link.send_command = handle_, send_  # type: ignore[method-assign]
    set_topic = SET.encode()

    def wrap_sock(real):  # type: ignore[no-untyped-def]
        def sock_send(buf):  # type: ignore[no-untyped-def]
            n = real(buf)
            if set_topic in bytes(buf[:64]) and "sent_at" in cur:
                stamps["write"].append((time.monotonic() - cur.pop("sent_at")) * 1e3)
            return n

        return sock_send

    link.client._sock_send = wrap_sock(link.client._sock_send)  # type: ignore[method-assign]
    agent.start()
    agent.ready.wait(10)
    time.sleep(0.5)
    lat = measure(port, ITER)
    st = agent.stats()
    agent.stop()
    out = {
        "path": "edge-agent-inline" if inline else "edge-agent-queued",
        "n": len(lat),
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "stages_p50_ms": {k: pct(v, 50) for k, v in stamps.items() if v},
        "stages_p99_ms": {k: pct(v, 99) for k, v in stamps.items() if v},
        "commands": len(stamps["send"]),
        "events_inline": st["events_inline"],
        "events_queued": st["events_queued"],
    }
    return out


def handle_stages(bundle: Path, state: Path, n: int = 2000, gap: float = 0.0) -> dict[str, Any]:
    """µs per stage of the controller's `handle` for one motion event (no broker: the pure decision path),
    on perf_counter stamps around its parts; `PROFILE=1` adds a cProfile by own time (stderr). `gap` seconds
    of sleep between events (as in the daemon, 200-500 ms apart: caches and the core go cold) or none (a hot
    loop)."""
    from edge_agent import controller as ctl
    from edge_agent.config import parse_config
    from edge_agent.inference import Bundle

    b = Bundle.load(bundle)
    now, mono = 1_700_000_000.0, 100.0
    c = ctl.Controller(parse_config(agent_config(bundle, 1, state)), b, now=now, mono=mono)
    c.defer_explanations = True
    c.handle([("zigbee2mqtt/living_light", b'{"state":"OFF"}', 0.0, False)], now, mono=mono)
    st: dict[str, list[float]] = {}

    def stamp(obj: Any, name: str, key: str) -> None:
        f = getattr(obj, name)

        def g(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            r = f(*a, **k)
            st.setdefault(key, []).append((time.perf_counter() - t) * 1e6)
            return r

        setattr(obj, name, g)

    for obj, name, key in (
        (c, "_message", "ingest+window_update"),
        (c.window, "snapshot", "window_snapshot"),
        (ctl, "select_channels", "select_channels"),
        (ctl, "run_tier", "pool+normalize+onnxruntime"),
        (c, "_act", "policy+command"),
    ):
        stamp(obj, name, key)
    prof = cProfile.Profile() if os.environ.get("PROFILE") else None
    t = 0.0
    for i in range(n):
        t += 0.3
        payload = (b'{"occupancy": true, "illuminance": 5}', b'{"occupancy": false, "illuminance": 5}')[i % 2]
        item = ("zigbee2mqtt/living_motion", payload, time.monotonic(), False)
        if prof is not None:
            prof.enable()
        t0 = time.perf_counter()
        fx = c.handle([item], now + t, mono=mono + t)
        t1 = time.perf_counter()
        fx.finish()
        t2 = time.perf_counter()
        if prof is not None:
            prof.disable()
        st.setdefault("handle_total", []).append((t1 - t0) * 1e6)
        st.setdefault("explanation_deferred", []).append((t2 - t1) * 1e6)
        if gap:
            time.sleep(gap)
    if prof is not None:
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(20)
        print(buf.getvalue(), file=sys.stderr)
    return {k: {"p50_us": pct(v, 50), "p99_us": pct(v, 99)} for k, v in st.items()}


def child(spec: dict[str, Any]) -> None:
    """One source tree's rows (`--child`): its `edge_agent` is the one on PYTHONPATH; one JSON line each."""
    import edge_agent

    src = str(Path(edge_agent.__file__).resolve().parents[1])
    bundle, d = Path(spec["bundle"]), Path(spec["dir"])
    what = spec["what"]
    tag = {"bench": "event_path", "src": spec["label"], "src_dir": src}
    if what == "stages":
        emit(**tag, path="controller-handle-stages", **handle_stages(bundle, d / "h"))
        cold = handle_stages(bundle, d / "c", COLD_EVENTS, gap=0.3)
        emit(**tag, path="controller-handle-stages-cold", gap_s=0.3, **cold)
    else:
        r = run_agent(spec["port"], bundle, d / "s", what == "inline")
        emit(**tag, **r, loadavg_1m=round(os.getloadavg()[0], 2))


def run_child(label: str, src: Path, what: str, port: int, bundle: Path, d: Path) -> list[dict[str, Any]]:
    spec = {"label": label, "what": what, "port": port, "bundle": str(bundle), "dir": str(d)}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
        env=env,
        cwd=src,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"child {label}/{what} failed:\n{out.stderr[-3000:]}")
    if out.stderr.strip():
        print(out.stderr, file=sys.stderr, end="")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def relay_row(port: int, name: str, rnd: int) -> dict[str, Any]:
    load0 = os.getloadavg()[0]
    p = mp.get_context("spawn").Process(target=relay, args=(port,), daemon=True)
    p.start()
    time.sleep(0.5)
    lat = measure(port, ITER)
    p.terminate()
    base = {"p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99)}
    emit(bench="event_path", round=rnd, path=name, n=len(lat), **base, loadavg_1m=round(load0, 2))
    return base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--baseline-src", type=Path, help="also run every row on this source tree (before)")
    ap.add_argument("--paths", default="inline,queued", help="agent rows: inline, queued (comma-separated)")
    ap.add_argument("--rounds", type=int, default=1, help="agent rows this many times, alternating sources")
    args = ap.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    from testbundle import home_bundle

    srcs = [("current", ROOT)]
    if args.baseline_src is not None:
        srcs.insert(0, ("baseline", args.baseline_src.resolve()))
    broker = Mosquitto()
    try:
        with tempfile.TemporaryDirectory() as d:
            bundle = home_bundle(Path(d) / "bundle", step_seconds=0.1)
            for label, src in srcs:
                for r in run_child(label, src, "stages", broker.port, bundle, Path(tempfile.mkdtemp(dir=d))):
                    emit(**r)
            turn = 0
            for rnd in range(args.rounds):  # a relay row, then each path on each source, alternating
                base = relay_row(broker.port, "bare-paho-relay", rnd)
                for what in args.paths.split(","):
                    order = srcs if turn % 2 == 0 else srcs[::-1]  # neither source always runs first
                    turn += 1
                    for label, src in order:
                        for r in run_child(
                            label, src, what, broker.port, bundle, Path(tempfile.mkdtemp(dir=d))
                        ):
                            r["p50_over_relay_ms"] = round(r["p50_ms"] - base["p50_ms"], 3)
                            r["p99_over_relay_ms"] = round(r["p99_ms"] - base["p99_ms"], 3)
                            emit(round=rnd, **r)
            relay_row(broker.port, "bare-paho-relay-end", args.rounds)
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
