"""Sensor -> decision latency through mosquitto, CPU idle vs both cores saturated, governor on vs pinned `full`.

Setup (all real processes): mosquitto; `edge-agent run` on the simulated home's layout (17 channels, 5 devices)
with a CatVsn bundle (the committed demo bundle if present, else an untrained CatVsn exported by `training/`:
the latency of a tier does not depend on its weights); a background publisher with the home's slow sensors
(`--bg-rate` msgs/s); a probe that toggles `living_motion` every `--probe-ms` and times until the agent's
decision for `living.light` (trigger `event:living.motion`) arrives on `edge-agent/<id>/decision/living.light`.
The decision is published right after the commands of that decision are handed to paho, so it bounds the
sensor -> command latency from above. Under (b) two `while True: pass` processes at normal priority saturate
both cores. The two agents compared (pinned `full`, governed) run side by side, each with its own broker and
background sensors, and are probed in interleaved blocks (`--block` s), so both see the same background load
from whatever else runs on the machine. Rows: one JSON line per (load, agent) with the tiers seen, the agent's
own decision latency p50/p99 (stats topic), decisions/s (probe answers; all agent decisions incl. ticks) and
system CPU. `--extra`: the cheap levers in the same run (agent at nice -5; agent and broker at nice -5; hogs at
nice 19). Niceness below 0 needs root or CAP_SYS_NICE (else procprio logs one warning and the row is at 0).
`--events-hours H` (default 24; 0 = off): first, every tier's event response in closed loop on the simulated
home (`training.tierevents`, needs the training extra): per tier, the event-triggered decisions, the full
tier's commands among them, missed and wrong commands, and the agreement with the full tier (target >= 99 %).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import yaml
from _common import ROOT, Mosquitto, emit, pct
from paho.mqtt.enums import CallbackAPIVersion

DEMO_BUNDLE = ROOT / "simhome" / "demo_bundle"
AGENT_ID = "bench"
MOTION = "zigbee2mqtt/living_motion"
DECISION = f"edge-agent/{AGENT_ID}/decision/living.light"
STATS = f"edge-agent/{AGENT_ID}/stats"
HOG = "while True: pass"

# governed: short reaction so the bench reaches the steady tier within its warm-up
GOVERNED = {
    "sample_seconds": 0.5,
    "cpu_smoothing_seconds": 1.0,
    "down_after_seconds": 1.0,
    "min_seconds_per_tier": 2.0,
    "up_after_seconds": 30.0,
}


def build_bundle(out: Path) -> Path:
    """The demo bundle, or an untrained CatVsn over the simulated home's channels (needs torch)."""
    if (DEMO_BUNDLE / "manifest.json").is_file():
        return DEMO_BUNDLE
    import torch

    from edge_agent.manifest import ChannelSpec, DeviceSpec
    from simhome.layout import CHANNELS, DEVICES
    from training.bundle import BundleSpec, default_budget, write_bundle
    from training.model import CatVsn, DeviceHead, ModelConfig

    torch.manual_seed(0)
    scale = {"illuminance": 100.0, "temperature": 5.0, "humidity": 20.0, "co2": 300.0, "power": 1000.0}
    chans = [
        ChannelSpec(name=c.name, kind=c.kind, unit=c.unit, mean=0.0, std=scale.get(c.kind, 1.0))
        for c in CHANNELS
    ]
    devs = [
        DeviceSpec(
            name=d.name,
            kind=d.kind,
            unit=d.unit,
            levels=d.levels,
            min_value=d.min_value,
            max_value=d.max_value,
        )
        for d in DEVICES
    ]
    heads = [
        DeviceHead(d.name, d.kind, levels=d.levels, min_value=d.min_value, max_value=d.max_value)
        for d in DEVICES
    ]
    kinds = [c.kind for c in CHANNELS]
    full = CatVsn(ModelConfig(kinds, heads, window=64, patch=8, d=32))
    coarse = CatVsn(ModelConfig(kinds, heads, window=16, patch=2, d=24, time_factor=4))
    n, c = 64, len(chans)
    rng = np.random.default_rng(0)
    pool = (
        rng.normal(size=(n, c, 64)).astype(np.float32),
        np.ones((n, c), np.float32),
        np.tile(np.arange(c, dtype=np.int64), (n, 1)),
    )
    spec = BundleSpec(
        version="bench-untrained",
        dataset="none",
        step_seconds=10.0,
        window=64,
        channels=chans,
        devices=devs,
        channel_budget=default_budget(c),
    )
    write_bundle(out, spec, full, coarse, 4, pool, latency_runs=300)
    return out


def agent_config(
    bundle: Path, port: int, state_dir: Path, governor: dict[str, Any], nice: int | None
) -> dict:
    from simhome.config import simhome_config_dict

    dev = {"min_dwell_seconds": 0, "max_commands_per_hour": 1_000_000}
    cfg = simhome_config_dict(
        bundle,
        port=port,
        state_dir=state_dir,
        agent_id=AGENT_ID,
        mode="auto",
        decision_tick_seconds=1.0,
        stats_interval_seconds=1.0,
        log_level="WARNING",
        governor=governor,
        process={"nice": nice},
    )
    for d in cfg["devices"]:
        d.update(dev)
    return cfg


class Probe:
    """Publishes motion toggles and times the agent's event decision; also collects the stats topic."""

    def __init__(self, port: int) -> None:
        self.stats: list[dict[str, Any]] = []
        self._got = threading.Event()
        self._tier: str | None = None
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.c.on_message = self._on_message
        ready = threading.Event()
        self.c.on_connect = lambda cl, *a: (cl.subscribe([(DECISION, 0), (STATS, 0)]), ready.set())
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        assert ready.wait(5)
        self.state = False

    def _on_message(self, _c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        d = json.loads(m.payload)
        if m.topic == STATS:
            self.stats.append(d)
        elif str(d.get("trigger", "")).startswith("event:") and "living.motion" in d["trigger"]:
            self._tier = d.get("tier")
            self._got.set()

    def measure(self, seconds: float, period: float) -> tuple[list[float], list[str], int]:
        lat, tiers, missed = [], [], 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.state = not self.state
            self._got.clear()
            t0 = time.perf_counter()
            self.c.publish(MOTION, json.dumps({"occupancy": self.state, "illuminance_lux": 5}), qos=0)
            if self._got.wait(2.0):
                lat.append((time.perf_counter() - t0) * 1000.0)
                tiers.append(self._tier or "?")
            else:
                missed += 1
            time.sleep(max(0.0, period - (time.perf_counter() - t0)))
        return lat, tiers, missed

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def background(port: int, rate: float, stop: threading.Event) -> None:
    """The home's slow sensors: climate, CO2, power, outdoor, at `rate` messages/s in total."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    c.connect("127.0.0.1", port)
    c.loop_start()
    rng = np.random.default_rng(1)
    topics = [
        "zigbee2mqtt/living_climate",
        "zigbee2mqtt/kitchen_climate",
        "zigbee2mqtt/bedroom_climate",
        "zigbee2mqtt/house_meter",
        "zigbee2mqtt/outdoor_sensor",
    ]
    i = 0
    while not stop.is_set():
        t = topics[i % len(topics)]
        i += 1
        c.publish(
            t,
            json.dumps(
                {
                    "temperature": round(20 + rng.normal(), 2),
                    "humidity": round(50 + rng.normal(), 1),
                    "co2": int(600 + 50 * rng.normal()),
                    "power": int(500 + 100 * rng.normal()),
                }
            ),
        )
        stop.wait(1.0 / rate)
    c.disconnect()
    c.loop_stop()


def start_hogs(n: int, nice: int) -> list[subprocess.Popen[bytes]]:
    pre = (lambda: os.nice(nice)) if nice else None
    return [subprocess.Popen([sys.executable, "-c", HOG], preexec_fn=pre) for _ in range(n)]


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        p.wait(5)


class Setup:
    """One agent under test: its own mosquitto, `edge-agent run` process, background sensors and probe."""

    def __init__(
        self,
        name: str,
        args: argparse.Namespace,
        bundle: Path,
        tmp: Path,
        governor: dict[str, Any],
        agent_nice: int | None = None,
        broker_nice: int | None = None,
    ) -> None:
        self.name, self.agent_nice, self.broker_nice = name, agent_nice, broker_nice
        self.broker = Mosquitto()
        if broker_nice is not None:
            os.setpriority(os.PRIO_PROCESS, self.broker.proc.pid, broker_nice)
        self.state = Path(tempfile.mkdtemp(dir=tmp))
        cfg_path = self.state / "agent.yaml"
        cfg_path.write_text(
            yaml.safe_dump(agent_config(bundle, self.broker.port, self.state, governor, agent_nice))
        )
        with (self.state / "agent.log").open("wb") as log:
            self.agent = subprocess.Popen(
                [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(cfg_path)],
                cwd=ROOT,
                stderr=log,
            )
        self.stop = threading.Event()
        self.probe: Probe | None = None
        self.probe = Probe(self.broker.port)
        deadline = time.monotonic() + 20
        while not self.probe.stats and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self.probe.stats:
            self.close()
            raise RuntimeError(f"agent did not start; see {self.state / 'agent.log'}")
        threading.Thread(
            target=background, args=(self.broker.port, args.bg_rate, self.stop), daemon=True
        ).start()

    def close(self) -> None:
        self.stop.set()
        if self.probe is not None:
            self.probe.close()
        self.agent.terminate()
        try:
            self.agent.wait(15)
        except subprocess.TimeoutExpired:
            self.agent.kill()
        self.broker.stop()


def phase(
    args: argparse.Namespace, setups: list[Setup], load: str, hog_nice: int = 0
) -> list[dict[str, Any]]:
    """Measure every setup under `load`, interleaved in blocks so all see the same background over time."""
    import psutil

    hogs = start_hogs(args.hogs, hog_nice) if load == "saturated" else []
    period = args.probe_ms / 1000.0
    res: dict[str, dict[str, Any]] = {s.name: {"lat": [], "tiers": [], "missed": 0, "t": 0.0} for s in setups}
    try:
        for s in setups:  # warm-up (the governed agent settles on its tier under this load)
            s.probe.measure(args.warmup / len(setups), period)
        s0 = {s.name: s.probe.stats[-1] for s in setups}
        t_phase = time.monotonic()
        psutil.cpu_percent(None)
        rounds = max(1, round(args.seconds / args.block))
        for _ in range(rounds):
            for s in setups:
                t0 = time.monotonic()
                lat, tiers, missed = s.probe.measure(args.block, period)
                r = res[s.name]
                r["lat"] += lat
                r["tiers"] += tiers
                r["missed"] += missed
                r["t"] += time.monotonic() - t0
        cpu = psutil.cpu_percent(None)
        time.sleep(1.2)  # one more stats message covering the phase
        dt = time.monotonic() - t_phase
    finally:
        stop_all(hogs)
    rows = []
    for s in setups:
        r, st1 = res[s.name], s.probe.stats[-1]
        row = {
            "bench": "governor",
            "load": load,
            "agent": s.name,
            "n": len(r["lat"]),
            "missed": r["missed"],
            "p50_ms": pct(r["lat"], 50),
            "p99_ms": pct(r["lat"], 99),
            "max_ms": pct(r["lat"], 100),
            "tiers": {t: r["tiers"].count(t) for t in sorted(set(r["tiers"]))},
            "agent_p50_ms": st1.get("latency_ms_p50"),
            "agent_p99_ms": st1.get("latency_ms_p99"),
            "probe_decisions_per_s": round(len(r["lat"]) / max(r["t"], 1e-9), 1),
            "agent_decisions_per_s": round((st1["decisions"] - s0[s.name]["decisions"]) / dt, 1),
            "system_cpu_percent": cpu,
        }
        if s.agent_nice is not None:
            row["agent_nice"] = s.agent_nice
        if s.broker_nice is not None:
            row["broker_nice"] = s.broker_nice
        if load == "saturated":
            row.update(hogs=args.hogs, hog_nice=hog_nice)
        rows.append(row)
        emit(**row)
    return rows


def group(
    args: argparse.Namespace,
    bundle: Path,
    tmp: Path,
    loads: list[tuple[str, int]],
    agent_nice: int | None = None,
    broker_nice: int | None = None,
) -> list[dict[str, Any]]:
    setups: list[Setup] = []
    try:
        for name, gov in (("pinned-full", {"pinned_tier": "full"}), ("governor", dict(GOVERNED))):
            setups.append(Setup(name, args, bundle, tmp, gov, agent_nice, broker_nice))
        rows = []
        for load, hog_nice in loads:
            rows += phase(args, setups, load, hog_nice)
        return rows
    finally:
        for s in setups:
            s.close()


def events(bundle: Path, hours: float) -> None:
    """One JSON line per tier: its event response in closed loop (training.tierevents), vs the full tier."""
    from edge_agent.manifest import read_manifest
    from training.tierevents import event_report

    man = read_manifest(bundle)
    for tier, r in event_report(bundle, man, hours=hours).items():
        spec = man.tier(tier)
        emit(
            bench="governor",
            what="event_response_closed_loop",
            tier=tier,
            hours_per_start=hours,
            offered_in_manifest=spec.offered,
            target="agreement_relevant >= 0.99, missed + wrong <= 1 % of full's commands",
            **{k: v for k, v in r.items() if k != "devices"},
            per_device={d: [c["relevant"], c["missed"], c["wrong"]] for d, c in r["devices"].items()},
            per_device_note="[relevant, missed, wrong]",
        )


def tier_latency(bundle: Path, rounds: int = 40, per_round: int = 50) -> None:
    """One JSON line per (tier, fed channels): the daemon's `Bundle.run` latency (us p50/p99), measured in
    interleaved rounds with the `full` tier on every channel as the same-run baseline. Budgeted tiers at
    k + calendar (a periodic tick) and + 3 (a triggering channel's room, the usual event)."""
    from edge_agent.features import pool_time
    from edge_agent.inference import Bundle

    b = Bundle.load(bundle)
    man, c, w = b.manifest, len(b.manifest.channels), b.manifest.window
    rng = np.random.default_rng(0)
    x = (
        rng.normal(size=(c, w)).astype(np.float32) * np.asarray(b.std, np.float32)[:, None]
        + np.asarray(b.mean, np.float32)[:, None]
    )
    cases: list[tuple[str, int]] = []
    for t in man.tiers:
        k = t.channel_budget
        n_cal = sum(ch.kind == "calendar" for ch in man.channels)
        cases += (
            [(t.name, c)] if k is None else [(t.name, min(c, k + n_cal)), (t.name, min(c, k + n_cal + 3))]
        )
    times: dict[tuple[str, int], list[float]] = {case: [] for case in cases}
    base: list[float] = []
    for _ in range(rounds):
        for case in cases:
            t = man.tier(case[0])
            ids = np.arange(case[1], dtype=np.int64)
            xs = pool_time(x[ids], t.time_factor, b.event[ids])
            for _ in range(per_round):
                t0 = time.perf_counter()
                b.run(t.name, xs, np.ones(case[1], np.float32), ids)
                times[case].append((time.perf_counter() - t0) * 1e6)
            for _ in range(per_round // len(cases) + 1):
                t0 = time.perf_counter()
                b.run("full", x, np.ones(c, np.float32), np.arange(c, dtype=np.int64))
                base.append((time.perf_counter() - t0) * 1e6)
    for (name, fed), v in times.items():
        emit(
            bench="governor",
            what="tier_latency_us",
            tier=name,
            file=man.tier(name).file,
            channels_fed=fed,
            p50=round(float(np.percentile(v, 50)), 1),
            p99=round(float(np.percentile(v, 99)), 1),
            baseline="full, every channel, same run",
            baseline_p50=round(float(np.percentile(base, 50)), 1),
            baseline_p99=round(float(np.percentile(base, 99)), 1),
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="measured seconds per agent and load")
    ap.add_argument("--block", type=float, default=5.0, help="seconds per interleaved measurement block")
    ap.add_argument("--warmup", type=float, default=14.0, help="warm-up seconds per load (governor settles)")
    ap.add_argument("--probe-ms", type=float, default=50.0, help="motion toggle period (ms)")
    ap.add_argument("--bg-rate", type=float, default=20.0, help="background sensor messages/s per agent")
    ap.add_argument("--hogs", type=int, default=2, help="busy processes for the saturated load")
    ap.add_argument(
        "--extra", action="store_true", help="also the cheap levers: niceness of agent/broker/hogs"
    )
    ap.add_argument("--events-hours", type=float, default=24.0, help="closed-loop hours per start (0 = off)")
    ap.add_argument("--events-only", action="store_true", help="only the closed-loop event rows")
    ap.add_argument("--bundle", type=Path, default=None, help="this bundle instead of the demo bundle")
    ap.add_argument("--tier-latency", action="store_true", help="per tier Bundle.run latency, then stop")
    args = ap.parse_args()
    import psutil

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bundle = args.bundle if args.bundle is not None else build_bundle(tmp / "bundle")
        from edge_agent.manifest import read_manifest

        m = read_manifest(bundle)
        emit(
            bench="governor",
            bundle=m.version,
            tiers={t.name: [t.latency_us_p50, t.latency_us_p99] for t in m.tiers},
            cores=os.cpu_count(),
            other_cpu_percent_before=psutil.cpu_percent(2.0),
            note="tier latencies: us p50/p99 at export; other_cpu: load from other processes before the run",
        )
        if args.tier_latency:
            tier_latency(bundle)
            return
        if args.events_hours > 0:
            events(bundle, args.events_hours)
        if args.events_only:
            return
        rows = group(args, bundle, tmp, [("idle", 0), ("saturated", 0)])
        sat = {r["agent"]: r for r in rows if r["load"] == "saturated"}
        if sat["governor"]["p99_ms"] and sat["pinned-full"]["p99_ms"]:
            emit(
                bench="governor",
                summary="saturated p99 pinned-full / governor",
                ratio=round(sat["pinned-full"]["p99_ms"] / sat["governor"]["p99_ms"], 2),
                targets="governor p99 < 50 ms and ratio >= 3",
            )
        if args.extra:  # the cheap levers, each with the governor on and pinned
            group(args, bundle, tmp, [("saturated", 0)], agent_nice=-5)
            group(args, bundle, tmp, [("saturated", 0)], agent_nice=-5, broker_nice=-5)
            group(args, bundle, tmp, [("saturated", 19)])


if __name__ == "__main__":
    main()
