"""Fault suite, hostile input: 10^4 seeded fuzzed payloads on sensor and device-state topics through a real
mosquitto into a running agent (real SQLite file). The agent keeps deciding, never takes an impossible state
for a person's change, never hits an unexpected error, and its memory stays bounded.
(The 10^5-payload run with figures is `bench/bench_faults.py`.)"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from conftest import INITIAL_STATES, Broker, EchoDevices, Observer, agent_config_dict, wait_until
from fuzzpayloads import sensor_payload, state_payload

from edge_agent.agent import Agent
from edge_agent.config import parse_config
from edge_agent.stats import rss_mb

pytestmark = pytest.mark.integration

N_PAYLOADS = 10_000
SENSOR_TOPICS = ("zigbee2mqtt/living_motion", "zigbee2mqtt/living_climate", "zigbee2mqtt/bedroom_climate")
STATE_TOPICS = ("zigbee2mqtt/living_light", "zigbee2mqtt/bedroom_fan", "zigbee2mqtt/living_thermostat")
MOTION = "zigbee2mqtt/living_motion"


def test_fuzzed_payloads_never_stall_nor_fake_a_person(
    bundle_path: Path, broker: Broker, observer: Observer, tmp_path: Path
) -> None:
    devices = EchoDevices(broker.port, INITIAL_STATES)
    cfg = parse_config(
        agent_config_dict(bundle_path, broker.port, tmp_path / "state", decision_tick_seconds=5)
    )
    agent = Agent(cfg)
    agent.start()
    rng = random.Random(20261202)
    try:
        assert agent.link.wait_connected(5)
        wait_until(lambda: all(d.tracker.reported is not None for d in agent.devices))
        rss_before = rss_mb()
        toggles = 0
        for i in range(N_PAYLOADS):
            if rng.random() < 0.5:
                topic, payload = rng.choice(SENSOR_TOPICS), sensor_payload(rng)
            else:
                topic, payload = rng.choice(STATE_TOPICS), state_payload(rng)
            observer.client.publish(topic, payload, qos=0)
            if i % 1000 == 999:  # a real event among the junk: it must still be decided
                toggles += 1
                observer.publish(MOTION, {"occupancy": toggles % 2 == 1, "illuminance": 5}, qos=1)
        observer.publish(MOTION, {"occupancy": True, "illuminance": 7}, qos=1)  # the sentinel, last in order
        wait_until(
            lambda: (
                any(
                    d.get("trigger", "").startswith("event") and d.get("time", 0) > 0
                    for d in observer.on("edge-agent/t1/decision/living.light")[-3:]
                )
                and agent.counters.messages >= N_PAYLOADS * 0.9
            ),
            timeout=120,
        )
        events = [
            d for d in observer.on("edge-agent/t1/decision/living.light") if d["trigger"].startswith("event")
        ]
        assert len(events) >= toggles // 2, f"{len(events)} event decisions for {toggles} motion toggles"
        assert agent.counters.overrides == 0, "an impossible state was taken for a person's change"
        assert agent.counters.errors == 0, "an unexpected exception reached the decider"
        assert agent.counters.invalid > N_PAYLOADS * 0.3
        assert rss_mb() - rss_before < 150, "memory grew by more than 150 MB under the fuzz"
        assert agent.stats()["connected"] and agent.counters.decisions > 0
    finally:
        agent.stop()
        devices.close()
