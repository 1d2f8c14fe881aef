"""Answered suggestions are training labels: `edge_agent.labels.suggestion_labels` on a grid, and the same
through `load_history` (what training's db: dataset reads) from a real SQLite log written by the Recorder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_agent.config import load_config
from edge_agent.history import load_history
from edge_agent.labels import SuggestionOutcome, suggestion_labels
from edge_agent.recorder import Recorder
from edge_agent.suggest import SuggestionRecord
from tests.homelog import home_config, write_db

T0 = 1_717_200_000.0  # a minute boundary
STEP = 60.0


def test_accepted_gives_the_value_rejected_the_basis_ignored_nothing() -> None:
    times = T0 + STEP * np.arange(20)
    rows = [
        SuggestionOutcome(T0 + 5 * STEP, 1.0, 0.0, "accepted"),
        SuggestionOutcome(T0 + 10 * STEP + 30, 1.0, 0.0, "rejected"),
        SuggestionOutcome(T0 + 15 * STEP, 1.0, 0.0, "ignored"),
        SuggestionOutcome(T0 + 18 * STEP, 1.0, 0.0, "stale"),
    ]
    lab = suggestion_labels(times, STEP, [rows], lead_seconds=120.0)[:, 0]
    # rows whose data ends in (created - 120, created]: ends at 4, 5 steps -> rows 3, 4; ends at 9, 10 -> 8, 9
    assert lab[[3, 4]].tolist() == [1.0, 1.0] and lab[[8, 9]].tolist() == [0.0, 0.0]
    assert np.isnan(np.delete(lab, [3, 4, 8, 9])).all()


def test_the_log_s_suggestions_are_labels_in_the_history(tmp_path: Path) -> None:
    cfg = load_config(home_config(tmp_path))
    readings = [(T0 + STEP * i, "living.motion", 1.0) for i in range(60)]
    changes = [(T0, "living.light", 0.0, "automation:night", False)]  # rule b gives no label: only answers do
    url = write_db(cfg, readings, changes)
    rec = Recorder(url)
    try:
        for created, outcome in (
            (T0 + 20 * STEP, "accepted"),
            (T0 + 40 * STEP, "rejected"),
            (T0 + 50 * STEP, "ignored"),
        ):
            rec.write(
                SuggestionRecord(created + 30, "living.light", created, 1.0, 0.0, outcome, "ON: x", "v1")
            )
        assert rec.flush(10)
    finally:
        rec.close()
    hist = load_history(url)
    lead = hist.learning.label_lead_seconds
    k = [d.name for d in hist.devices].index("living.light")
    lab = hist.targets[:, k]
    ends = hist.times + hist.step
    acc = (ends > T0 + 20 * STEP - lead) & (ends <= T0 + 20 * STEP)
    rej = (ends > T0 + 40 * STEP - lead) & (ends <= T0 + 40 * STEP)
    assert acc.any() and rej.any()
    assert (lab[acc] == 1.0).all() and (lab[rej] == 0.0).all()
    assert np.isnan(lab[~(acc | rej)]).all()  # the ignored one, and the automation's state: no label
    assert hist.labels.labelled[k] == int(acc.sum() + rej.sum())
