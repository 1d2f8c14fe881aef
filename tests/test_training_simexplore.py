"""Explored simulated history and the closed-loop check of the committed demo bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_agent.manifest import read_manifest
from simhome import write_history
from training.closedloop import closed_loop
from training.data import hour_and_weekday, load_dataset
from training.demo import default_out
from training.simexplore import write_explored_history


def _lamp_on_unwanted_at_night(csv: Path) -> float:
    """Share of night rows (0-5 h) where the living room is lit (> 200 lx) while its light label is off."""
    log = load_dataset(str(csv))["all"]
    hour, _ = hour_and_weekday(log)
    names = [c.name for c in log.channels]
    lux = log.values[:, names.index("living.illuminance")]
    label = log.labels[:, [d.name for d in log.devices].index("living.light")]
    night = (hour < 5) & ~np.isnan(lux)
    return float(np.mean((lux[night] > 200) & (label[night] == 0)))


def test_explored_history_decorrelates_the_lamp_from_the_label(tmp_path: Path) -> None:
    """With state labels the lamp's light implies label ON; the explored history breaks that link."""
    explored = write_explored_history(tmp_path / "ex.csv", 4, seed=3, start="2023-01-02")
    state = write_history(tmp_path / "st.csv", 4, seed=3, start="2023-01-02")
    assert _lamp_on_unwanted_at_night(explored) > 0.02
    assert _lamp_on_unwanted_at_night(state) < 0.005
    log = load_dataset(str(explored))["all"]
    assert len(log) >= 4 * 1440 - 2 and set(np.unique(log.labels[:, 0])) <= {0.0, 1.0}


def test_demo_bundle_decides_the_home_in_closed_loop() -> None:
    """The committed demo bundle, driving the simulated home for a winter evening, agrees with the person."""
    bundle = default_out()
    res = closed_loop(bundle, read_manifest(bundle), "int8", hours=6.0, seed=55, start="2023-02-06T15:00")
    for dev in ("living.light", "kitchen.light", "bedroom.light"):
        assert res[f"closed_loop_agreement.{dev}"] >= 0.95, res
    assert res["closed_loop_agreement"] >= 0.9, res
