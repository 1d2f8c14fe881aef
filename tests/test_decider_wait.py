"""The idle decider sleeps until its next due work (not a 20 ms poll), and is woken for what cannot wait:
a bundle swap, stop, a message. Waits on events; the long idle is forced by config, never by sleeping."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import Broker, EchoDevices, Observer, agent_config_dict, wait_until

import edge_agent.agent as agent_mod
from edge_agent.agent import IDLE_SECONDS, POLL_SECONDS, Agent
from edge_agent.config import parse_config
from edge_agent.inference import Bundle

QUIET = {"decision_tick_seconds": 3600, "stats_interval_seconds": 3600, "governor": {"sample_seconds": 60}}


def test_idle_wait_is_the_next_due_work(bundle_path: Path, tmp_path: Path) -> None:
    agent = Agent(parse_config(agent_config_dict(bundle_path, 1, tmp_path / "s", **QUIET)))
    assert agent._idle_wait(100.0) == IDLE_SECONDS  # nothing due soon: the cap
    assert agent._idle_wait(0.05) == pytest.approx(0.05)  # stats / sample / persist due first
    assert agent._idle_wait(-1.0) == 0.0  # overdue: no wait
    agent.controller._next_tick = agent.controller._mono + 0.03  # the controller's tick first
    assert agent._idle_wait(100.0) == pytest.approx(0.03, abs=1e-6)
    agent.link._outbox.append(object())  # type: ignore[arg-type]  # a command waiting for the in-flight window
    assert agent._idle_wait(100.0) == POLL_SECONDS
    agent.link._outbox.clear()
    sim = Agent(parse_config(agent_config_dict(bundle_path, 1, tmp_path / "t", **QUIET)), clock=lambda: 1.7e9)
    assert sim._idle_wait(100.0) == POLL_SECONDS  # a simulated clock: its ticks do not follow real time


def test_a_swap_and_stop_wake_the_idle_decider(
    bundle_path: Path,
    broker: Broker,
    observer: Observer,
    devices: EchoDevices,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the idle cap at an hour and nothing due, only `wake()` gets the decider to a bundle swap or stop;
    a sensor event is decided (inline) meanwhile."""
    monkeypatch.setattr(agent_mod, "IDLE_SECONDS", 3600.0)
    agent = Agent(parse_config(agent_config_dict(bundle_path, broker.port, tmp_path / "s", **QUIET)))
    loops: list[float] = []
    agent.heartbeat_hooks.append(lambda: loops.append(time.monotonic()))
    agent.start()
    try:
        assert agent.ready.wait(10)
        wait_until(lambda: all(d.tracker.reported is not None for d in agent.devices), timeout=10)
        observer.publish("zigbee2mqtt/living_motion", {"occupancy": True, "illuminance": 5})
        wait_until(lambda: observer.on("zigbee2mqtt/living_light/set"), timeout=10)
        other = Bundle.load(bundle_path)
        agent.swap_bundle(other)
        wait_until(lambda: agent.bundle is other, timeout=10)
    finally:
        agent.stop(timeout=10)
    assert not agent._thread.is_alive()
    assert loops  # the decider ran (and pinged the watchdog hook) each time it was woken
