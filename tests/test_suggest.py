"""Suggest mode on a fake clock (the Controller, no broker): nothing is sent until a person accepts, and an
accept is carried out only on a fresh basis; every outcome is recorded. Then on a real mosquitto: no device
command leaves before acceptance, and an accepted fresh suggestion sends exactly one."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from conftest import INITIAL_STATES, Broker, EchoDevices, Observer, agent_config_dict, wait_until
from ha_schema import check_state, render_state
from sqlalchemy import select
from test_controller import LIGHT, MOTION, T0, FakePerf, initial_states, msg
from testbundle import home_bundle

from edge_agent.agent import Agent
from edge_agent.config import parse_config
from edge_agent.controller import Controller
from edge_agent.effects import Effects
from edge_agent.inference import Bundle
from edge_agent.recorder import commands, suggestions
from edge_agent.suggest import SuggestionRecord

EVENT = "edge-agent/t1/suggest/living.light"
ACCEPT, REJECT = "edge-agent/t1/suggest/living.light/accept", "edge-agent/t1/suggest/living.light/reject"
DARK_MOTION = {"occupancy": True, "illuminance": 5}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return Bundle.load(home_bundle(tmp_path_factory.mktemp("b") / "home"))


def make(bundle: Bundle, tmp_path: Path, **over: Any) -> Controller:
    data = agent_config_dict(bundle.path, 1883, tmp_path, timezone="UTC", mode="suggest", **over)
    data["suggest"] = {"expiry_seconds": 120, "quiet_after_reject_seconds": 600}
    return Controller(parse_config(data), bundle, now=T0, perf=FakePerf())


def events(fx: Effects) -> list[dict[str, Any]]:
    return [json.loads(p.payload) for p in fx.publications if p.topic == EVENT]


def light_commands(fx: Effects) -> list[Any]:
    return [json.loads(c.payload) for c in fx.commands if c.device == "living.light"]


def light_decision(fx: Effects) -> Any:
    return [d for d in fx.decisions if d.device == "living.light"][-1]


def suggest_light(c: Controller, now: float) -> Effects:
    """Motion in the dark: the light would go ON."""
    fx = c.handle([msg(MOTION, {"occupancy": False, "illuminance": 5})], now - 0.5)
    return fx.extend(c.handle([msg(MOTION, DARK_MOTION)], now))


def test_a_suggestion_sends_nothing_and_says_why(bundle: Bundle, tmp_path: Path) -> None:
    c = make(bundle, tmp_path)
    initial_states(c)
    fx = suggest_light(c, T0 + 1)
    assert light_commands(fx) == []
    dec = light_decision(fx)
    assert dec.suggested and not dec.sent and dec.value == 1.0
    assert dec.reason.startswith("ON: living.motion") and "%" in dec.reason and len(dec.reason) <= 160
    assert dec.payload()["suggested"] is True
    ev = events(fx)
    assert [e["event_type"] for e in ev] == ["suggested"] and ev[0]["reason"] == dec.reason
    again = suggest_light(c, T0 + 5)  # the same suggestion still stands: not published twice
    assert events(again) == [] and light_commands(again) == []
    assert light_decision(again).suggested


def test_an_accepted_fresh_suggestion_sends_one_command(bundle: Bundle, tmp_path: Path) -> None:
    c = make(bundle, tmp_path)
    initial_states(c)
    suggest_light(c, T0 + 1)
    fx = c.handle([(ACCEPT, b"PRESS", 0.0, False)], T0 + 60)
    assert light_commands(fx) == [{"state": "ON"}]
    rec = fx.of(SuggestionRecord)
    assert [(r.outcome, r.value, r.basis, r.created) for r in rec] == [("accepted", 1.0, 0.0, T0 + 1)]
    assert [e["event_type"] for e in events(fx)] == ["accepted"]
    echo = c.handle([msg(LIGHT, {"state": "ON"})], T0 + 60.5)  # our command's echo: not a person's change
    assert c.counters.overrides == 0 and echo.commands == []
    twice = c.handle([(ACCEPT, b"PRESS", 0.0, False)], T0 + 61)  # nothing pending any more
    assert twice.commands == [] and twice.of(SuggestionRecord) == []


def test_an_accept_after_the_expiry_sends_nothing(bundle: Bundle, tmp_path: Path, caplog: Any) -> None:
    c = make(bundle, tmp_path)
    initial_states(c)
    suggest_light(c, T0 + 1)
    with caplog.at_level(logging.WARNING, logger="edge_agent.suggest"):
        fx = c.handle([(ACCEPT, b"", 0.0, False)], T0 + 1 + 121)
    assert fx.commands == []
    assert [r.outcome for r in fx.of(SuggestionRecord)] == ["stale"]
    assert [e["event_type"] for e in events(fx)] == ["refused"]
    assert "accept for living.light not carried out: the suggestion is 121s old" in caplog.text


def test_an_unanswered_suggestion_is_recorded_as_ignored(bundle: Bundle, tmp_path: Path) -> None:
    c = make(bundle, tmp_path, decision_tick_seconds=30)
    initial_states(c)
    suggest_light(c, T0 + 1)
    swept = Effects()
    for k in range(1, 6):  # ticks every 30 s; the expiry is 120 s
        swept.extend(c.poll(T0 + 1 + 30 * k))
    ignored = [r for r in swept.of(SuggestionRecord) if r.device == "living.light"]
    assert [r.outcome for r in ignored][:1] == ["ignored"] and ignored[0].ts > T0 + 121
    assert "expired" in [e["event_type"] for e in events(swept)]
    assert light_commands(swept) == []


def test_a_device_changed_since_the_suggestion_is_not_commanded(bundle: Bundle, tmp_path: Path) -> None:
    c = make(bundle, tmp_path, devices=_no_hold(bundle, tmp_path))
    initial_states(c)
    suggest_light(c, T0 + 1)
    c.handle([msg(LIGHT, {"state": "ON"})], T0 + 10)  # switched by hand (no hold configured)
    c.handle([msg(LIGHT, {"state": "OFF"})], T0 + 11)
    fx = c.handle([(ACCEPT, b"PRESS", 0.0, False)], T0 + 12)
    assert fx.commands == [] and [r.outcome for r in fx.of(SuggestionRecord)] == ["stale"]
    assert "changed" in events(fx)[0]["why"]


def _no_hold(bundle: Bundle, tmp_path: Path) -> list[dict[str, Any]]:
    devices = agent_config_dict(bundle.path, 1883, tmp_path)["devices"]
    devices[0]["override_hold_seconds"] = 0
    return list(devices)


def test_a_hold_or_a_pause_refuses_the_accept(bundle: Bundle, tmp_path: Path) -> None:
    c = make(bundle, tmp_path)
    initial_states(c)
    suggest_light(c, T0 + 1)
    c.handle([("edge-agent/t1/pause_control/set", b"ON", 0.0, False)], T0 + 2)
    fx = c.handle([(ACCEPT, b"PRESS", 0.0, False)], T0 + 3)
    assert fx.commands == [] and events(fx)[0]["why"] == "pause control is on"
    c.handle([("edge-agent/t1/pause_control/set", b"OFF", 0.0, False)], T0 + 4)
    assert c.switches.control_paused is False
    fx = suggest_light(c, T0 + 5)  # while paused nothing was suggested: it is offered anew now
    assert [e["event_type"] for e in events(fx)] == ["suggested"]
    c.handle([msg(LIGHT, {"state": "ON"})], T0 + 6)  # a person: held for 600 s, basis changed
    fx = c.handle([(ACCEPT, b"PRESS", 0.0, False)], T0 + 7)
    assert fx.commands == []


def test_a_rejection_is_recorded_and_not_asked_again_at_once(bundle: Bundle, tmp_path: Path) -> None:
    c = make(bundle, tmp_path)
    initial_states(c)
    suggest_light(c, T0 + 1)
    fx = c.handle([(REJECT, b"PRESS", 0.0, False)], T0 + 20)
    assert [(r.outcome, r.basis) for r in fx.of(SuggestionRecord)] == [("rejected", 0.0)]
    soon = suggest_light(c, T0 + 100)
    assert events(soon) == [] and light_decision(soon).reason == ("rejected-recently")
    later = suggest_light(c, T0 + 20 + 601)
    assert [e["event_type"] for e in events(later)] == ["suggested"]


def test_in_auto_and_shadow_nothing_is_suggested(bundle: Bundle, tmp_path: Path) -> None:
    for mode, sent in (("auto", [{"state": "ON"}]), ("shadow", [])):
        data = agent_config_dict(bundle.path, 1883, tmp_path, timezone="UTC", mode=mode)
        c = Controller(parse_config(data), bundle, now=T0, perf=FakePerf())
        initial_states(c)
        fx = suggest_light(c, T0 + 1)
        assert light_commands(fx) == sent and events(fx) == []
        assert not light_decision(fx).suggested


@pytest.mark.integration
def test_no_command_before_acceptance_then_exactly_one(
    bundle_path: Path, broker: Broker, tmp_path: Path
) -> None:
    """Real mosquitto, real SQLite: in suggest mode motion in the dark sends no command (while the agent goes on
    deciding); the person's accept sends exactly one, its echo is not an override, and the row says accepted."""
    data = agent_config_dict(bundle_path, broker.port, tmp_path / "s", mode="suggest")
    agent = Agent(parse_config(data))
    agent.start()
    obs = Observer(broker.port, ["edge-agent/#", "zigbee2mqtt/+/set"])
    dev = EchoDevices(broker.port, INITIAL_STATES)
    decisions = "edge-agent/t1/decision/living.light"
    try:
        assert agent.link.wait_connected(5)
        wait_until(lambda: agent.devices[0].tracker.reported is not None)
        obs.publish("zigbee2mqtt/living_motion", DARK_MOTION)
        first = wait_until(lambda: [d for d in obs.on(decisions) if d.get("suggested")])
        assert (
            first[0]["value"] == 1.0 and first[0]["sent"] is False and "living.motion" in first[0]["reason"]
        )
        ev = wait_until(lambda: obs.on(EVENT))
        assert ev[0]["event_type"] == "suggested"
        for k in range(3):  # the agent keeps deciding; still nothing is sent
            n = len(obs.on(decisions))
            obs.publish("zigbee2mqtt/living_motion", {"occupancy": k % 2 == 1, "illuminance": 5})
            wait_until(lambda n=n: len(obs.on(decisions)) > n)
        assert obs.on("zigbee2mqtt/living_light/set") == [] and agent.link.counters.commands_sent == 0
        obs.publish("zigbee2mqtt/living_motion", DARK_MOTION)
        obs.publish(ACCEPT, b"PRESS", qos=1)  # HA's button
        assert wait_until(lambda: obs.on("zigbee2mqtt/living_light/set")) == [{"state": "ON"}]
        wait_until(lambda: dev.state["living_light"]["state"] == "ON")
        wait_until(lambda: "accepted" in [e["event_type"] for e in obs.on(EVENT)])
        n = len(obs.on(decisions))
        obs.publish("zigbee2mqtt/living_motion", {"occupancy": False, "illuminance": 5})
        obs.publish("zigbee2mqtt/living_motion", DARK_MOTION)
        wait_until(lambda: len(obs.on(decisions)) > n)
        assert obs.on("zigbee2mqtt/living_light/set") == [{"state": "ON"}]  # exactly one command
        assert agent.counters.overrides == 0
        agent.recorder.flush()
        with agent.recorder.engine.connect() as conn:
            rows = conn.execute(
                select(suggestions.c.device, suggestions.c.outcome, suggestions.c.value)
            ).all()
            sent = conn.execute(select(commands.c.device, commands.c.status)).all()
        assert ("living.light", "accepted", 1.0) in [tuple(r) for r in rows]
        comp = agent.controller.ha.components()["suggestion_living_light"]  # HA's event entity takes them all
        with obs._lock:
            raw = [p for t, p, _ in obs.messages if t == EVENT]
        assert raw and all(check_state(comp, render_state(comp.get("value_template"), p)) == [] for p in raw)
        assert [tuple(r) for r in sent if r[0] == "living.light"] == [("living.light", "sent")]
    finally:
        dev.close()
        obs.close()
        agent.stop()


def test_a_retained_accept_or_mode_command_is_refused(bundle: Bundle, tmp_path: Path, caplog: Any) -> None:
    """A retained command would be carried out again at every reconnect: refused with one line, counted."""
    c = make(bundle, tmp_path)
    initial_states(c)
    suggest_light(c, T0 + 1)
    with caplog.at_level(logging.WARNING, logger="edge_agent.controller"):
        fx = c.handle([(ACCEPT, b"PRESS", 0.0, True), ("edge-agent/t1/mode/set", b"auto", 0.0, True)], T0 + 2)
    assert fx.commands == [] and fx.of(SuggestionRecord) == [] and c.modes.global_mode == "suggest"
    assert c.counters.invalid == 2 and "publish commands without the retain flag" in caplog.text
    assert light_commands(c.handle([(ACCEPT, b"PRESS", 0.0, False)], T0 + 3)) == [{"state": "ON"}]
