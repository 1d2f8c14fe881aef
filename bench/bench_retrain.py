"""The retrain's proof and performance, as JSON lines (every figure with its same-run baseline).

Part 1 `retrain_proof` (simhome.proof_retrain): the simulated home, observed OBSERVE_DAYS, a first model,
then DAYS days in auto with the nightly retrain, twice from the same seed: the person's hidden preference
changed (lights wanted on in brighter daylight, evening heating +1 °C) and unchanged (the control). One line
per day and one summary per run: overrides per day on days 1-2 vs the last 3, agreement with the hidden
preference, per device against day 1, and what every retrain promoted or kept and why. Targets (issue 16):
overrides of the last 3 days <= half of days 1-2, agreement of the last 3 days >= 95 %, no device below its
day-1 agreement; the control run promotes nothing that makes a device worse on the held-out days.

Part 2 `retrain_perf`: a running Agent (real mosquitto, real SQLite) serving a champion, LOG_DAYS days of a
home's log in its database (tests/homelog.py). Motion events one at a time (publish, wait for the command):
decision latency p50/p99 without a retrain, then while `retrain/set` runs the retrain in the daemon
(training child at the lowest priority): ratio, retrain wall time and the child's peak RSS. Then a hot swap
(`rollback/set`, or the promotion itself) under a steady event stream: messages lost and the longest gap
between two decisions around the swap vs the longest gap without one (events wait for their decision).

    PART=proof|perf|all  RUNS=changed,unchanged  OBSERVE_DAYS=14 DAYS=10 EPOCHS=12 HALF_LIFE_DAYS=7 LOG_DAYS=30  .venv/bin/python bench/bench_retrain.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import yaml
from _common import Mosquitto, emit, pct
from conftest import EchoDevices
from homelog import T_START, generated_log, home_config
from paho.mqtt.enums import CallbackAPIVersion
from testbundle import build_bundle

from edge_agent.agent import Agent
from edge_agent.bundlestore import BundleStore
from edge_agent.config import load_config
from edge_agent.manifest import ChannelSpec, DeviceSpec
from edge_agent.stats import LatencyStats

PART = os.environ.get("PART", "all")
OBSERVE_DAYS = float(os.environ.get("OBSERVE_DAYS", 14))
DAYS = int(os.environ.get("DAYS", 10))
EPOCHS = int(os.environ.get("EPOCHS", 12))
HOLDOUT = float(os.environ.get("HOLDOUT_DAYS", 2))
# recency of the labels (learning.retrain.half_life_days)
HALF_LIFE = float(os.environ.get("HALF_LIFE_DAYS", 7))
EXTRA = os.environ.get("TRAIN_ARGS", "").split()
LOG_DAYS = int(os.environ.get("LOG_DAYS", 30))
# the proof's runs; one per process runs them in parallel
RUNS = os.environ.get("RUNS", "changed,unchanged").split(",")
EVENTS = int(os.environ.get("EVENTS", 300))
MOTION = "zigbee2mqtt/living_motion"
SET = "zigbee2mqtt/living_light/set"
DECISION = "edge-agent/perf/decision/living.light"


# ---- part 1: the proof -----------------------------------------------------------------------------------
def proof(tmp: Path) -> dict[str, Any]:
    from simhome.proof_retrain import RetrainProofSettings, run_retrain_proof

    out: dict[str, Any] = {}
    for change in (True, False):
        name = "changed" if change else "unchanged"
        if name not in RUNS:
            continue
        s = RetrainProofSettings(
            observe_days=OBSERVE_DAYS,
            days=DAYS,
            change=change,
            epochs=EPOCHS,
            holdout_days=HOLDOUT,
            half_life_days=HALF_LIFE,
            train_args=EXTRA,
        )
        t0 = time.monotonic()
        r = run_retrain_proof(
            tmp / name, s, lambda m, n=name: print(f"# {n}: {m}", file=sys.stderr, flush=True)
        )
        for d in r.days:
            emit(bench="retrain_proof_day", run=name, **d.summary())
        first, last = r.days[:2], r.days[-3:]
        ov_first = sum(d.overrides for d in first) / len(first)
        ov_last = sum(d.overrides for d in last) / len(last)
        ag_last = float(np.mean([d.agreement for d in last]))
        day1 = r.days[0].per_device
        below = {k: round(np.mean([d.per_device[k] for d in last]) - v, 4) for k, v in day1.items()}
        worse_promoted = [
            {"day": p["day"], "device": dev, **v}
            for p in r.promotions
            for dev, v in p["devices"].items()
            if v["champion"] is not None
            and v["challenger"] is not None
            and v["challenger"] < v["champion"] - s.tolerance
        ]
        summary = {
            "bench": "retrain_proof",
            "run": name,
            "seed": s.seed,
            "half_life_days": s.half_life_days,
            "holdout_days": s.holdout_days,
            "observe_days": s.observe_days,
            "days": s.days,
            "first_model": r.first_model,
            "overrides_per_day_days_1_2": ov_first,
            "overrides_per_day_last_3": ov_last,
            "agreement_day_1": round(r.days[0].agreement, 4),
            "agreement_last_3": round(ag_last, 4),
            "device_last_3_minus_day_1": below,
            "promoted": [p["day"] for p in r.promotions],
            "outcomes": [d.outcome for d in r.days],
            "promoted_with_a_device_worse_on_heldout": worse_promoted,
            "wall_s": round(time.monotonic() - t0, 1),
        }
        if change:
            summary["targets"] = {
                "overrides_last_3_le_half_days_1_2": ov_last <= 0.5 * ov_first,
                "agreement_last_3_ge_95": ag_last >= 0.95,
                "no_device_below_day_1": all(v >= 0 for v in below.values()),
            }
        else:
            summary["targets"] = {"no_promotion_makes_a_device_worse": not worse_promoted}
        emit(**summary)
        out[name] = summary
    return out


# ---- part 2: performance ---------------------------------------------------------------------------------
class Stream:
    """Motion events one at a time (publish, wait for the light's decision); decisions' arrival times and the
    commands seen (each one's device echo is a message the agent receives too)."""

    def __init__(self, port: int) -> None:
        self.got = threading.Event()
        self.commands = 0
        self.decisions: list[float] = []
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.c.on_message = self._msg
        ready = threading.Event()
        self.c.on_connect = lambda cl, *a: (cl.subscribe([(SET, 1), (DECISION, 1)]), ready.set())
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        assert ready.wait(5)
        self.i = 0
        self.sent = 0

    def _msg(self, _c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        if m.topic == SET:
            self.commands += 1
        else:
            self.decisions.append(time.monotonic())
            self.got.set()

    def probe(self) -> float | None:
        self.got.clear()
        t0 = time.perf_counter()
        on = self.i % 2 == 0
        self.c.publish(MOTION, json.dumps({"occupancy": on, "illuminance": 5 if on else 2000}), qos=1)
        self.i += 1
        self.sent += 1
        ok = self.got.wait(2.0)
        ms = (time.perf_counter() - t0) * 1000
        time.sleep(0.05)
        return ms if ok else None

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def champion_bundle(out: Path, channels: list[str]) -> Path:
    """A champion over the home log's channels: light on with motion in the dark."""
    kinds = {"motion": "motion", "illuminance": "illuminance", "temperature": "temperature", "co2": "co2"}
    specs = [
        ChannelSpec(
            name=c, kind=kinds.get(c.split(".")[-1], "generic"), mean=0.0, std=100.0 if "illum" in c else 1.0
        )
        for c in channels
    ]
    w = np.zeros((len(specs), 1))
    w[channels.index("living.motion"), 0], w[channels.index("living.illuminance"), 0] = 8.0, -4.0
    return build_bundle(
        out,
        specs,
        [DeviceSpec(name="living.light", kind="binary", threshold=0.5)],
        w,
        np.array([-4.0]),
        version="champion-1",
        step_seconds=60.0,
        window=16,
        metrics={"data_end": 0.0},
    )


def phase(agent: Agent, stream: Stream, until: Any) -> dict[str, Any]:
    agent.controller.latency = LatencyStats(n=100_000)
    rtt, lost, n = [], 0, 0
    while not until(n):
        ms = stream.probe()
        n += 1
        if ms is None:
            lost += 1
        elif n > 10:
            rtt.append(ms)
    p50, p99 = agent.controller.latency.percentiles()
    return {
        "events": n,
        "no_decision": lost,
        "decision_ms_p50": p50,
        "decision_ms_p99": p99,
        "rtt_ms_p99": pct(rtt, 99),
    }


def max_gap(times: list[float], lo: float, hi: float) -> float | None:
    t = [x for x in times if lo <= x <= hi]
    return round(max(np.diff(t)) * 1000, 1) if len(t) > 1 else None


def perf(tmp: Path) -> dict[str, Any]:
    broker = Mosquitto()
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        path = home_config(tmp, agent_id="perf", mode="auto")
        generated_log(path, days=LOG_DAYS, seed=3)
        data = yaml.safe_load(path.read_text())
        data["broker"] = {"host": "127.0.0.1", "port": broker.port, "reconnect_min_seconds": 0.1}
        data["decision_tick_seconds"] = 5.0
        data["stats_interval_seconds"] = 1.0
        for d in data["devices"]:
            d.update(min_dwell_seconds=0, max_commands_per_hour=1_000_000, echo_window_seconds=5)
        data["learning"] = {
            "train": {
                "epochs": EPOCHS,
                "holdout_days": HOLDOUT,
                "history_days": LOG_DAYS,
                "budget_seconds": 900,
            },
            "retrain": {"min_new_labels": 1},
            "readiness": {
                "shadow_min_labels": 1,
                "suggest_min_labels": 0,
                "auto_min_labels": 0,
                "suggest_min_agreement": 0,
                "auto_min_agreement": 0,
            },
        }
        path.write_text(yaml.safe_dump(data))
        cfg = load_config(path)
        chans = [
            "living.motion",
            "living.illuminance",
            "living.temperature",
            "living.light.state",
            "calendar.tod_sin",
            "calendar.tod_cos",
        ]
        store = BundleStore(cfg.bundle_store)
        store.install(champion_bundle(tmp / "champ", chans))
        shift = time.time() - (T_START + LOG_DAYS * 86400.0)  # the agent lives on right after the log

        agent = Agent(cfg, clock=lambda: time.time() - shift)
        devices = EchoDevices(
            broker.port, {"living_light": {"state": "OFF"}, "hall_fan": {"fan_mode": "off"}}
        )
        agent.start()
        stream = Stream(broker.port)
        res: dict[str, Any] = {
            "bench": "retrain_perf",
            "log_days": LOG_DAYS,
            "epochs": EPOCHS,
            "cores": os.cpu_count(),
        }
        try:
            agent.link.wait_connected(5)
            res["without_retrain"] = phase(agent, stream, lambda n: n >= EVENTS)
            agent.retrain.done.clear()
            t0 = time.monotonic()
            stream.c.publish("edge-agent/perf/retrain/set", "PRESS", qos=1)
            res["with_retrain"] = phase(agent, stream, lambda n: n > 20 and agent.retrain.done.is_set())
            r = agent.retrain.results[-1]
            res["retrain_wall_s"] = round(time.monotonic() - t0, 1)
            res["retrain_outcome"], res["retrain_reason"] = r.outcome, r.reason
            res["child_peak_rss_mb"] = r.detail.get("peak_rss_mb")
            a, b = res["without_retrain"]["decision_ms_p99"], res["with_retrain"]["decision_ms_p99"]
            res["decision_p99_ratio"] = round(b / a, 2) if a and b else None
            # hot swap under a steady stream: roll back to the other version (or the champion after a promotion)
            before = agent.bundle.version if agent.bundle else None
            base_received, base_sent, base_cmds = agent.link.counters.received, stream.sent, stream.commands
            base_dropped = agent.link.counters.dropped
            t_quiet0 = time.monotonic()
            phase(agent, stream, lambda n: n >= 60)
            t_quiet1 = time.monotonic()
            agent.retrain.done.clear()
            target = "PRESS" if r.outcome == "promoted" or r.challenger is None else str(r.challenger)
            stream.c.publish("edge-agent/perf/rollback/set", target, qos=1)
            t_swap0 = time.monotonic()
            phase(
                agent,
                stream,
                lambda n: n >= 20 and agent.bundle is not None and agent.bundle.version != before,
            )
            t_swap1 = time.monotonic()
            phase(agent, stream, lambda n: n >= 20)
            time.sleep(1.0)
            res["swap"] = {"from": before, "to": agent.bundle.version if agent.bundle else None}
            res["swap_messages_sent"] = stream.sent - base_sent
            # the events, the devices' echo of each command, and the rollback press itself
            expected = (stream.sent - base_sent) + (stream.commands - base_cmds) + 1
            res["swap_messages_lost"] = expected - (agent.link.counters.received - base_received)
            res["swap_messages_dropped"] = agent.link.counters.dropped - base_dropped
            res["longest_decision_gap_ms_swap"] = max_gap(stream.decisions, t_swap0, t_swap1 + 1.0)
            res["longest_decision_gap_ms_baseline"] = max_gap(stream.decisions, t_quiet0, t_quiet1)
            res["targets"] = {
                "decision_p99_ratio_le_1.5": (res["decision_p99_ratio"] or 1e9) <= 1.5,
                "retrain_wall_le_600s": res["retrain_wall_s"] <= 600,
                "rss_le_1024mb": (res["child_peak_rss_mb"] or 1e9) <= 1024,
                "no_message_lost": res["swap_messages_lost"] == 0,
            }
        finally:
            stream.close()
            agent.stop()
            devices.close()
        emit(**res)
        return res
    finally:
        broker.stop()


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        if PART in ("proof", "all"):
            proof(Path(tmp) / "proof")
        if PART in ("perf", "all"):
            perf(Path(tmp) / "perf")
    return 0


if __name__ == "__main__":
    sys.exit(main())
