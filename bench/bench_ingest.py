"""Ingest throughput: a bare paho subscriber (JSON parse + count) vs the daemon, same broker, same publisher.

QoS0 and QoS1 (publisher with a 1000-message in-flight window), N messages over 20 Zigbee2MQTT-style topics
(3 fields each -> 60 channels). Prints one JSON line per (subscriber, qos): msgs/s and messages lost.
Target: daemon >= 50% of the bare subscriber, zero loss at QoS1.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from _common import Mosquitto, emit
from paho.mqtt.enums import CallbackAPIVersion

N = {0: 60_000, 1: 30_000}
TOPICS = 20


def publisher(port: int, n: int, qos: int) -> None:
    window = threading.Semaphore(1000)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    c.max_inflight_messages_set(1000)
    c.on_publish = lambda *a: window.release()
    c.connect("127.0.0.1", port)
    c.loop_start()
    for i in range(n):
        if qos:
            window.acquire()
        payload = json.dumps(
            {"temperature": 20 + (i % 50) / 10, "humidity": 40 + i % 30, "co2": 400 + i % 500, "seq": i}
        )
        while c.publish(f"bench/s{i % TOPICS}", payload, qos=qos).rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            time.sleep(0.001)
    time.sleep(0.5)
    c.disconnect()
    c.loop_stop()


def run_publisher(port: int, n: int, qos: int) -> float:
    p = mp.get_context("spawn").Process(target=publisher, args=(port, n, qos))
    t0 = time.monotonic()
    p.start()
    return t0


def wait_count(get, n: int, t0: float) -> tuple[int, float]:
    last, last_change = -1, time.monotonic()
    while True:
        v = get()
        now = time.monotonic()
        if v != last:
            last, last_change = v, now
            t_end = now
        if v >= n or now - last_change > 3.0:
            return v, t_end - t0
        time.sleep(0.005)


def bare(port: int, n: int, qos: int) -> tuple[int, float]:
    count = [0]

    def on_msg(_c, _u, m):  # same work as a minimal real subscriber: decode + parse
        json.loads(m.payload)
        count[0] += 1

    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    c.on_message = on_msg
    ready = threading.Event()
    c.on_connect = lambda cl, *a: (cl.subscribe("bench/#", qos=qos), ready.set())
    c.connect("127.0.0.1", port)
    c.loop_start()
    ready.wait(5)
    time.sleep(0.2)
    t0 = run_publisher(port, n, qos)
    got, dt = wait_count(lambda: count[0], n, t0)
    c.disconnect()
    c.loop_stop()
    return got, dt


def daemon(port: int, n: int, qos: int, workdir: Path) -> tuple[int, float, dict]:
    from testbundle import build_bundle

    from edge_agent.agent import Agent
    from edge_agent.config import parse_config
    from edge_agent.manifest import ChannelSpec, DeviceSpec

    fields = {
        "temperature": ("temperature", 20.0, 5.0),
        "humidity": ("humidity", 50.0, 20.0),
        "co2": ("co2", 600.0, 300.0),
    }
    chans = [
        ChannelSpec(name=f"r{i}.{f}", kind=k, mean=m, std=s)
        for i in range(TOPICS)
        for f, (k, m, s) in fields.items()
    ]
    devs = [DeviceSpec(name="d.light", kind="binary")]
    bundle = build_bundle(
        workdir / f"b{qos}", chans, devs, np.zeros((len(chans), 1)), np.zeros(1), tiers=("full",)
    )
    cfg = parse_config(
        {
            "agent_id": f"bench{qos}",
            "mode": "shadow",
            "bundle": str(bundle),
            "state_dir": str(workdir / f"s{qos}"),
            "broker": {"host": "127.0.0.1", "port": port, "subscribe_qos": qos},
            "channels": [
                {"topic": f"bench/s{i}", "channel": f"r{i}.{f}", "field": f}
                for i in range(TOPICS)
                for f in fields
            ],
            "devices": [{"name": "d.light", "state_topic": "bench/light"}],
        }
    )
    agent = Agent(cfg)
    agent.start()
    agent.link.wait_connected(5)
    time.sleep(0.3)
    base = agent.counters.messages
    t0 = run_publisher(port, n, qos)
    got, dt = wait_count(lambda: agent.counters.messages - base, n, t0)
    extra = {
        "inbox_dropped": agent.link.counters.dropped,
        "invalid": agent.counters.invalid,
        "readings": agent.counters.readings,
    }
    agent.stop()
    return got, dt, extra


def main() -> None:
    broker = Mosquitto()
    try:
        with tempfile.TemporaryDirectory() as d:
            for qos in (0, 1):
                n = N[qos]
                got_b, dt_b = bare(broker.port, n, qos)
                rate_b = got_b / dt_b
                emit(
                    bench="ingest",
                    subscriber="bare-paho",
                    qos=qos,
                    messages=n,
                    received=got_b,
                    lost=n - got_b,
                    msgs_per_s=round(rate_b),
                )
                got_d, dt_d, extra = daemon(broker.port, n, qos, Path(d))
                rate_d = got_d / dt_d
                emit(
                    bench="ingest",
                    subscriber="edge-agent",
                    qos=qos,
                    messages=n,
                    received=got_d,
                    lost=n - got_d,
                    msgs_per_s=round(rate_d),
                    ratio_vs_bare=round(rate_d / rate_b, 3),
                    **extra,
                )
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
