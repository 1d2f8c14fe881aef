"""The agent against a broker that goes away, and the governor wired into the running agent."""

from __future__ import annotations

import json
import queue
from pathlib import Path

import pytest
from conftest import INITIAL_STATES, Broker, EchoDevices, Observer, agent_config_dict, wait_until
from sqlalchemy import select

from edge_agent.agent import Agent
from edge_agent.config import BrokerSettings, parse_config
from edge_agent.mqtt import MqttLink
from edge_agent.recorder import tier_changes

pytestmark = pytest.mark.integration
SET = "zigbee2mqtt/living_light/set"


def test_broker_restart_reconnects_and_resubscribes(
    bundle_path: Path, broker: Broker, tmp_path: Path
) -> None:
    """Broker killed mid-run: the agent reconnects, resubscribes, says online again, and keeps commanding."""
    agent = Agent(parse_config(agent_config_dict(bundle_path, broker.port, tmp_path / "s")))
    agent.start()
    try:
        assert agent.link.wait_connected(5)
        broker.restart()  # persistence off: sessions, subscriptions and retained messages are gone
        wait_until(lambda: agent.link.counters.connects >= 2, timeout=10)
        obs = Observer(broker.port, ["#"])
        dev = EchoDevices(broker.port, INITIAL_STATES)
        try:
            wait_until(lambda: "online" in obs.on("edge-agent/t1/availability"))  # re-announced after restart
            obs.publish("zigbee2mqtt/living_motion", {"occupancy": True, "illuminance": 5})
            assert wait_until(lambda: obs.on(SET), timeout=5) == [{"state": "ON"}]
            stats = wait_until(lambda: [s for s in obs.on("edge-agent/t1/stats") if s["reconnects"] >= 1])
            assert stats[-1]["connected"] is True
        finally:
            dev.close()
            obs.close()
    finally:
        agent.stop()


def test_command_while_disconnected_is_dropped_not_sent_late(broker: Broker) -> None:
    """A command made while the broker is down is dropped and counted; nothing leaks out after reconnect."""
    settings = BrokerSettings(
        host="127.0.0.1", port=broker.port, reconnect_min_seconds=0.1, reconnect_max_seconds=0.3
    )
    link = MqttLink(settings, "link-test", "edge-agent/x/availability", queue.Queue(10), command_expiry=0.5)
    link.start()
    try:
        assert link.wait_connected(5)
        broker.stop()
        wait_until(lambda: not link.connected.is_set())
        statuses: list[str] = []
        assert (
            link.send_command("dev/set", b'{"state":"ON"}', link.clock(), statuses.append)
            == "dropped-disconnected"
        )
        broker.start()
        obs = Observer(broker.port, ["dev/#"])
        try:
            wait_until(lambda: link.connected.is_set(), timeout=10)
            assert link.send_command("dev/set", b'{"state":"OFF"}', link.clock(), statuses.append) == "sent"
            wait_until(lambda: obs.on("dev/set"))
            assert obs.on("dev/set") == [{"state": "OFF"}]
            assert statuses == ["dropped-disconnected", "sent"] and link.counters.commands_disconnected == 1
        finally:
            obs.close()
    finally:
        link.stop()


def test_governor_step_down_is_recorded_and_used(
    bundle_path: Path, broker: Broker, observer: Observer, tmp_path: Path
) -> None:
    """A governor forced to step down (a CPU limit any running process exceeds): the change is recorded,
    published, and decisions run on the new tier, feeding only the focused channel set plus the triggering
    fast channel."""
    gov = {
        "cpu_down_percent": 0.001,
        "cpu_up_percent": 0,
        "cpu_latency_fraction": None,  # system CPU alone steps down
        "own_cpu_down_percent": 10_000.0,  # not the agent's own start-up burst in the first 0.1 s sample
        "cpu_smoothing_seconds": 0,
        "down_after_seconds": 0,
        "min_seconds_per_tier": 0,
        "sample_seconds": 0.1,
    }
    agent = Agent(
        parse_config(
            agent_config_dict(
                bundle_path, broker.port, tmp_path / "s", governor=gov, decision_tick_seconds=0.2
            )
        )
    )
    agent.start()
    try:
        wait_until(lambda: agent.governor.tier == "focused", timeout=10)
        observer.publish("zigbee2mqtt/living_motion", {"occupancy": True, "illuminance": 5})
        dec = wait_until(
            lambda: [
                d
                for d in observer.on("edge-agent/t1/decision/living.light")
                if d["tier"] in ("focused", "sparse") and d["trigger"].startswith("event")
            ]
        )
        assert len(dec[-1]["top"]) <= 3 and dec[-1]["value"] == 1.0
        agent.recorder.flush()
        with agent.recorder.engine.connect() as c:
            changes = [(r.old, r.new, r.signal) for r in c.execute(select(tier_changes))]
        assert changes[:2] == [("full", "int8", "cpu"), ("int8", "coarse", "cpu")]
        assert any(s.get("tier") != "full" for s in observer.on("edge-agent/t1/stats"))
    finally:
        agent.stop()
    # the focus tracker was persisted on stop and comes back in the next run
    agent2 = Agent(parse_config(agent_config_dict(bundle_path, broker.port, tmp_path / "s")))
    try:
        assert agent2.focus.updates == agent.focus.updates > 0
        assert json.loads(agent2.focus.to_json())["mean"] == json.loads(agent.focus.to_json())["mean"]
    finally:
        agent2.recorder.close()
