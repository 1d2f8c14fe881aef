"""Every tier answers the event that triggered it: coarse pooling keeps the newest step whole, the event test
of training.tierevents counts missed/wrong against the full tier, and a tier that fails is not on the ladder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import agent_config_dict
from testbundle import build_model, home_bundle, simhome_bundle

from edge_agent.config import parse_config
from edge_agent.controller import Controller
from edge_agent.inference import Bundle
from edge_agent.manifest import read_manifest, sha256_file, write_manifest
from simhome.config import simhome_config
from training.tierevents import Tally, mark_ladder, tier_event_response

T0 = 1_800_000_000.0
LIGHT, FAN, HEAT = "zigbee2mqtt/living_light", "zigbee2mqtt/bedroom_fan", "zigbee2mqtt/living_thermostat"
MOTION = "zigbee2mqtt/living_motion"


def _msg(topic: str, obj: dict[str, object]) -> tuple[str, bytes, float, bool]:
    return topic, json.dumps(obj).encode(), 100.0, False


@pytest.mark.parametrize("tier", ["full", "coarse", "focused", "sparse"])
def test_every_tier_answers_motion_that_starts_and_stops_in_the_newest_step(
    tier: str, tmp_path: Path
) -> None:
    """The test bundle's light follows the newest motion value. Pooled by means aligned at the newest step,
    a motion that just started reached the coarse tiers at a quarter (no command) and one that just stopped
    at three quarters (the light kept on): now every tier switches ON, then OFF, on the event."""
    bundle = Bundle.load(home_bundle(tmp_path / "b"))  # 10 s steps, window 16, coarse tiers time_factor 4
    cfg = parse_config(
        agent_config_dict(bundle.path, 1883, tmp_path / "s", timezone="UTC", governor={"pinned_tier": tier})
    )
    c = Controller(cfg, bundle, now=T0)
    c.handle([_msg(LIGHT, {"state": "OFF"}), _msg(FAN, {"fan_mode": "off"})], T0)
    c.handle([_msg(MOTION, {"occupancy": False, "illuminance": 5})], T0 + 1)
    assert c.tier == tier
    on = c.handle([_msg(MOTION, {"occupancy": True, "illuminance": 5})], T0 + 61)  # 6 steps later
    light = [json.loads(cmd.payload) for cmd in on.commands if cmd.device == "living.light"]
    assert light == [{"state": "ON"}], (tier, on.decisions)
    c.handle([_msg(LIGHT, {"state": "ON"})], T0 + 62)  # the echo
    off = c.handle([_msg(MOTION, {"occupancy": False, "illuminance": 5})], T0 + 121)
    light = [json.loads(cmd.payload) for cmd in off.commands if cmd.device == "living.light"]
    assert light == [{"state": "OFF"}], (tier, off.decisions)


def test_tally_counts_missed_and_wrong_against_the_full_tier() -> None:
    t = Tally()
    t.add("a", relevant=True, ref_change=True, missed=False, wrong=False, agreed=True)
    t.add("a", relevant=True, ref_change=True, missed=True, wrong=False, agreed=False)  # ignored the event
    t.add("b", relevant=True, ref_change=False, missed=False, wrong=True, agreed=False)  # ON as motion stops
    t.add("b", relevant=False, ref_change=False, missed=False, wrong=False, agreed=True)
    c = t.check()
    assert (c.decisions, c.relevant, c.full_commands, c.missed, c.wrong) == (4, 3, 2, 1, 1)
    assert c.agreement == 0.5 and c.agreement_relevant == pytest.approx(1 / 3, abs=1e-5) and not c.passed
    assert t.per_device["a"]["missed"] == 1 and t.per_device["b"]["wrong"] == 1


def _inverted_coarse(out: Path) -> Path:
    """The simulated home's test bundle with its coarse file replaced by a model whose lights answer motion
    the wrong way round (ON without motion): the tiers on that file must fail the event test."""
    bundle = simhome_bundle(out)
    man = read_manifest(bundle)
    idx = {c.name: i for i, c in enumerate(man.channels)}
    w = np.zeros((len(man.channels), len(man.devices)))
    bias = np.zeros(len(man.devices))
    for j, d in enumerate(man.devices):
        if d.kind == "binary":
            room = d.name.split(".")[0]
            w[idx[f"{room}.motion"], j], bias[j] = -8.0, 4.0
    coarse = man.tier("coarse")
    (bundle / coarse.file).write_bytes(
        build_model(w, bias, np.ones(len(man.devices)), np.zeros(len(man.devices))).SerializeToString()
    )
    digest = sha256_file(bundle / coarse.file)
    tiers = [t.model_copy(update={"sha256": digest}) if t.file == coarse.file else t for t in man.tiers]
    write_manifest(bundle, man.model_copy(update={"tiers": tiers}))
    return bundle


def test_a_tier_that_fails_the_event_test_is_not_offered_on_the_ladder(tmp_path: Path) -> None:
    """Closed loop on the simulated home through the runtime's Controller: the honest tiers agree with the
    full tier on every event decision; the inverted coarse tier is counted wrong/missed, marked not offered
    in the manifest, and the daemon's governor never switches to it."""
    bundle = _inverted_coarse(tmp_path / "b")
    man = read_manifest(bundle)
    good = tier_event_response(bundle, man, "int8", hours=8.0, starts=("2023-01-16T06:00",))
    bad = tier_event_response(bundle, man, "coarse", hours=8.0, starts=("2023-01-16T06:00",))
    assert good.decisions > 0 and good.relevant > 0 and good.full_commands > 0
    assert good.missed == good.wrong == 0 and good.agreement == 1.0 and good.passed()
    assert bad.missed + bad.wrong > 0 and not bad.passed()
    man = mark_ladder(bundle, {"int8": good.as_dict(), "coarse": bad.as_dict()})
    assert man.tier("int8").offered and man.tier("int8").event_check.passed  # type: ignore[union-attr]
    assert not man.tier("coarse").offered and man.tier("coarse").event_check.wrong == bad.wrong  # type: ignore[union-attr]
    assert man.tier("focused").event_check is None and man.tier("focused").offered  # not tested: offered
    assert man.ladder() == ["full", "int8", "focused", "sparse"]
    loaded = Bundle.load(bundle)
    assert loaded.tiers == ["full", "int8", "coarse", "focused", "sparse"] and "coarse" not in loaded.ladder
    ctrl = Controller(simhome_config(bundle, state_dir=tmp_path / "s"), loaded, now=T0)
    assert ctrl.governor is not None and ctrl.governor.tiers == ["full", "int8", "focused", "sparse"]
