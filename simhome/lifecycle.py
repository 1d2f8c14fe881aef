"""A home's lifecycle on the simulated home, accelerated and offline, through the daemon's own decision path.

The simulated home (`SimHome`), its Zigbee2MQTT messages (`Z2MStream`) and its person (`Person`, with human
lag and occasional mistakes) advance together in a `World`, `SUB_STEP_SECONDS` at a time. A phase drives the
world for some days with, optionally, the runtime's `edge_agent.controller.Controller` (the code the daemon
runs): it is fed every sensor message and every device state report; its commands are applied to the home and
echoed back as state reports, as Zigbee2MQTT does; a person's change is a state report nobody commanded. The
controller's records go into a real SQLite database through `edge_agent.recorder.Recorder`, starting with its
`start_records` (the home's catalog, the bundle loaded), as the daemon writes them.

Phases (`run_phase`): (a) nobody acting: no person, no agent, the devices stay as they are; (b) the person
alone, operating the home by hand (with a controller in `observe`, this fills the database a first model is
trained from); (c) the agent in `auto` with a bundle: the person changes back what they dislike (an override
of a state the agent set, or a correction of one it left alone). Every phase reports, per device and over
all, the agreement of the device states with the person's hidden preference (`SimHome.preferred`, sampled once
a simulated minute, also while the person is present) and the person's actions per day.

`World.snapshot()` is a deep copy, so (a), (b) and (c) with several bundles can be run on the same days from
the same state. Deterministic for a fixed seed: every random draw is seeded, the controller's tier is pinned
(latency never steers it) and nothing reads the wall clock except latency figures.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from edge_agent.config import AgentConfig
from edge_agent.controller import Controller
from edge_agent.effects import Effects
from edge_agent.inference import Bundle
from edge_agent.recorder import Recorder
from simhome.config import simhome_config
from simhome.home import SimHome
from simhome.layout import DEVICE_NAMES, DEVICES, Topology
from simhome.person import Person
from simhome.stream import Z2MStream, decode_command, device_state

logger = logging.getLogger(__name__)

SUB_STEP_SECONDS = 10.0  # simulation step between message polls (the person and events act at this grain)
MISTAKE_P = 0.025  # share of the person's actions that go wrong (then corrected if they notice)
FLUSH_EVERY_SECONDS = 3600.0  # sim seconds between recorder flushes (the writer's queue never overflows)
LIGHTS = tuple(d.name for d in DEVICES if d.name.endswith(".light"))
KINDS = {d.name: d.kind for d in DEVICES}
Message = tuple[str, bytes, float, bool]


@dataclass
class World:
    """The simulated home, its sensors' message schedule and its person, advanced together."""

    home: SimHome
    stream: Z2MStream
    person: Person
    source: dict[str, str] = field(default_factory=lambda: dict.fromkeys(DEVICE_NAMES, "person"))

    @property
    def topo(self) -> Topology:
        return self.stream.topo

    def snapshot(self) -> World:
        """An independent copy: the same days can be lived again from here with another agent."""
        return copy.deepcopy(self)

    def report(self, name: str) -> Message:
        """The device's state message (Zigbee2MQTT publishes one after a /set and after a manual change)."""
        local = float(self.home.state.temp[0]) if name == "living.heating" else None
        m = device_state(self.topo.device(name), self.home.device(name), local)
        return m.topic, m.encode(), time.perf_counter(), False


def make_world(
    seed: int,
    start: str = "2024-01-08T00:00",
    timezone: str = "Europe/Brussels",
    mistake_p: float = MISTAKE_P,
) -> World:
    """A fresh home from local `start` (ISO, naive = in `timezone`), warmed up, with its person."""
    tz = ZoneInfo(timezone)
    home = SimHome(seed, dt.datetime.fromisoformat(start).replace(tzinfo=tz), timezone=timezone)
    home.step(0.0)  # the two warm-up days
    return World(home, Z2MStream(home.topology(), seed), Person(seed=seed, mistake_p=mistake_p))


@dataclass
class PhaseReport:
    """What one phase measured. Counts are per device; agreement = share of sampled minutes."""

    name: str
    start: float
    days: float
    agreement: dict[str, float]
    agreement_present: dict[str, float]
    actions: dict[str, int]  # values the person set (mistakes and corrections included)
    overrides: dict[str, int]  # of those, changes of a state the agent had set
    mistakes: dict[str, int]
    commands: dict[str, int]  # the agent's commands carried out

    def overall(self) -> float:
        return float(np.mean([self.agreement[d] for d in DEVICE_NAMES]))

    def lights(self) -> float:
        return float(np.mean([self.agreement[d] for d in LIGHTS]))

    def per_day(self, counts: dict[str, int]) -> float:
        return sum(counts.values()) / self.days

    def summary(self) -> dict[str, Any]:
        """Flat figures for JSON lines."""
        return {
            "phase": self.name,
            "days": round(self.days, 3),
            "agreement": round(self.overall(), 4),
            "agreement_lights": round(self.lights(), 4),
            "person_actions_per_day": round(self.per_day(self.actions), 2),
            "overrides_per_day": round(self.per_day(self.overrides), 2),
            "mistakes": sum(self.mistakes.values()),
            "agent_commands_per_day": round(self.per_day(self.commands), 2),
            "per_device": {
                d: {
                    "agreement": round(self.agreement[d], 4),
                    "agreement_present": round(self.agreement_present.get(d, float("nan")), 4),
                    "actions_per_day": round(self.actions.get(d, 0) / self.days, 2),
                    "overrides_per_day": round(self.overrides.get(d, 0) / self.days, 2),
                }
                for d in DEVICE_NAMES
            },
        }


class _Agent:
    """A controller wired to the world and a recorder, as the daemon wires it to MQTT and the database."""

    def __init__(self, world: World, ctrl: Controller, recorder: Recorder | None) -> None:
        self.world, self.ctrl, self.recorder = world, ctrl, recorder
        self.commands: dict[str, int] = {}

    def record(self, fx: Effects) -> None:
        if self.recorder is not None:
            for r in fx.records:
                self.recorder.write(r)

    def feed(self, msgs: list[Message], now: float) -> None:
        self.carry_out(self.ctrl.handle(msgs, now))

    def carry_out(self, fx: Effects) -> None:
        """Record, then apply every command to the home and feed its echo back (which may decide again)."""
        self.record(fx)
        w = self.world
        echoes = []
        for cmd in fx.commands:
            dev, value = decode_command(w.topo, cmd.topic, cmd.payload, w.home.device(cmd.device))
            w.home.set_device(dev.name, value)
            w.source[dev.name] = "controller"
            w.person.pending.pop(dev.name, None)  # they see it change: a new judgement
            self.commands[dev.name] = self.commands.get(dev.name, 0) + 1
            echoes.append(w.report(dev.name))
        if echoes:
            self.feed(echoes, w.home.now)


def run_phase(
    world: World,
    days: float,
    name: str,
    *,
    controller: Controller | None = None,
    recorder: Recorder | None = None,
    person: bool = True,
    progress: Callable[[float], None] | None = None,
) -> PhaseReport:
    """Advance `world` by `days`: with the person acting (or nobody, `person=False`), and `controller` fed
    every message (its records into `recorder`). The world is changed in place; see `World.snapshot`."""
    home, p = world.home, world.person
    before = _counts(p)
    agent = None if controller is None else _Agent(world, controller, recorder)
    t0 = home.now
    if agent is not None:
        agent.feed([world.report(d) for d in DEVICE_NAMES], t0)  # as Z2M re-sends states on connect
    same, present = [], []
    minute: int | None = None
    next_flush = t0 + FLUSH_EVERY_SECONDS
    for _ in range(int(round(days * 86400.0 / SUB_STEP_SECONDS))):
        home.step(SUB_STEP_SECONDS)
        now = home.now
        msgs = [
            (m.topic, m.encode(), time.perf_counter(), False) for m in world.stream.poll(now, home.readings())
        ]
        pref = home.preferred()
        for d in DEVICE_NAMES:
            if not person:
                break
            here, awake = home.presence(d)
            v = p.tick(now, d, home.device(d), pref[d], here, awake, world.source[d])
            if v is not None:
                home.set_device(d, v)
                world.source[d] = "person"
                msgs.append(world.report(d))  # a manual change: no /set caused it
        if agent is not None:
            agent.feed(msgs, now)
            agent.carry_out(agent.ctrl.poll(now))
            if recorder is not None and now >= next_flush:
                recorder.flush(60.0)
                next_flush = now + FLUSH_EVERY_SECONDS
        m = int(now // 60)
        if m != minute:
            minute = m
            pref = home.preferred()  # after this step's changes
            same.append([not p.pref.differs(KINDS[d], home.device(d), pref[d]) for d in DEVICE_NAMES])
            present.append([home.presence(d)[0] for d in DEVICE_NAMES])
            if progress is not None and len(same) % 1440 == 0:
                progress(len(same) / 1440.0)
    if agent is not None:
        agent.record(agent.ctrl.close(home.now))
        if recorder is not None:
            recorder.flush(60.0)
    ok, pres = np.array(same, dtype=bool), np.array(present, dtype=bool)
    after = _counts(p)
    overrides, manual = _diff(after[0], before[0]), _diff(after[1], before[1])
    actions = {
        d: overrides.get(d, 0) + manual.get(d, 0) for d in DEVICE_NAMES if d in overrides or d in manual
    }
    return PhaseReport(
        name=name,
        start=t0,
        days=(home.now - t0) / 86400.0,
        agreement={d: float(ok[:, k].mean()) for k, d in enumerate(DEVICE_NAMES)},
        agreement_present={
            d: float(ok[pres[:, k], k].mean()) for k, d in enumerate(DEVICE_NAMES) if pres[:, k].any()
        },
        actions=actions,
        overrides=overrides,
        mistakes=_diff(after[2], before[2]),
        commands={} if agent is None else dict(agent.commands),
    )


def _counts(p: Person) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    return dict(p.override_count), dict(p.manual_count), dict(p.mistake_count)


def _diff(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: v - b.get(k, 0) for k, v in a.items() if v - b.get(k, 0)}


# ---- the phases as a home lives them --------------------------------------------------------------------
def agent_config(
    world: World, state_dir: Path, bundle: Path | None, mode: str, **overrides: Any
) -> AgentConfig:
    """The simulated home's agent config (no bundle: a fresh install), the tier pinned for determinism."""
    if bundle is not None:
        overrides.setdefault("governor", {"pinned_tier": "int8"})
    return simhome_config(
        bundle, state_dir=state_dir, mode=mode, timezone=world.home.timezone, topo=world.topo, **overrides
    )


def open_recorder(db: Path, ctrl: Controller, now: float) -> Recorder:
    """A recorder on the SQLite file `db`, with what the daemon writes at start (catalog, bundle loaded)."""
    rec = Recorder(f"sqlite:///{db}", flush_interval=5.0, batch_rows=5000)
    for r in ctrl.start_records(now):
        rec.write(r)
    return rec


def observe(world: World, days: float, db: Path, state_dir: Path) -> PhaseReport:
    """(b) with the agent installed and no model: the person runs the home; everything goes into `db`."""
    cfg = agent_config(world, state_dir, None, "observe")
    now = world.home.now
    ctrl = Controller(cfg, None, now=now)  # no bundle: observe
    rec = open_recorder(db, ctrl, now)
    try:
        world.person.overrides = world.person.manual_operation = True
        rep = run_phase(world, days, "observe", controller=ctrl, recorder=rec)
    finally:
        rec.close(60.0)
    _check_recorder(rec)
    return rep


def auto(
    world: World,
    days: float,
    bundle_dir: Path,
    db: Path,
    state_dir: Path,
    name: str,
    readiness: dict[str, Any] | None = None,
    manual_operation: bool = True,
) -> PhaseReport:
    """(c) the agent in `auto` with the bundle at `bundle_dir`; its log goes on into `db`. Each device runs
    in the mode its readiness allows (`readiness`: learning.readiness overrides; default thresholds).
    `manual_operation=False`: the person only changes back what the agent set (the agent alone in charge:
    agreement then measures the model, not the person's own work)."""
    extra = {"learning": {"readiness": readiness}} if readiness else {}
    cfg = agent_config(world, state_dir, bundle_dir, "auto", **extra)
    now = world.home.now
    ctrl = Controller(cfg, Bundle.load(bundle_dir), now=now, perf=time.perf_counter)
    rec = open_recorder(db, ctrl, now)
    try:
        world.person.overrides = True
        world.person.manual_operation = manual_operation
        rep = run_phase(world, days, name, controller=ctrl, recorder=rec)
    finally:
        rec.close(60.0)
    _check_recorder(rec)
    return rep


def nobody(world: World, days: float) -> PhaseReport:
    """(a) nobody acting: the devices stay as they are."""
    return run_phase(world, days, "nobody", person=False)


def person_alone(world: World, days: float) -> PhaseReport:
    """(b) the person alone, no agent at all (the baseline on the same days as (c))."""
    world.person.overrides = world.person.manual_operation = True
    return run_phase(world, days, "person_alone")


def _check_recorder(rec: Recorder) -> None:
    if rec.dropped or rec.errors:
        raise RuntimeError(
            f"recorder lost rows ({rec.dropped} dropped, {rec.errors} failed commits): the run's log is "
            "incomplete; rerun with a larger queue"
        )
