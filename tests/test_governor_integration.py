"""The governor in the running agent under a real CPU hog: down a tier while busy processes saturate the cores,
back up after they stop, decisions all along; real mosquitto, real SQLite file, real psutil CPU readings."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import INITIAL_STATES, Broker, EchoDevices, Observer, agent_config_dict, wait_until
from sqlalchemy import select

from edge_agent.agent import Agent
from edge_agent.config import parse_config
from edge_agent.recorder import tier_changes

pytestmark = pytest.mark.integration

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


def wait_tier(agent: Agent, pred, timeout: float, what: str) -> None:
    """Wait for `pred(agent)`; on timeout fail with the governor's view (a busy machine shows as CPU %)."""
    try:
        wait_until(lambda: pred(agent), timeout=timeout, interval=0.05)
    except AssertionError:
        raise AssertionError(
            f"{what} within {timeout}s; governor state: {agent.governor.state()} "
            "(CPU near 100% here means other processes keep this machine saturated)"
        ) from None


def decisions(obs: Observer) -> list[dict]:
    return obs.on("edge-agent/t1/decision/living.light")


def test_cpu_hog_steps_down_and_back_up_while_deciding(
    bundle_path: Path, broker: Broker, observer: Observer, tmp_path: Path
) -> None:
    cfg = parse_config(
        agent_config_dict(
            bundle_path,
            broker.port,
            tmp_path / "s",
            governor=GOVERNOR,
            decision_tick_seconds=0.2,
            stats_interval_seconds=0.5,
        )
    )
    agent = Agent(cfg)
    dev = EchoDevices(broker.port, INITIAL_STATES)
    agent.start()
    hogs: list[subprocess.Popen[bytes]] = []
    try:
        assert agent.link.wait_connected(5)
        observer.publish("zigbee2mqtt/living_climate", {"temperature": 21.0})
        observer.publish("zigbee2mqtt/bedroom_climate", {"humidity": 50.0})
        # precondition: the machine is not already saturated by something else (the hog must be the cause)
        wait_tier(
            agent,
            lambda a: a.governor.tier == "full" and (a.governor.state()["cpu_percent"] or 0) < 70,
            10,
            "precondition: CPU quiet before the hog",
        )

        hogs = start_hogs()
        t_hog = time.monotonic()
        wait_tier(agent, lambda a: a.governor.tier != "full", 8, "no step down under the hog")
        reaction = time.monotonic() - t_hog
        n_before = len(decisions(observer))
        for i in range(6):  # motion events keep being decided on the lower tier
            observer.publish("zigbee2mqtt/living_motion", {"occupancy": i % 2 == 0, "illuminance": 5})
            time.sleep(0.25)
        low = [d for d in decisions(observer)[n_before:] if d["tier"] != "full"]
        assert any(d["trigger"].startswith("event") for d in low), "no event decision on the lower tier"
        lowest = max(agent.bundle.tiers.index(d["tier"]) for d in low)
        for p in hogs:
            p.kill()
        for p in hogs:
            p.wait(5)
        t_quiet = time.monotonic()
        n_quiet = len(decisions(observer))

        wait_tier(agent, lambda a: a.governor.tier == "full", 15, "no step back up to full after the hog")
        back = time.monotonic() - t_quiet
        assert back >= GOVERNOR["up_after_seconds"]  # not before the quiet time
        assert len(decisions(observer)) > n_quiet  # still deciding while climbing back
        agent.recorder.flush()
        with agent.recorder.engine.connect() as c:
            rows = list(c.execute(select(tier_changes).order_by(tier_changes.c.ts)))
    finally:
        for p in hogs:
            if p.poll() is None:
                p.kill()
                p.wait(5)
        agent.stop()
        dev.close()

    assert reaction < 6.0
    downs = [r for r in rows if agent.bundle.tiers.index(r.new) > agent.bundle.tiers.index(r.old)]
    ups = [r for r in rows if agent.bundle.tiers.index(r.new) < agent.bundle.tiers.index(r.old)]
    assert downs and downs[0].old == "full" and downs[0].signal == "cpu" and downs[0].value > 90.0
    assert ups and ups[-1].new == "full" and all(r.signal == "quiet" for r in ups)
    assert len(ups) == len(downs) >= 1 and lowest >= 1
    # no oscillation: every step down happened before every step up
    assert max(r.ts for r in downs) < min(r.ts for r in ups)
    stats_tiers = {s["tier"] for s in observer.on("edge-agent/t1/stats")}
    assert "full" in stats_tiers and len(stats_tiers) >= 2
