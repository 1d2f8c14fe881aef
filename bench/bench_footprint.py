"""Daemon footprint: RSS with 200 channels and 10 devices fed for a few seconds (target <= 100 MB), and cold
start (process spawn) to first published decision (target < 2 s). Baselines in the same run: a bare Python
interpreter, and a process that only imports the runtime's libraries (numpy, onnxruntime, paho, SQLAlchemy,
APScheduler, pydantic)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import psutil
import yaml
from _common import ROOT, Mosquitto, emit
from paho.mqtt.enums import CallbackAPIVersion

N_TOPICS, FIELDS, N_DEV = 40, 5, 10  # 40 topics x 5 fields = 200 channels
IMPORTS = (
    "import numpy, onnxruntime, paho.mqtt.client, sqlalchemy, pydantic, psutil, yaml\n"
    "from apscheduler.schedulers.background import BackgroundScheduler"
)


def baseline(code: str) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of `python -c code` (VmHWM: ru_maxrss would inherit the parent's peak)."""
    t0 = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            code + "\nfor line in open('/proc/self/status'):\n"
            "    if line.startswith('VmHWM'): print(line.split()[1])",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - t0, int(out.stdout.split()[-1]) / 1024


def main() -> None:
    from testbundle import build_bundle

    from edge_agent.manifest import ChannelSpec, DeviceSpec

    wall, rss = baseline("pass")
    emit(bench="footprint", process="bare-python", start_s=round(wall, 3), max_rss_mb=round(rss, 1))
    wall, rss = baseline(IMPORTS)
    emit(bench="footprint", process="runtime-imports-only", start_s=round(wall, 3), max_rss_mb=round(rss, 1))

    kinds = [
        ("temperature", 20.0, 5.0),
        ("humidity", 50.0, 20.0),
        ("illuminance", 100.0, 100.0),
        ("co2", 600.0, 300.0),
        ("motion", 0.0, 1.0),
    ]
    fields = [k for k, _, _ in kinds]
    chans = [
        ChannelSpec(name=f"r{i}.{k}", kind=k, mean=m, std=s) for i in range(N_TOPICS) for k, m, s in kinds
    ]  # type: ignore[arg-type]
    devs = [DeviceSpec(name=f"r{j}.light", kind="binary") for j in range(N_DEV)]
    rng = np.random.default_rng(0)
    broker = Mosquitto()
    with tempfile.TemporaryDirectory() as d:
        try:
            bundle = build_bundle(
                Path(d) / "bundle",
                chans,
                devs,
                rng.normal(size=(len(chans), N_DEV)),
                np.zeros(N_DEV),
                window=64,
                step_seconds=10.0,
            )
            cfg = {
                "agent_id": "fp",
                "mode": "auto",
                "bundle": str(bundle),
                "state_dir": str(Path(d) / "s"),
                "log_level": "WARNING",
                "decision_tick_seconds": 0.2,
                "broker": {"host": "127.0.0.1", "port": broker.port},
                "channels": [
                    {"topic": f"fp/s{i}", "channel": f"r{i}.{f}", "field": f}
                    for i in range(N_TOPICS)
                    for f in fields
                ],
                "devices": [{"name": f"r{j}.light", "state_topic": f"fp/light{j}"} for j in range(N_DEV)],
            }
            (Path(d) / "c.yaml").write_text(yaml.safe_dump(cfg))
            first = threading.Event()
            c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
            c.on_message = lambda *a: first.set()
            ready = threading.Event()
            c.on_connect = lambda cl, *a: (cl.subscribe("edge-agent/fp/decision/#"), ready.set())
            c.connect("127.0.0.1", broker.port)
            c.loop_start()
            ready.wait(5)
            time.sleep(0.2)
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(Path(d) / "c.yaml")], cwd=ROOT
            )
            ok = first.wait(30)
            cold = time.perf_counter() - t0
            for rnd in range(50):  # feed every channel for a while
                for i in range(N_TOPICS):
                    c.publish(
                        f"fp/s{i}",
                        json.dumps(
                            {
                                "temperature": 20 + rnd % 5,
                                "humidity": 45,
                                "illuminance": 80,
                                "co2": 500,
                                "motion": rnd % 2 == 0,
                            }
                        ),
                    )
                time.sleep(0.05)
            time.sleep(1.0)
            p = psutil.Process(proc.pid)
            mem = p.memory_full_info()
            threads = p.num_threads()
            proc.terminate()
            rc = proc.wait(20)
            emit(
                bench="footprint",
                process="edge-agent",
                channels=len(chans),
                devices=N_DEV,
                note="rss includes shared library pages; uss is the process's own memory",
                cold_start_to_first_decision_s=round(cold, 3) if ok else None,
                rss_mb=round(mem.rss / 2**20, 1),
                uss_mb=round(mem.uss / 2**20, 1),
                threads=threads,
                exit_code=rc,
            )
            c.disconnect()
            c.loop_stop()
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
