"""Closed-loop check of a bundle on the simulated home, through the daemon's own decision path.

Open-loop accuracy on logged history can hide a model that only learned persistence from sensors that see
the devices themselves (a lamp in the illuminance). Here the runtime's `Controller` (the very code the
daemon runs: ingest, window, stale limits per kind, calendar in the home's zone, the tier, the policy with
hysteresis, dwell and rate limits) is fed the simulated home's Zigbee2MQTT messages; its commands are
applied to `SimHome` and echoed back as state reports, as Zigbee2MQTT would. Nobody overrides. Once a
simulated minute the devices' state in effect is compared with what the person wants right now
(`SimHome.preferred`, the demo's measure): overall and while the person is present (when they would notice).
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from edge_agent.controller import Controller
from edge_agent.effects import Effects
from edge_agent.inference import Bundle
from edge_agent.manifest import Manifest
from simhome import SimHome
from simhome.config import simhome_config
from simhome.stream import Z2MStream, decode_command, device_state

SUB_STEP_SECONDS = 10.0  # simulation step between message polls (events are decided at this resolution)
# Called around every batch of sensor messages: before(ctrl, now) -> a value, after(ctrl, fx, value, now)
Watch = tuple[Callable[[Controller, float], object], Callable[[Controller, Effects, object, float], None]]


def closed_loop(
    bundle: Path,
    man: Manifest,
    tier: str = "int8",
    hours: float = 48.0,
    seed: int = 101,
    start: str = "2023-01-16T06:00",
    timezone: str = "Europe/Brussels",
    watch: Watch | None = None,
) -> dict[str, float]:
    """Agreement of the devices' state with the preference over `hours` of closed-loop simulation, the
    `tier` pinned (offered on the ladder or not: an evaluation runs any tier), decided by the runtime's
    Controller. `watch` (training.tierevents) sees each sensor batch's decisions before they are carried out."""
    home = SimHome(
        seed, dt.datetime.fromisoformat(start).replace(tzinfo=ZoneInfo(timezone)), timezone=timezone
    )
    topo = home.topology()
    with tempfile.TemporaryDirectory(prefix="edge-agent-closedloop-") as tmp:
        cfg = simhome_config(
            Path(bundle),
            state_dir=Path(tmp),
            mode="auto",
            timezone=timezone,
            topo=topo,
            decision_tick_seconds=man.step_seconds,
            governor={"pinned_tier": tier},
            echo_window_seconds=60.0,
        )
    loaded = Bundle.load(bundle)
    loaded.ladder = list(loaded.tiers)  # evaluation: every tier of the bundle may be pinned
    ctrl = Controller(cfg, loaded, now=home.now, perf=time.perf_counter)
    stream = Z2MStream(topo, seed)
    devices = [d.name for d in man.devices]

    def report(name: str) -> tuple[str, bytes, float, bool]:
        local = float(home.state.temp[0]) if name == "living.heating" else None
        m = device_state(topo.device(name), home.device(name), local)
        return m.topic, m.encode(), time.perf_counter(), False

    def carry_out(fx: Effects) -> None:
        echoes = []
        for cmd in fx.commands:
            dev, value = decode_command(topo, cmd.topic, cmd.payload, home.device(cmd.device))
            home.set_device(dev.name, value)
            echoes.append(report(dev.name))
        if echoes:
            carry_out(ctrl.handle(echoes, home.now))

    carry_out(ctrl.handle([report(d) for d in devices], home.now))
    warmup = home.now + man.window * man.step_seconds  # a full window before scoring
    same, present = [], []
    minute = None
    kinds = {d.name: d.kind for d in man.devices}
    for _ in range(int(hours * 3600 / SUB_STEP_SECONDS)):
        home.step(SUB_STEP_SECONDS)
        now = home.now
        msgs = [(m.topic, m.encode(), time.perf_counter(), False) for m in stream.poll(now, home.readings())]
        before = watch[0](ctrl, now) if watch is not None else None
        fx = ctrl.handle(msgs, now)
        if watch is not None:
            watch[1](ctrl, fx, before, now)
        carry_out(fx)
        carry_out(ctrl.poll(now))
        m = int(now // 60)
        if now < warmup or m == minute:
            continue
        minute = m
        pref = home.preferred()
        same.append([not home.pref.differs(kinds[d], home.device(d), pref[d]) for d in devices])
        present.append([home.presence(d)[0] for d in devices])
    ok, pres = np.array(same), np.array(present)
    res = {"closed_loop_agreement": float(ok.mean())}
    for k, d in enumerate(devices):
        res[f"closed_loop_agreement.{d}"] = float(ok[:, k].mean())
        if pres[:, k].any():
            res[f"closed_loop_agreement_present.{d}"] = float(ok[pres[:, k], k].mean())
    return res
