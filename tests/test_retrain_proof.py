"""The retrain proof's direction on the simulated home (simhome.proof_retrain), fixed seed, tiny model: after
the person's hidden preference changes, the nightly retrain's challenger (trained on the log so far, its
held-out day the day after the change) agrees with the person more than the model in service on the same
held-out day; whatever the gate decides, it says why, promotes nothing with a device worse beyond the
tolerance, and the store stays consistent. The full 10-day runs (changed and control) are bench_retrain's."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_retrain import consistent

from edge_agent.bundlestore import BundleStore
from simhome.proof_retrain import RetrainProofSettings, run_retrain_proof


@pytest.mark.slow
def test_the_retrain_follows_a_changed_preference(tmp_path: Path) -> None:
    s = RetrainProofSettings(
        seed=11,
        observe_days=7.0,  # smaller models are noise: 4 days / 2 epochs scored the challenger below the champion
        days=1,
        holdout_days=1.0,
        epochs=4,
        train_args=["--max-windows-per-epoch", "5000", "--latency-runs", "20"],
    )
    r = run_retrain_proof(tmp_path, s)
    (day,) = r.days
    assert day.serving == r.first_model and day.overrides > 0  # the first model meets the changed person
    assert sum(day.overrides_per_device.values()) == day.overrides
    assert day.outcome in ("promoted", "kept") and day.reason
    store = BundleStore(tmp_path / "state" / "bundles")
    names = consistent(store)
    assert r.first_model in names and day.challenger in names
    verdict = [x for x in store._history().values() if x.get("retrain")][-1]["retrain"]["verdict"]
    assert verdict["challenger_overall"] > verdict["champion_overall"], verdict  # the direction
    for dev, sc in verdict["devices"].items():
        if day.outcome == "promoted" and sc["champion"] is not None and sc["labels"] >= 10:
            assert sc["challenger"] >= sc["champion"] - s.tolerance, dev
    assert store.current_name() == (day.challenger if day.outcome == "promoted" else r.first_model)
