"""Faults, measured: 10^5 hostile payloads into a running agent, and SIGKILLs of `edge-agent run`.

Part 1 (in-process agent, real mosquitto and SQLite): seeded fuzzed payloads (tests/fuzzpayloads.py) on
sensor and device-state topics at full speed, a motion toggle every 1,000; figures: payloads tried, the
event decisions' latency (motion published -> decision published), the longest gap between two published
decisions of the light (a stall; the tick is 1 s), peak RSS, fake overrides, unexpected errors. Baseline
from the same run: the same motion toggles with no junk between them.

Part 2 (subprocess): `edge-agent run` SIGKILLed at a random moment while it decides, `--kills` times; rows
lost per kill = decisions it published that are not in the database; holds lost = recorded manual changes
that the restarted agent did not hold.

    .venv/bin/python bench/bench_faults.py [--payloads 100000] [--kills 5]
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import yaml
from _common import Mosquitto, emit, pct
from conftest import INITIAL_STATES, EchoDevices, Observer, agent_config_dict
from fuzzpayloads import sensor_payload, state_payload
from testbundle import home_bundle

from edge_agent.agent import Agent
from edge_agent.config import parse_config

SENSORS = ("zigbee2mqtt/living_motion", "zigbee2mqtt/living_climate", "zigbee2mqtt/bedroom_climate")
STATES = ("zigbee2mqtt/living_light", "zigbee2mqtt/bedroom_fan", "zigbee2mqtt/living_thermostat")
DECISION = "edge-agent/t1/decision/living.light"


def _wait(pred, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


class Timed(Observer):
    """An observer that stamps every decision of the light with its arrival time."""

    def __init__(self, port: int) -> None:
        self.arrivals: list[tuple[float, dict]] = []
        super().__init__(port, ["edge-agent/#"])

    def _on_message(self, c, u, msg) -> None:  # type: ignore[no-untyped-def]
        super()._on_message(c, u, msg)
        if msg.topic == DECISION:
            self.arrivals.append((time.monotonic(), json.loads(msg.payload)))


def fuzz(tmp: Path, port: int, bundle: Path, n: int, junk: bool) -> dict:
    cfg = parse_config(
        agent_config_dict(bundle, port, tmp / ("fz" if junk else "base"), decision_tick_seconds=1)
    )
    obs = Timed(port)
    devices = EchoDevices(port, INITIAL_STATES)
    agent = Agent(cfg)
    agent.start()
    rng = random.Random(1)
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        proc = psutil.Process()
        while not done.wait(0.05):
            peak[0] = max(peak[0], proc.memory_info().rss / 2**20)

    threading.Thread(target=sample, daemon=True).start()
    sent: list[float] = []
    try:
        agent.link.wait_connected(10)
        _wait(lambda: all(d.tracker.reported is not None for d in agent.devices), 10)
        t0 = time.monotonic()
        for i in range(n):
            if junk:
                if rng.random() < 0.5:
                    obs.client.publish(rng.choice(SENSORS), sensor_payload(rng), qos=0)
                else:
                    obs.client.publish(rng.choice(STATES), state_payload(rng), qos=0)
            if i % 1000 == 999:
                sent.append(time.monotonic())
                obs.publish(SENSORS[0], {"occupancy": len(sent) % 2 == 1, "illuminance": 5}, qos=1)
                if not junk:
                    time.sleep(0.01)
        obs.publish(SENSORS[0], {"occupancy": True, "illuminance": 9}, qos=1)
        _wait(lambda: agent.counters.messages >= (n if junk else 0) * 0.9 + len(sent), 300)
        _wait(lambda: agent.inbox.qsize() == 0, 60)
        wall = time.monotonic() - t0
        times = [t for t, d in obs.arrivals if t >= t0]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        events = [t for t, d in obs.arrivals if t >= t0 and d["trigger"].startswith("event")]
        lat = [(e - s) * 1000 for s, e in zip(sent, events, strict=False)]
        return {
            "payloads": n if junk else 0,
            "wall_s": round(wall, 1),
            "msgs_per_s": round((n if junk else len(sent)) / wall, 0),
            "event_decisions": len(events),
            "toggles": len(sent),
            "event_latency_ms_p50": pct(lat, 50),
            "event_latency_ms_p99": pct(lat, 99),
            "stall_s_max_gap": round(max(gaps), 2) if gaps else None,
            "peak_rss_mb": round(peak[0], 1),
            "invalid": agent.counters.invalid,
            "oversized": agent.link.counters.oversized,
            "fake_overrides": agent.counters.overrides,
            "errors": agent.counters.errors,
        }
    finally:
        done.set()
        agent.stop()
        devices.close()
        obs.close()


def kills(tmp: Path, port: int, bundle: Path, n: int) -> dict:
    data = agent_config_dict(bundle, port, tmp / "k", log_level="INFO", decision_tick_seconds=0.2)
    cfgp = tmp / "kill.yaml"
    cfgp.write_text(yaml.safe_dump(data))
    db = tmp / "k" / "edge-agent.db"
    obs = Timed(port)
    devices = EchoDevices(port, INITIAL_STATES)
    rng = random.Random(3)
    lost: list[int] = []
    holds_lost = 0
    try:
        for _ in range(n):
            mark = len(obs.arrivals)
            proc = subprocess.Popen(
                [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(cfgp)],
                stderr=subprocess.DEVNULL,
            )
            _wait(lambda m=mark: len(obs.arrivals) > m + 5, 60)
            devices.person_sets("living_light", state="ON" if rng.random() < 0.5 else "OFF")
            time.sleep(rng.uniform(0.05, 0.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            published = {(d["device"], d["time"]) for _, d in obs.arrivals[mark:]}
            with sqlite3.connect(db) as con:
                rows = {(dv, ts) for dv, ts in con.execute("SELECT device, ts FROM decisions")}
                holds = con.execute("SELECT max(hold_until) FROM overrides").fetchone()[0]
            lost.append(len(published - rows))
            if holds and holds > time.time():
                mark2 = len(obs.arrivals)
                proc = subprocess.Popen(
                    [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(cfgp)],
                    stderr=subprocess.DEVNULL,
                )
                _wait(lambda m=mark2: len(obs.arrivals) > m + 2, 60)
                if not all(d["held"] for _, d in obs.arrivals[mark2:]):
                    holds_lost += 1
                proc.send_signal(signal.SIGTERM)
                proc.wait(20)
            with sqlite3.connect(db) as con:
                con.execute("UPDATE overrides SET hold_until = 0")
                con.execute("DELETE FROM agent_state WHERE key = 'holds'")
        return {
            "kills": n,
            "rows_lost_per_kill": lost,
            "rows_lost_max": max(lost) if lost else None,
            "holds_lost": holds_lost,
        }
    finally:
        devices.close()
        obs.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--payloads", type=int, default=100_000)
    ap.add_argument("--kills", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker = Mosquitto()
        try:
            bundle = home_bundle(tmp / "bundle")
            emit(bench="faults", part="baseline", **fuzz(tmp, broker.port, bundle, args.payloads, junk=False))
            emit(bench="faults", part="fuzz", **fuzz(tmp, broker.port, bundle, args.payloads, junk=True))
            emit(bench="faults", part="sigkill", **kills(tmp, broker.port, bundle, args.kills))
        finally:
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
