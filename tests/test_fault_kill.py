"""Fault suite, crashes: `edge-agent run` SIGKILLed at random moments up to 0.5 s after the agent recorded a
person's manual change, ten times over. Real mosquitto, real SQLite.

After every kill: `PRAGMA integrity_check` is ok, every override the agent saw is in the database, and the
restarted agent holds the device (its decision says `held`) and never commands it back.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import INITIAL_STATES, Broker, EchoDevices, Observer, agent_config_dict, wait_until

pytestmark = pytest.mark.integration

EDGE = [sys.executable, "-m", "edge_agent.cli", "run", "--config"]
LIGHT_SET = "zigbee2mqtt/living_light/set"
DECISION = "edge-agent/t1/decision/living.light"
KILLS = 10


class Running:
    """One `edge-agent run` subprocess whose stderr lines are collected (to see when it saw an override)."""

    def __init__(self, cfg: Path) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen([*EDGE, str(cfg)], stderr=subprocess.PIPE, text=True)
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._t.join(5)


def _config(tmp_path: Path, port: int, bundle: Path) -> Path:
    data: dict[str, Any] = agent_config_dict(bundle, port, tmp_path / "state", log_level="INFO")
    data["recorder"] = {"flush_interval_seconds": 5.0}  # the hold must not depend on the periodic flush
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def _motion(observer: Observer) -> bool:
    """Motion in the dark (off, then on: a change the agent decides on at once)."""
    observer.publish("zigbee2mqtt/living_motion", {"occupancy": False, "illuminance": 5})
    observer.publish("zigbee2mqtt/living_motion", {"occupancy": True, "illuminance": 5})
    time.sleep(0.2)
    return True


def _overrides(db: Path) -> int:
    with sqlite3.connect(db) as con:
        return int(con.execute("SELECT count(*) FROM overrides").fetchone()[0])


def test_sigkill_after_a_manual_change_never_loses_the_hold(
    bundle_path: Path, broker: Broker, observer: Observer, tmp_path: Path
) -> None:
    devices = EchoDevices(broker.port, INITIAL_STATES)
    cfg = _config(tmp_path, broker.port, bundle_path)
    db = tmp_path / "state" / "edge-agent.db"
    rng = random.Random(7)
    agent = Running(cfg)
    try:
        for k in range(KILLS):
            wait_until(lambda a=agent: a.saw("mqtt: connected"), timeout=60)
            # motion in the dark: the agent switches the light on (its command and echo)...
            n_set = len(observer.on(LIGHT_SET))
            # (re-sent until answered: the fresh process may not have its subscriptions acknowledged yet)
            wait_until(lambda n=n_set: _motion(observer) and len(observer.on(LIGHT_SET)) > n, 30, 0.5)
            wait_until(lambda: devices.state["living_light"]["state"] == "ON", timeout=10)
            time.sleep(0.2)  # the echo is back at the agent
            # ...a person switches it off; the agent sees it and is killed within 0.5 s
            devices.person_sets("living_light", state="OFF")
            wait_until(lambda k=k: _overrides(db) == k + 1, timeout=30)  # committed at once: the agent saw it
            time.sleep(rng.uniform(0.0, 0.5))
            agent.kill()
            with sqlite3.connect(db) as con:
                assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            n_over = _overrides(db)
            assert n_over == k + 1, f"kill {k}: {n_over} override rows for {k + 1} manual changes"
            # the restarted agent holds the light: motion in the dark is decided as `held`, nothing is sent
            n_set = len(observer.on(LIGHT_SET))
            n_dec = len(observer.on(DECISION))
            agent = Running(cfg)
            wait_until(lambda a=agent: a.saw("mqtt: connected"), timeout=60)
            dec = wait_until(
                lambda n=n_dec: (
                    _motion(observer)
                    and [d for d in observer.on(DECISION)[n:] if d["trigger"].startswith("event")]
                ),
                30,
                0.5,
            )
            assert all(d["held"] and d["reason"] == "held" for d in dec), dec
            assert len(observer.on(LIGHT_SET)) == n_set, "the restarted agent commanded a held device"
            assert devices.state["living_light"]["state"] == "OFF"
            # next round: the hold must end before the agent may act again (override_hold_seconds 600)
            with sqlite3.connect(db) as con:
                con.execute("UPDATE overrides SET hold_until = 0")
            agent.kill()
            with sqlite3.connect(db) as con:
                holds = con.execute("SELECT value FROM agent_state WHERE key = 'holds'").fetchone()
                if holds:
                    cleared = {d: {"held_until": None} for d in json.loads(holds[0])}
                    con.execute(
                        "UPDATE agent_state SET value = ? WHERE key = 'holds'", (json.dumps(cleared),)
                    )
            agent = Running(cfg)
    finally:
        if agent.proc.poll() is None:
            agent.kill()
        devices.close()


def test_broker_killed_five_times_while_streaming(
    bundle_path: Path, broker: Broker, observer: Observer, tmp_path: Path
) -> None:
    """mosquitto restarted 5 times under a sensor stream: the agent reconnects every time, keeps deciding on
    events after each restart, and counts no unexpected error."""
    from edge_agent.agent import Agent
    from edge_agent.config import parse_config

    cfg = parse_config(agent_config_dict(bundle_path, broker.port, tmp_path / "s", decision_tick_seconds=1))
    agent = Agent(cfg)
    agent.start()
    stop = threading.Event()

    def stream() -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        c.reconnect_delay_set(0.05, 0.2)
        c.connect_async("127.0.0.1", broker.port)
        c.loop_start()
        i = 0
        while not stop.is_set():
            c.publish("zigbee2mqtt/bedroom_climate", json.dumps({"humidity": 40 + i % 20}))
            i += 1
            stop.wait(0.01)
        c.loop_stop()

    t = threading.Thread(target=stream, daemon=True)
    t.start()
    obs = observer
    try:
        assert agent.link.wait_connected(10)
        for _ in range(5):
            connects = agent.link.counters.connects
            broker.restart(down_seconds=0.3)
            wait_until(
                lambda c=connects: agent.link.counters.connects > c and agent.link.connected.is_set(), 30
            )
            obs.close()
            obs = Observer(broker.port, ["edge-agent/#"])
            n = agent.counters.decisions
            readings = agent.counters.readings
            wait_until(lambda n=n, o=obs: _motion(o) and agent.counters.decisions > n, 30, 0.5)
            wait_until(lambda r=readings: agent.counters.readings > r, 30)  # the stream comes back too
        assert agent.counters.errors == 0 and agent.link.counters.connects >= 6
    finally:
        stop.set()
        t.join(5)
        agent.stop()
        if obs is not observer:
            obs.close()
