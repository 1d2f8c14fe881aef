"""Sensor -> command latency through mosquitto, and whether the command is right: a probe toggles a Zigbee2MQTT
motion sensor every 200-500 ms (seeded) and times the light's `/set` command; a command whose state is not the
one the toggle asks for (ON with motion in the dark, OFF when it stops) is `wrong`, none within 1 s `missed`.

Baseline in the same run: a bare paho relay (parse, publish the command) in its own process, on the same broker
with the same probe. The daemon runs as `edge-agent run` in its own process on the test home bundle (`auto`, no
dwell, default hysteresis). Loads: `quiet`, and `busy` = `--hogs` busy processes (`while True: pass`) at normal
priority for the whole row (as a hub often is). Rows per load: the relay, the agent with the default governor,
with `--queued` the same agent with every message through the decider's queue (`inline_events: false`, the
event path before issue 21's inline decision), and with `--tiers` the agent pinned to each tier (missed/wrong
per tier). JSON lines, p50/p99 in ms, and the 1-minute load average when the row ended.

    python bench/bench_latency.py                      # quiet: relay, governed agent
    python bench/bench_latency.py --load both --tiers  # the issue's table (ITER=150 for the busy rows)
    python bench/bench_latency.py --baseline-src DIR   # and the agent on the code in DIR (before a change)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from _common import ROOT, Mosquitto, emit, pct
from paho.mqtt.enums import CallbackAPIVersion

ITER = int(os.environ.get("ITER", 300))
MOTION = "zigbee2mqtt/living_motion"
SET = "zigbee2mqtt/living_light/set"
WARMUP = 20
HOG = "while True: pass"
TIERS = ("full", "int8", "coarse", "focused", "sparse")


def nodelay(c: mqtt.Client) -> None:
    c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # same as the agent's link


def relay(port: int) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)

    def on_msg(cl, _u, m):
        occ = json.loads(m.payload)["occupancy"]
        cl.publish(SET, json.dumps({"state": "ON" if occ else "OFF"}), qos=1)

    c.on_message = on_msg
    c.on_connect = lambda cl, *a: (nodelay(cl), cl.subscribe(MOTION, qos=1))
    c.connect("127.0.0.1", port)
    c.loop_forever()


def probe(port: int, iters: int | None = None, seed: int = 1) -> tuple[list[float], int, int]:
    """Toggle the motion sensor every 200-500 ms; (latency ms of each right answer, missed, wrong)."""
    n = ITER if iters is None else iters
    rng = random.Random(seed)
    got = threading.Event()
    answer: list[Any] = [None]

    def on_message(_c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        try:
            answer[0] = json.loads(m.payload).get("state")
        except ValueError:
            answer[0] = "?"
        got.set()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    c.on_message = on_message
    ready = threading.Event()
    c.on_connect = lambda cl, *a: (nodelay(cl), cl.subscribe(SET, qos=1), ready.set())
    c.connect("127.0.0.1", port)
    c.loop_start()
    ready.wait(5)
    time.sleep(0.3)
    lat: list[float] = []
    missed = wrong = 0
    for i in range(n + WARMUP):
        got.clear()
        occupied = i % 2 == 0
        t0 = time.perf_counter()
        c.publish(MOTION, json.dumps({"occupancy": occupied, "illuminance": 5}), qos=0)
        ok = got.wait(1.0)
        dt = (time.perf_counter() - t0) * 1000
        if i >= WARMUP:  # the first ones warm up
            if not ok:
                missed += 1
            elif answer[0] != ("ON" if occupied else "OFF"):
                wrong += 1
            else:
                lat.append(dt)
        time.sleep(rng.uniform(0.2, 0.5))
    c.disconnect()
    c.loop_stop()
    return lat, missed, wrong


def measure(port: int, iters: int | None = None, seed: int = 1) -> list[float]:
    """The latencies of the right answers (bench_event_path's probe)."""
    return probe(port, iters, seed)[0]


def agent_config(
    bundle: Path, port: int, state: Path, governor: dict[str, Any], inline: bool = True
) -> dict[str, Any]:
    dev = {"min_dwell_seconds": 0, "max_commands_per_hour": 1_000_000}
    return {
        "agent_id": "bench",
        "mode": "auto",
        "bundle": str(bundle),
        "state_dir": str(state),
        "log_level": "WARNING",
        "inline_events": inline,
        "broker": {"host": "127.0.0.1", "port": port},
        "governor": governor,
        "channels": [
            {"topic": MOTION, "channel": "living.motion", "field": "occupancy"},
            {"topic": MOTION, "channel": "living.illuminance", "field": "illuminance"},
        ],
        "devices": [{"name": "living.light", "state_topic": "zigbee2mqtt/living_light", **dev}],
    }


class Stats:
    """The agent's stats topic: tiers it served and the governor's reason, as the probe runs."""

    def __init__(self, port: int) -> None:
        self.tiers: dict[str, int] = {}
        self.reasons: list[str] = []
        self.changes: list[str] = []  # tier changes seen, with the governor's reason
        self.last: dict[str, Any] = {}
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.c.on_message = self._on
        self.c.on_connect = lambda cl, *a: cl.subscribe("edge-agent/bench/stats")
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def _on(self, _c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        s = json.loads(m.payload)
        prev = self.last.get("tier")
        self.last = s
        self.tiers[s.get("tier", "?")] = self.tiers.get(s.get("tier", "?"), 0) + 1
        gov = s.get("governor") or {}
        if gov.get("reason"):
            self.reasons.append(gov["reason"])
            if prev is not None and s.get("tier") != prev:  # the stats right after a change carry its reason
                self.changes.append(f"{prev}->{s.get('tier')}: {gov.get('last_reason') or gov['reason']}")

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def run_relay(port: int, iters: int) -> dict[str, Any]:
    p = mp.get_context("spawn").Process(target=relay, args=(port,), daemon=True)
    p.start()
    time.sleep(0.5)
    lat, missed, wrong = probe(port, iters)
    p.terminate()
    return {"path": "bare-paho-relay", **row(lat, missed, wrong), "loadavg_1m": round(os.getloadavg()[0], 2)}


def run_agent(
    port: int,
    d: Path,
    bundle: Path,
    iters: int,
    governor: dict[str, Any],
    name: str,
    inline: bool = True,
    src: Path = ROOT,
) -> dict[str, Any]:
    """The agent as `edge-agent run` in its own process, `edge_agent` imported from the source tree `src`."""
    state = Path(tempfile.mkdtemp(dir=d))
    (state / "c.yaml").write_text(yaml.safe_dump(agent_config(bundle, port, state / "s", governor, inline)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    agent = subprocess.Popen(
        [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(state / "c.yaml")], cwd=src, env=env
    )
    stats = Stats(port)
    try:
        time.sleep(2.0)
        lat, missed, wrong = probe(port, iters)
    finally:
        agent.terminate()
        agent.wait(10)
        stats.close()
    out = {"path": name, "src": str(src), **row(lat, missed, wrong), "tiers_seen": stats.tiers}
    out["loadavg_1m"] = round(os.getloadavg()[0], 2)
    out["events_inline"] = stats.last.get("events_inline")  # decided on paho's thread
    out["events_queued"] = stats.last.get("events_queued")
    if stats.reasons:
        out["governor_reason"] = stats.reasons[-1]
    if stats.changes:
        out["tier_changes"] = stats.changes
    return out


def row(lat: list[float], missed: int, wrong: int) -> dict[str, Any]:
    return {
        "n": len(lat) + missed + wrong,
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "max_ms": pct(lat, 100),
        "missed": missed,
        "wrong": wrong,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--load", choices=("quiet", "busy", "both"), default="quiet")
    ap.add_argument("--tiers", action="store_true", help="also the agent pinned to each tier")
    ap.add_argument("--hogs", type=int, default=2, help="busy processes at normal priority for `busy`")
    ap.add_argument("--queued", action="store_true", help="also the agent with inline_events: false")
    ap.add_argument(
        "--baseline-src",
        type=Path,
        help="also the default-governor agent run from this source tree (the code before a change), same run",
    )
    args = ap.parse_args()
    from testbundle import home_bundle

    broker = Mosquitto()
    try:
        with tempfile.TemporaryDirectory() as d:
            # 0.1 s steps (the manifest's least) and toggles 200-500 ms apart: each event is its own step
            # (within a step, motion keeps its max, as in training)
            bundle = home_bundle(Path(d) / "bundle", step_seconds=0.1)
            loads = ["quiet", "busy"] if args.load == "both" else [args.load]
            for load in loads:
                hogs = [
                    subprocess.Popen([sys.executable, "-c", HOG])
                    for _ in range(args.hogs if load == "busy" else 0)
                ]
                try:
                    rows = [run_relay(broker.port, ITER)]
                    if args.baseline_src is not None:
                        src = args.baseline_src.resolve()
                        name = "edge-agent-default-governor@baseline"
                        rows.append(run_agent(broker.port, Path(d), bundle, ITER, {}, name, src=src))
                    rows.append(
                        run_agent(broker.port, Path(d), bundle, ITER, {}, "edge-agent-default-governor")
                    )
                    if args.queued:
                        rows.append(
                            run_agent(
                                broker.port, Path(d), bundle, ITER, {}, "edge-agent-queued", inline=False
                            )
                        )
                    for t in TIERS if args.tiers else ():
                        rows.append(
                            run_agent(
                                broker.port, Path(d), bundle, ITER, {"pinned_tier": t}, f"edge-agent-{t}"
                            )
                        )
                finally:
                    for h in hogs:
                        h.kill()
                        h.wait(5)
                base = rows[0]
                for r in rows:
                    extra = {}
                    if r is not base and r["p50_ms"] is not None and base["p50_ms"] is not None:
                        extra = {
                            "p50_over_relay_ms": round(r["p50_ms"] - base["p50_ms"], 3),
                            "p99_over_relay_ms": round(r["p99_ms"] - base["p99_ms"], 3),
                        }
                    emit(bench="latency", load=load, hogs=args.hogs if load == "busy" else 0, **r, **extra)
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
