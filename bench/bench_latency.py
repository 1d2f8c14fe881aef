"""Sensor -> command latency through mosquitto, CPU idle: publish a motion event, time until the light's
`/set` command arrives. Baseline in the same run: a bare paho relay (parse, publish the command) in its own
process. The daemon runs as `edge-agent run` in its own process. Prints p50/p99 (ms). Target p99 < 20 ms.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import yaml
from _common import ROOT, Mosquitto, emit, pct
from paho.mqtt.enums import CallbackAPIVersion

ITER = int(__import__("os").environ.get("ITER", 300))
MOTION = "zigbee2mqtt/living_motion"
SET = "zigbee2mqtt/living_light/set"


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


def measure(port: int) -> list[float]:
    got = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    c.on_message = lambda *a: got.set()
    ready = threading.Event()
    c.on_connect = lambda cl, *a: (nodelay(cl), cl.subscribe(SET, qos=1), ready.set())
    c.connect("127.0.0.1", port)
    c.loop_start()
    ready.wait(5)
    time.sleep(0.3)
    lat = []
    for i in range(ITER + 20):
        got.clear()
        t0 = time.perf_counter()
        c.publish(MOTION, json.dumps({"occupancy": i % 2 == 0, "illuminance": 5}), qos=0)
        if got.wait(1.0) and i >= 20:  # the first 20 are warm-up
            lat.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.01)
    c.disconnect()
    c.loop_stop()
    return lat


def main() -> None:
    from testbundle import home_bundle

    broker = Mosquitto()
    with tempfile.TemporaryDirectory() as d:
        try:
            p = mp.get_context("spawn").Process(target=relay, args=(broker.port,), daemon=True)
            p.start()
            time.sleep(0.5)
            lat = measure(broker.port)
            p.terminate()
            emit(
                bench="latency", path="bare-paho-relay", n=len(lat), p50_ms=pct(lat, 50), p99_ms=pct(lat, 99)
            )

            # 5 ms steps: each event is its own step (within a step, motion keeps its max, as in training)
            bundle = home_bundle(Path(d) / "bundle", step_seconds=0.005)
            dev = {"min_dwell_seconds": 0, "max_commands_per_hour": 1_000_000}
            cfg = {
                "agent_id": "bench",
                "mode": "auto",
                "bundle": str(bundle),
                "state_dir": str(Path(d) / "s"),
                "log_level": "WARNING",
                "broker": {"host": "127.0.0.1", "port": broker.port},
                "channels": [
                    {"topic": MOTION, "channel": "living.motion", "field": "occupancy"},
                    {"topic": MOTION, "channel": "living.illuminance", "field": "illuminance"},
                ],
                "devices": [{"name": "living.light", "state_topic": "zigbee2mqtt/living_light", **dev}],
            }
            (Path(d) / "c.yaml").write_text(yaml.safe_dump(cfg))
            agent = subprocess.Popen(
                [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(Path(d) / "c.yaml")], cwd=ROOT
            )
            time.sleep(2.0)
            lat = measure(broker.port)
            agent.terminate()
            agent.wait(10)
            emit(
                bench="latency",
                path="edge-agent",
                n=len(lat),
                p50_ms=pct(lat, 50),
                p99_ms=pct(lat, 99),
                max_ms=pct(lat, 100),
                missed=ITER - len(lat),
            )
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
