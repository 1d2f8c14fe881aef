"""A fresh install on a real mosquitto and a real SQLite file: the agent with no bundle observes — every
configured channel and every attributed device change lands in the database, the catalog describes the log,
nothing is sent, and the pause switches work over MQTT (state retained, flips recorded, kept over a restart)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import INITIAL_STATES, Broker, EchoDevices, Observer, agent_config_dict, wait_until
from sqlalchemy import select

from edge_agent.agent import Agent
from edge_agent.cli import main
from edge_agent.config import parse_config
from edge_agent.recorder import agent_state, device_changes, readings, switches

pytestmark = pytest.mark.integration


def rows(agent: Agent, table: Any) -> list[Any]:
    agent.recorder.flush()
    with agent.recorder.engine.connect() as c:
        return list(c.execute(select(table)).mappings())


def fresh_config(port: int, state: Path) -> dict[str, Any]:
    data = agent_config_dict(Path("unused"), port, state, mode="auto", timezone="UTC")
    data.pop("bundle")
    data["learning"] = {"recording_step_seconds": 1}
    return data


def test_fresh_install_observes_records_and_obeys_the_switches(
    broker: Broker, observer: Observer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = fresh_config(broker.port, tmp_path / "state")
    devices = EchoDevices(broker.port, INITIAL_STATES)
    agent = Agent(parse_config(data))
    agent.start()
    try:
        assert agent.link.wait_connected(5) and agent.bundle is None
        wait_until(lambda: all(d.tracker.reported is not None for d in agent.devices))
        for i in range(3):
            observer.publish(
                "zigbee2mqtt/living_motion", {"occupancy": i % 2 == 0, "illuminance": 5 + i}, qos=1
            )
            observer.publish("zigbee2mqtt/bedroom_climate", {"humidity": 90 + i}, qos=1)
            wait_until(lambda n=i: agent.counters.readings >= 3 * (n + 1))
        devices.person_sets("living_light", state="ON")
        wait_until(lambda: agent.devices[0].tracker.reported == 1.0)
        observer.publish("edge-agent/t1/pause_learning/set", b"ON", qos=1)
        wait_until(lambda: observer.on("edge-agent/t1/pause_learning")[-1:] == ["ON"])
        devices.person_sets("living_light", state="OFF")
        wait_until(lambda: agent.devices[0].tracker.reported == 0.0)

        def light_changes() -> list[Any]:
            return [r for r in rows(agent, device_changes) if r["device"] == "living.light"]

        ch = wait_until(lambda: len(light_changes()) >= 3 and light_changes())
        assert [(r["value"], r["source"], r["learning_paused"]) for r in ch] == [
            (0.0, "initial", False),
            (1.0, "person", False),
            (0.0, "person", True),
        ]
        assert not [t for t, _, _ in observer.messages if t.endswith("/set") and t.startswith("zigbee2mqtt/")]
        assert [(r["name"], r["value"]) for r in rows(agent, switches)] == [("pause_learning", True)]
        stats = wait_until(
            lambda: [s for s in observer.on("edge-agent/t1/stats") if s.get("pause_learning")]
        )[-1]
        assert stats["model_version"] == "none" and stats["devices"]["living.light"]["labels_collected"] == 1
        assert stats["devices"]["living.light"]["mode"] == "observe"
    finally:
        agent.stop()
        devices.close()
    agent2 = Agent(parse_config(data))  # a restart keeps the switch and the label count
    assert agent2.controller.switches.learning_paused is True
    assert agent2.controller.labels_collected == {"living.light": 1}
    chans = {r["channel"] for r in rows(agent2, readings)}
    assert {"living.motion", "living.illuminance", "bedroom.humidity"} <= chans
    cat = json.loads(next(r["value"] for r in rows(agent2, agent_state) if r["key"] == "catalog"))
    assert set(cat["channels"]) >= chans and cat["devices"]["living.heating"]["kind"] == "setpoint"
    agent2.recorder.close()
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(json.dumps(data))
    assert main(["check-config", str(cfg)]) == 0
    assert "the agent will observe" in capsys.readouterr().err
