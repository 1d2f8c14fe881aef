"""The governor in the running agent under a real CPU hog (a benchmark: its figures depend on the machine's load).

Busy processes saturate the cores; the agent (real mosquitto, real SQLite file, real psutil CPU) should step
down a tier, keep deciding on motion events, and step back up only after the quiet time. Prints one JSON line:
reaction seconds, lowest tier, seconds back to full, tier changes, and whether each step happened. The
fake-clock behaviour of the same governor is tested in tests/test_governor.py and tests/test_controller.py.

    .venv/bin/python bench/bench_governor_hog.py
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
from _common import Mosquitto, emit
from conftest import INITIAL_STATES, EchoDevices, Observer, agent_config_dict
from sqlalchemy import select
from testbundle import home_bundle

from edge_agent.agent import Agent
from edge_agent.config import parse_config
from edge_agent.recorder import tier_changes

# Short windows so the whole cycle fits in ~20 s; the hysteresis gap is still wide (down > 90 %, up < 70 %).
GOVERNOR = {
    "sample_seconds": 0.25,
    "cpu_smoothing_seconds": 0.5,
    "cpu_down_percent": 90.0,
    "cpu_up_percent": 70.0,
    "down_after_seconds": 1.0,
    "up_after_seconds": 2.0,
    "min_seconds_per_tier": 1.5,
    "latency_down_ms": 1000.0,
    "latency_tier_factor": None,
    "queue_down_depth": 5000,
}
HOG_SECONDS = 12.0  # upper bound on the hog's life, whatever happens to the test
N_HOGS = max(2, (psutil.cpu_count() or 2) + 1)


def start_hogs() -> list[subprocess.Popen[bytes]]:
    code = f"import time\nend = time.monotonic() + {HOG_SECONDS}\nwhile time.monotonic() < end: pass"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(N_HOGS)]


def wait_tier(agent: Agent, pred, timeout: float, what: str) -> bool:
    """Wait for `pred(agent)`; on timeout fail with the governor's view (a busy machine shows as CPU %)."""
    deadline = time.monotonic() + timeout
    while not pred(agent):
        if time.monotonic() > deadline:
            emit(bench="governor_hog", failed=f"{what} within {timeout}s", governor=agent.governor.state())
            return False
        time.sleep(0.05)
    return True


def decisions(obs: Observer) -> list[dict]:
    return obs.on("edge-agent/t1/decision/living.light")


def main() -> int:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto()
        try:
            return run(Path(tmp), broker.port)
        finally:
            broker.stop()


def run(tmp: Path, port: int) -> int:
    cfg = parse_config(
        agent_config_dict(
            home_bundle(tmp / "bundle"),
            port,
            tmp / "s",
            governor=GOVERNOR,
            decision_tick_seconds=0.2,
            stats_interval_seconds=0.5,
        )
    )
    observer = Observer(port, ["#"])
    agent = Agent(cfg)
    dev = EchoDevices(port, INITIAL_STATES)
    agent.start()
    hogs: list[subprocess.Popen[bytes]] = []
    result: dict = {"bench": "governor_hog", "hogs": N_HOGS}
    try:
        agent.link.wait_connected(5)
        observer.publish("zigbee2mqtt/living_climate", {"temperature": 21.0})
        observer.publish("zigbee2mqtt/bedroom_climate", {"humidity": 50.0})
        quiet = lambda a: a.governor.tier == "full" and (a.governor.state()["cpu_percent"] or 0) < 70  # noqa: E731
        if not wait_tier(agent, quiet, 10, "precondition: CPU quiet before the hog"):
            return 1
        hogs = start_hogs()
        t_hog = time.monotonic()
        if not wait_tier(agent, lambda a: a.governor.tier != "full", 8, "no step down under the hog"):
            return 1
        result["reaction_s"] = round(time.monotonic() - t_hog, 2)
        n_before = len(decisions(observer))
        for i in range(6):  # motion events keep being decided on the lower tier
            observer.publish("zigbee2mqtt/living_motion", {"occupancy": i % 2 == 0, "illuminance": 5})
            time.sleep(0.25)
        low = [d for d in decisions(observer)[n_before:] if d["tier"] != "full"]
        result["event_decisions_on_lower_tier"] = sum(d["trigger"].startswith("event") for d in low)
        result["lowest_tier"] = max((d["tier"] for d in low), key=agent.bundle.tiers.index, default=None)
        for p in hogs:
            p.kill()
        for p in hogs:
            p.wait(5)
        t_quiet = time.monotonic()
        n_quiet = len(decisions(observer))
        if not wait_tier(
            agent, lambda a: a.governor.tier == "full", 15, "no step back up to full after the hog"
        ):
            return 1
        result["back_to_full_s"] = round(time.monotonic() - t_quiet, 2)
        result["up_after_seconds"] = GOVERNOR["up_after_seconds"]
        result["decisions_while_climbing"] = len(decisions(observer)) - n_quiet
        agent.recorder.flush()
        with agent.recorder.engine.connect() as c:
            rows = list(c.execute(select(tier_changes).order_by(tier_changes.c.ts)))
        result["tier_changes"] = [[r.old, r.new, r.signal, r.value] for r in rows]
    finally:
        for p in hogs:
            if p.poll() is None:
                p.kill()
                p.wait(5)
        agent.stop()
        dev.close()
        observer.close()
    emit(**result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
