"""The agent on the simulated home (SimHomeDriver on a real mosquitto), sharing its scaled sim clock."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import Broker, wait_until
from sqlalchemy import func, select
from testbundle import simhome_bundle

from edge_agent.agent import Agent
from edge_agent.recorder import commands, readings
from simhome import SimHomeDriver
from simhome.config import simhome_config
from simhome.layout import CHANNEL_NAMES

pytestmark = pytest.mark.integration


def test_simulated_home_end_to_end(tmp_path: Path, broker: Broker) -> None:
    """Z2M sensor messages in -> valid commands on the devices' /set topics, all channels recorded, no
    invalid payloads; the person's changes are seen as overrides, the agent's own echoes are not."""
    bundle = simhome_bundle(tmp_path / "bundle")
    start = dt.datetime(2026, 1, 14, 18, 30, tzinfo=ZoneInfo("Europe/Brussels"))  # dark winter evening, home
    driver = SimHomeDriver("127.0.0.1", broker.port, speed=300.0, seed=3, start=start)
    cfg = simhome_config(bundle, port=broker.port, state_dir=tmp_path / "state", decision_tick_seconds=60.0)
    driver.start()
    agent = Agent(cfg, clock=driver.clock)
    agent.start()
    try:
        assert driver.wait_connected(5) and agent.link.wait_connected(5)
        wait_until(lambda: sum(driver.stats()["commands"].values()) >= 3, timeout=20)
        wait_until(lambda: agent.counters.readings >= 50, timeout=10)
    finally:
        agent.stop()
        driver.stop()
    st = driver.stats()
    assert st["bad_commands"] == 0
    assert agent.counters.invalid == 0 and agent.counters.errors == 0
    eng = agent.recorder.engine
    with eng.connect() as c:
        chans = {r[0] for r in c.execute(select(readings.c.channel).distinct())}
        sent = c.execute(
            select(func.count()).select_from(commands).where(commands.c.status == "sent")
        ).scalar()
    assert chans >= set(CHANNEL_NAMES) - {"hall.door"}  # the door may not move in a few sim minutes
    assert sent >= 3
    # every manual change the person made after a command is an override the agent saw (echoes are not)
    person_changes = sum(st["overrides"].values()) + sum(st["manual_changes"].values())
    assert agent.counters.overrides <= person_changes
