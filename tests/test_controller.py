"""The Controller on a fake clock: no broker, no database, no sleep. Every agent behaviour in a few steps.

The test bundle's model reads the newest value of each channel (see tests/testbundle.py): motion in a dark
room switches the light on, a humid bedroom runs the fan high, a cold living room asks for heat.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import agent_config_dict
from testbundle import home_bundle

from edge_agent.config import parse_config
from edge_agent.controller import Controller
from edge_agent.effects import (
    DecisionRecord,
    Effects,
    ModelVersionRecord,
    OverrideRecord,
    ReadingRecord,
    StateRecord,
    TierChangeRecord,
)
from edge_agent.inference import Bundle

T0 = 1_800_000_000.0  # a fixed epoch second: the fake clock's start
LIGHT, FAN, HEAT = "zigbee2mqtt/living_light", "zigbee2mqtt/bedroom_fan", "zigbee2mqtt/living_thermostat"
MOTION, CLIMATE = "zigbee2mqtt/living_motion", "zigbee2mqtt/living_climate"


class FakePerf:
    """Monotonic seconds the test advances by hand (latency figures become exact)."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return Bundle.load(home_bundle(tmp_path_factory.mktemp("b") / "home"))


def make(bundle: Bundle, tmp_path: Path, state: dict[str, Any] | None = None, **over: Any) -> Controller:
    cfg = parse_config(agent_config_dict(bundle.path, 1883, tmp_path, timezone="UTC", **over))
    return Controller(cfg, bundle, now=T0, state=state, perf=FakePerf())


def msg(topic: str, obj: dict[str, Any], retained: bool = False) -> tuple[str, bytes, float, bool]:
    return topic, json.dumps(obj).encode(), 100.0, retained


def initial_states(c: Controller, now: float = T0) -> Effects:
    return c.handle(
        [
            msg(LIGHT, {"state": "OFF"}),
            msg(FAN, {"fan_mode": "off"}),
            msg(HEAT, {"occupied_heating_setpoint": 20.0}),
        ],
        now,
    )


def test_motion_event_decides_in_its_own_call(bundle: Bundle, tmp_path: Path) -> None:
    """Motion in a dark room -> light ON command in the same call, explained by the motion channel."""
    c = make(bundle, tmp_path)
    assert initial_states(c).commands == []  # first reports are initial state: no decision, no override
    fx = c.handle([msg(MOTION, {"occupancy": True, "illuminance": 5})], T0 + 1)
    light = [cmd for cmd in fx.commands if cmd.device == "living.light"]
    assert len(light) == 1 and json.loads(light[0].payload) == {"state": "ON"}
    dec = next(d for d in fx.decisions if d.device == "living.light")
    assert dec.trigger == "event:living.motion" and dec.top[0][0] == "living.motion" and dec.sent
    assert [r.device for r in fx.of(DecisionRecord)] == [d.device for d in fx.decisions]
    assert c.counters.decisions == 1 and c.counters.commands == len(fx.commands)


def test_slow_channel_waits_for_the_tick(bundle: Bundle, tmp_path: Path) -> None:
    """A temperature reading alone decides nothing; the periodic tick then asks for heat (clamped to 23)."""
    c = make(bundle, tmp_path, decision_tick_seconds=60)
    initial_states(c)
    assert c.handle([msg(CLIMATE, {"temperature": 15.0})], T0 + 1).decisions == []
    assert c.poll(T0 + 30).decisions == []  # not due yet
    fx = c.poll(T0 + 61)
    heat = [cmd for cmd in fx.commands if cmd.device == "living.heating"]
    assert [json.loads(h.payload) for h in heat] == [{"occupied_heating_setpoint": 23.0}]
    assert {d.trigger for d in fx.decisions} == {"tick"}


def test_manual_change_is_held_and_recorded_before_anything_else(bundle: Bundle, tmp_path: Path) -> None:
    """Our echo is not an override; a person's change is: an override record and an urgent hold record
    come back, and later decisions never command that device until the hold ends."""
    c = make(bundle, tmp_path)
    initial_states(c)
    c.handle([msg(MOTION, {"occupancy": True, "illuminance": 5})], T0 + 1)
    echo = c.handle([msg(LIGHT, {"state": "ON"})], T0 + 1.5)
    assert echo.of(OverrideRecord) == [] and c.counters.overrides == 0
    fx = c.handle([msg(LIGHT, {"state": "OFF"})], T0 + 100)
    ov = fx.of(OverrideRecord)
    assert len(ov) == 1 and (ov[0].value, ov[0].previous, ov[0].agent_target) == (0.0, 1.0, 1.0)
    holds = [r for r in fx.of(StateRecord) if r.key == "holds"]
    assert holds and holds[0].urgent and holds[0].value["living.light"]["held_until"] == T0 + 100 + 600
    later = c.handle(
        [
            msg(MOTION, {"occupancy": False, "illuminance": 5}),
            msg(MOTION, {"occupancy": True, "illuminance": 5}),
        ],
        T0 + 200,
    )
    assert [cmd for cmd in later.commands if cmd.device == "living.light"] == []
    assert next(d for d in later.decisions if d.device == "living.light").reason == "held"
    after = c.handle([msg(MOTION, {"occupancy": False, "illuminance": 5})], T0 + 800)  # hold over
    after.extend(c.handle([msg(MOTION, {"occupancy": True, "illuminance": 5})], T0 + 801))
    assert [json.loads(x.payload) for x in after.commands if x.device == "living.light"] == [{"state": "ON"}]


def test_hold_survives_a_restart(bundle: Bundle, tmp_path: Path) -> None:
    """The persisted hold state, given to a new controller, still holds the device."""
    c = make(bundle, tmp_path)
    initial_states(c)
    fx = c.handle([msg(LIGHT, {"state": "ON"})], T0 + 5)  # a person switches it on
    state = {r.key: r.value for r in fx.of(StateRecord)}
    c2 = make(bundle, tmp_path, state=state)
    initial_states(c2, T0 + 10)
    out = c2.handle([msg(MOTION, {"occupancy": True, "illuminance": 5})], T0 + 11)
    assert next(d for d in out.decisions if d.device == "living.light").reason == "held"


def test_stale_basis_never_commands(bundle: Bundle, tmp_path: Path) -> None:
    """A temperature older than its stale limit never drives the thermostat; a fresh one does."""
    c = make(bundle, tmp_path, decision_tick_seconds=3600)
    initial_states(c)
    c.handle([msg(CLIMATE, {"temperature": 15.0})], T0 + 1)
    fx = c.handle([msg(MOTION, {"occupancy": True, "illuminance": 500})], T0 + 2 * 3600)
    assert next(d for d in fx.decisions if d.device == "living.heating").reason == "stale"
    assert [x for x in fx.commands if x.device == "living.heating"] == [] and c.counters.skipped_stale >= 1
    c.handle([msg(CLIMATE, {"temperature": 15.0})], T0 + 2 * 3600 + 1)
    fx = c.handle([msg(MOTION, {"occupancy": False, "illuminance": 500})], T0 + 2 * 3600 + 2)
    assert [json.loads(x.payload) for x in fx.commands if x.device == "living.heating"] == [
        {"occupied_heating_setpoint": 23.0}
    ]


def test_shadow_decides_and_records_but_commands_nothing(bundle: Bundle, tmp_path: Path) -> None:
    c = make(bundle, tmp_path, mode="shadow")
    initial_states(c)
    fx = c.handle([msg(MOTION, {"occupancy": True, "illuminance": 5})], T0 + 1)
    dec = next(d for d in fx.decisions if d.device == "living.light")
    assert fx.commands == [] and (dec.value, dec.mode, dec.sent, dec.reason) == (
        1.0,
        "shadow",
        False,
        "change",
    )


def test_link_down_means_no_command_and_no_late_one(bundle: Bundle, tmp_path: Path) -> None:
    """Decided while the broker is unreachable: recorded as dropped, never queued for later."""
    c = make(bundle, tmp_path)
    initial_states(c)
    fx = c.handle([msg(MOTION, {"occupancy": True, "illuminance": 5})], T0 + 1, link_up=False)
    assert fx.commands == [] and c.counters.commands_disconnected >= 1
    assert {r.status for r in fx.records if r.TABLE == "commands"} == {"dropped-disconnected"}
    assert not next(d for d in fx.decisions if d.device == "living.light").sent


def test_cpu_load_steps_the_tier_down_and_later_decisions_use_it(bundle: Bundle, tmp_path: Path) -> None:
    """CPU above the limit for `down_after_seconds` on the fake clock -> one tier down, recorded; the next
    event decision runs on the new tier."""
    gov = {"down_after_seconds": 5, "min_seconds_per_tier": 1, "cpu_latency_fraction": None}  # CPU alone
    c = make(bundle, tmp_path, governor=gov)
    initial_states(c)
    changes: list[TierChangeRecord] = []
    for i in range(12):  # one CPU sample a second
        changes += c.observe_load(T0 + i, cpu_percent=99.0, queue_depth=0).of(TierChangeRecord)
    assert changes and changes[0].old == "full" and changes[0].new == "int8" and changes[0].signal == "cpu"
    fx = c.handle([msg(MOTION, {"occupancy": True, "illuminance": 5})], T0 + 13)
    assert {d.tier for d in fx.decisions} == {c.governor.tier} != {"full"}


def test_swap_bundle_keeps_window_holds_and_device_state(bundle: Bundle, tmp_path: Path) -> None:
    """A hot swap between two calls: the next decision uses the new bundle on the window as it was (a
    reading from before the swap still counts), a person's hold is kept, and the swap is recorded."""
    c = make(bundle, tmp_path)
    initial_states(c)
    c.handle([msg(LIGHT, {"state": "ON"})], T0 + 1)  # a person: light held
    c.handle([msg(CLIMATE, {"temperature": 15.0})], T0 + 2)
    other = Bundle.load(home_bundle(tmp_path / "v2", version="test-2"))
    fx = c.swap_bundle(other, T0 + 3)
    assert [r.version for r in fx.of(ModelVersionRecord)] == ["test-2"]
    out = c.poll(T0 + 100)  # tick: the temperature read before the swap drives the heating
    assert {d.model_version for d in out.decisions} == {"test-2"}
    assert [json.loads(x.payload) for x in out.commands if x.device == "living.heating"] == [
        {"occupied_heating_setpoint": 23.0}
    ]
    assert next(d for d in out.decisions if d.device == "living.light").held  # the hold is kept


def test_readings_are_recorded_once_per_step_and_on_close(bundle: Bundle, tmp_path: Path) -> None:
    """Each channel's step is recorded when the channel moves past it; `close` flushes the open steps."""
    c = make(bundle, tmp_path)
    step = bundle.manifest.step_seconds
    fx = c.handle([msg(CLIMATE, {"temperature": 20.0})], T0)
    fx.extend(c.handle([msg(CLIMATE, {"temperature": 21.0})], T0 + 0.1 * step))
    assert fx.of(ReadingRecord) == []
    fx = c.handle([msg(CLIMATE, {"temperature": 22.0})], T0 + step)
    assert [(r.channel, r.value) for r in fx.of(ReadingRecord)] == [("living.temperature", 21.0)]
    closing = c.close(T0 + step + 1)
    assert ("living.temperature", 22.0) in [(r.channel, r.value) for r in closing.of(ReadingRecord)]
    assert {r.key for r in closing.of(StateRecord)} == {"attention_tracker", "holds"}


def test_bad_payloads_are_counted_and_decisions_go_on(bundle: Bundle, tmp_path: Path) -> None:
    c = make(bundle, tmp_path)
    initial_states(c)
    bad = [
        (MOTION, b"not json", 100.0, False),
        (MOTION, b"[1,2]", 100.0, False),
        (CLIMATE, b'{"temperature": "warm"}', 100.0, False),
        (CLIMATE, b'{"temperature": 900}', 100.0, False),
        ("zigbee2mqtt/unknown", b"{}", 100.0, False),
    ]
    fx = c.handle([*bad, msg(MOTION, {"occupancy": True, "illuminance": 5})], T0 + 1)
    assert c.counters.invalid == 4 and c.counters.unknown_topic == 1
    assert [json.loads(x.payload) for x in fx.commands if x.device == "living.light"] == [{"state": "ON"}]


def test_retained_sensor_values_are_stale_until_a_live_report(bundle: Bundle, tmp_path: Path) -> None:
    """After a restart the broker re-delivers retained values of unknown age: they trigger nothing and
    never drive a command; the first live report does (issue 19 item 5)."""
    c = make(bundle, tmp_path, decision_tick_seconds=1)
    initial_states(c)
    fx = c.handle(
        [msg(MOTION, {"occupancy": True, "illuminance": 5}, True), msg(CLIMATE, {"temperature": 15.0}, True)],
        T0 + 1,
    )
    fx.extend(c.poll(T0 + 2))  # a tick on retained values only
    assert fx.commands == [] and {d.reason for d in fx.decisions} <= {"stale"}
    live = c.handle([msg(MOTION, {"occupancy": True, "illuminance": 5})], T0 + 3)
    assert [json.loads(x.payload) for x in live.commands if x.device == "living.light"] == [{"state": "ON"}]


def test_a_wall_clock_step_back_does_not_make_silent_channels_live(bundle: Bundle, tmp_path: Path) -> None:
    """Staleness runs on the steady clock: the wall clock jumps an hour back while every sensor has been
    silent for 2 h; the temperature is still stale, no NaN is fed as live, no command goes out (issue 19
    item 6)."""
    c = make(bundle, tmp_path, decision_tick_seconds=60)
    initial_states(c)
    c.handle([msg(CLIMATE, {"temperature": 15.0})], T0 + 1, mono=1.0)
    later = 2 * 3600.0
    fx = c.handle([msg(MOTION, {"occupancy": True, "illuminance": 500})], T0 - 3600, mono=later)
    heat = next(d for d in fx.decisions if d.device == "living.heating")
    assert heat.reason == "stale" and [x for x in fx.commands if x.device == "living.heating"] == []
    x, mask = c.window.snapshot(T0 - 3600, later)
    assert np.isfinite(x[mask > 0]).all()


def test_deferred_explanations_leave_only_the_command_before_finish(bundle: Bundle, tmp_path: Path) -> None:
    """The daemon's mode (`defer_explanations`): the event's command is ready with nothing else built; the
    explanation (decision payloads, decision records, attention tracker) comes with `Effects.finish()`."""
    c = make(bundle, tmp_path)
    c.defer_explanations = True
    initial_states(c)
    assert c.focus is not None
    updates = c.focus.updates
    fx = c.handle([msg(MOTION, {"occupancy": True, "illuminance": 5})], T0 + 1)
    assert [cmd.device for cmd in fx.commands] == ["living.light"]
    assert fx.decisions == [] and fx.of(DecisionRecord) == [] and c.focus.updates == updates
    assert c.counters.decisions >= 1 and c.latency.percentiles()[0] is not None  # latency: until the command
    fx.finish()
    dec = next(d for d in fx.decisions if d.device == "living.light")
    assert dec.sent and dec.trigger == "event:living.motion" and c.focus.updates == updates + 1
    assert [r.device for r in fx.of(DecisionRecord)] == [d.device for d in fx.decisions]
    assert fx.finish().later == []  # idempotent
