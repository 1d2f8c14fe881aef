"""The simulated home's lifecycle through the runtime Controller (simhome.lifecycle, simhome.proof).

Offline and accelerated, on real SQLite files; bounded by simulated days, never by wall-clock. The proof's
direction (a model trained on the person's-preference labels beats the naive one and nobody acting) runs on
a short life with a tiny training: the full figures are bench/bench_lifecycle.py's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from edge_agent.recorder import agent_state, decisions, device_changes, model_versions, overrides, readings
from simhome import lifecycle as lc
from simhome.layout import CHANNEL_NAMES, DEVICE_NAMES

DEMO = Path(__file__).resolve().parents[1] / "simhome" / "demo_bundle"


def _count(db: Path, table) -> int:
    eng = create_engine(f"sqlite:///{db}")
    try:
        with eng.connect() as c:
            return int(c.execute(select(func.count()).select_from(table)).scalar() or 0)
    finally:
        eng.dispose()


def test_phases_are_deterministic_and_snapshots_independent():
    w = lc.make_world(5)
    snap = w.snapshot()
    a = lc.person_alone(w, 0.5).summary()
    b = lc.person_alone(snap.snapshot(), 0.5).summary()
    assert a == b
    assert a["person_actions_per_day"] > 0  # the person ran the home
    nobody = lc.nobody(snap.snapshot(), 0.5)
    assert nobody.actions == {} and nobody.commands == {}
    assert snap.home.now == w.home.now - 0.5 * 86400  # the snapshot did not move


def test_person_alone_beats_nobody_on_the_lights():
    w = lc.make_world(7, start="2024-01-10T12:00")
    alone = lc.person_alone(w.snapshot(), 1.0)
    nobody = lc.nobody(w.snapshot(), 1.0)
    assert alone.lights() > nobody.lights()
    assert alone.days == pytest.approx(1.0)


def test_observe_phase_fills_the_log_with_no_model(tmp_path):
    w = lc.make_world(4, start="2024-01-09T15:00")
    db = tmp_path / "agent.db"
    rep = lc.observe(w, 0.3, db, tmp_path / "state")
    assert rep.commands == {} and _count(db, decisions) == 0  # observe: nothing decided, nothing sent
    eng = create_engine(f"sqlite:///{db}")
    with eng.connect() as c:
        src = dict(
            c.execute(select(device_changes.c.source, func.count()).group_by(device_changes.c.source)).all()
        )
        chans = {r[0] for r in c.execute(select(readings.c.channel).distinct())}
    eng.dispose()
    assert src["initial"] == len(DEVICE_NAMES)
    assert src["person"] == sum(rep.actions.values()) > 0  # each of the person's changes, attributed
    assert chans == set(CHANNEL_NAMES)  # every configured channel, with no bundle


def test_auto_phase_records_through_the_runtime_into_sqlite(tmp_path):
    w = lc.make_world(3, start="2024-01-09T16:00")
    db = tmp_path / "agent.db"
    rep = lc.auto(w, 0.25, DEMO, db, tmp_path / "state", "auto_demo")
    assert sum(rep.commands.values()) > 0  # the agent acted
    assert _count(db, decisions) > 0
    assert _count(db, model_versions) == 1
    # every change the person made is a change nobody commanded: the controller logged each one
    assert _count(db, overrides) == sum(rep.actions.values())
    eng = create_engine(f"sqlite:///{db}")
    with eng.connect() as c:
        cat = json.loads(
            c.execute(select(agent_state.c.value).where(agent_state.c.key == "catalog")).scalar()
        )
    eng.dispose()
    assert set(cat["devices"]) == set(DEVICE_NAMES) and cat["timezone"] == "Europe/Brussels"
    again = lc.auto(
        lc.make_world(3, start="2024-01-09T16:00"), 0.25, DEMO, tmp_path / "b.db", tmp_path / "s2", "x"
    )
    assert again.agreement == rep.agreement and again.commands == rep.commands  # deterministic


def test_first_model_from_the_homes_own_log_learns_the_person(tmp_path):
    """Observe 6 days (no model), train tiny models from that SQLite log (preference and naive labels), one
    day in auto each, from the same moment: on the lights the preference-labelled model agrees with the
    person more than the naive one and more than nobody acting."""
    pytest.importorskip("torch", reason="training needs torch (pip install 'edge-agent[train]')")
    from simhome.proof import ProofSettings, run_proof

    s = ProofSettings(
        seed=11,
        observe_days=6.0,
        auto_days=1.0,
        holdout_days=1.0,
        train_args=["--epochs", "3", "--max-windows-per-epoch", "3000", "--latency-runs", "20"],
        agent_epochs=3,
        # 6 days give the lights 15-25 label events: below the default readiness for auto (50); the test asks
        # whether the labels teach the person, so every device may act
        agent_alone=(True,),  # the person only changes back what the agent set: agreement measures the model
        readiness={
            "suggest_min_labels": 5,
            "auto_min_labels": 5,
            "suggest_min_agreement": 0,
            "auto_min_agreement": 0,
        },
    )
    res = run_proof(tmp_path, s)
    obs = res.observe
    assert obs.days == pytest.approx(6.0) and sum(obs.actions.values()) > 30  # the person ran the home
    pref, naive = res.phases["auto_preference_alone"], res.phases["auto_naive_alone"]
    nobody = res.phases["nobody"]
    assert pref.lights() > naive.lights() + 0.02, (pref.summary(), naive.summary())
    assert pref.lights() > nobody.lights() + 0.02, (pref.summary(), nobody.summary())
    assert sum(pref.commands.values()) > 0
