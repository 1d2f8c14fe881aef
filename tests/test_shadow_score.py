"""The shadow score: shadow decisions beside what the person then did (pure), and through the running agent
(real mosquitto, real SQLite), its stats topic and `edge-agent shadow-score`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import Broker, EchoDevices, JumpClock, Observer, agent_config_dict, wait_until
from ha_schema import check_state, render_attributes, render_state, validate_device_payload

from edge_agent import cli
from edge_agent.agent import Agent
from edge_agent.config import parse_config
from edge_agent.ha_discovery import Discovery
from edge_agent.ha_settings import HomeAssistantSettings
from edge_agent.shadow_score import ShadowDecision as D
from edge_agent.shadow_score import StateChange as C
from edge_agent.shadow_score import score_shadow

L = "living.light"
H = 600.0


def test_confirmed_contradicted_unanswered() -> None:
    dec = [
        D(100, L, 1.0, "shadow", "change"),  # run 1: wants ON ...
        D(160, L, 1.0, "shadow", "change"),  # ... same run
        D(200, L, 1.0, "shadow", "no-change"),  # the person switched it on: nothing to want
        D(1000, L, 0.0, "shadow", "change"),  # run 2: wants OFF, the person sets it ON again? (contradicted)
        D(3000, L, 0.0, "shadow", "change"),  # run 3 (a change came in between): nothing follows
    ]
    chg = [C(190, L, 1.0, "person", False), C(1100, L, 1.0, "person", False)]
    s = score_shadow(dec, chg, horizon_s=H)[L]
    assert (s.would_commands, s.confirmed, s.contradicted, s.unanswered) == (3, 1, 1, 1)
    assert s.precision == pytest.approx(1 / 3)


def test_recall_of_the_persons_changes() -> None:
    dec = [
        D(100, L, 1.0, "shadow", "change"),
        D(900, L, 1.0, "shadow", "no-change"),  # the latest before the OFF at 950: it wanted ON -> missed
        D(5000, L, 0.0, "auto", "no-change"),  # not shadow: the change after it is not scored
    ]
    chg = [
        C(150, L, 1.0, "person", False),  # anticipated by the decision at 100
        C(950, L, 0.0, "person", False),  # missed
        C(5100, L, 1.0, "person", False),  # after an auto decision: not scored
        C(120, L, 1.0, "person", True),  # learning paused: never scored
    ]
    s = score_shadow(dec, chg, horizon_s=H)[L]
    assert (s.person_changes, s.anticipated, s.recall) == (2, 1, 0.5)


def test_others_and_the_horizon_are_not_the_person() -> None:
    dec = [D(100, L, 1.0, "shadow", "change"), D(5000, L, 1.0, "shadow", "change")]
    chg = [C(200, L, 1.0, "automation:schedule", False), C(5000 + H + 1, L, 1.0, "person", False)]
    s = score_shadow(dec, chg, horizon_s=H)[L]
    # the automation acted first: not scored; the person came after the horizon: unanswered, and the
    # decision before that change is older than the horizon: the change is not scored either
    assert (s.would_commands, s.confirmed, s.contradicted, s.unanswered, s.person_changes) == (2, 0, 0, 1, 0)


def test_setpoint_tolerance_and_devices_without_shadow() -> None:
    heat = "living.heating"
    dec = [D(0, heat, 21.0, "shadow", "change"), D(0, "bedroom.fan", 2.0, "auto", "change")]
    chg = [C(60, heat, 21.2, "person", False)]
    exact = score_shadow(dec, chg, horizon_s=H)
    assert set(exact) == {heat} and exact[heat].contradicted == 1
    assert score_shadow(dec, chg, horizon_s=H, tolerance={heat: 0.25})[heat].confirmed == 1
    assert score_shadow([], chg, horizon_s=H) == {}


# ---- through the running agent -----------------------------------------------------------------------------


@pytest.mark.integration
def test_agent_scores_its_shadow_decisions(
    bundle_path: Path,
    broker: Broker,
    observer: Observer,
    devices: EchoDevices,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Shadow: motion in the dark -> the agent would switch the light on, sends nothing; the person then does
    it by hand -> a confirmed would-command and an anticipated change, on the stats topic and in the CLI."""
    data = agent_config_dict(bundle_path, broker.port, tmp_path / "state", mode="shadow")
    agent = Agent(parse_config(data), clock=JumpClock())
    agent.start()
    try:
        assert agent.link.wait_connected(5)
        light = agent.devices[0]
        wait_until(lambda: light.tracker.reported == 0.0)
        observer.publish("zigbee2mqtt/living_motion", {"occupancy": True, "illuminance": 5})
        wait_until(lambda: light.last is not None and light.last.reason == "change")
        devices.person_sets("living_light", state="ON")
        wait_until(lambda: light.tracker.reported == 1.0)
        agent.recorder.flush()
        agent.shadow_score.run()
        s = agent.stats()["shadow_score"][L]
        assert s["would_commands"] >= 1 and s["confirmed"] == 1 and s["contradicted"] == 0
        assert s["person_changes"] == 1 and s["anticipated"] == 1 and s["recall"] == 1.0
        published = wait_until(
            lambda: [m for m in observer.on("edge-agent/t1/stats") if (m.get("shadow_score") or {}).get(L)]
        )
        assert published[-1]["shadow_score"][L]["confirmed"] == 1
        # Home Assistant's shadow-precision sensor on that stats payload, and on one with no score yet
        disco = Discovery("t1", [L], HomeAssistantSettings(), None).payload()
        assert validate_device_payload(disco) == []
        c = disco["components"]["shadow_living_light"]
        raw = json.dumps(published[-1]).encode()
        state = render_state(c["value_template"], raw)
        expect = round(100 * published[-1]["shadow_score"][L]["precision"], 1)
        assert check_state(c, state) == [] and float(state) == expect
        assert render_attributes(c["json_attributes_template"], raw)["confirmed"] == 1
        empty = json.dumps({"shadow_score": None}).encode()
        assert render_state(c["value_template"], empty) == "None"
        assert render_attributes(c["json_attributes_template"], empty) == {}
    finally:
        agent.stop()
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(data))
    capsys.readouterr()
    assert cli.main(["shadow-score", "--config", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[L]["confirmed"] == 1 and out[L]["anticipated"] == 1
    assert cli.main(["shadow-score", "--config", str(path)]) == 0
    table = capsys.readouterr().out
    assert L in table and "100.0 %" in table
    assert cli.main(["shadow-score", "--config", str(path), "--days", "0"]) == 2
    assert "--days" in capsys.readouterr().err
