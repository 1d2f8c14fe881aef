"""The champion scored on the challenger's held-out days (training.champion), on a home's log (real SQLite):
its own channels (one the log lacks is masked), its own int8 tier file, the runtime's decision rule; a
champion that cannot run is reported (champion_evaluated 0), not a failed training; warm start only when the
channels and devices are the log's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from homelog import generated_log, home_config
from testbundle import build_bundle

from edge_agent.manifest import ChannelSpec, DeviceSpec
from training.champion import champion_metrics, warm_start_source
from training.data.dblog import load_db


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("home")
    url, _ = generated_log(home_config(tmp), days=5, seed=2)
    return load_db(
        url, holdout_days=1, min_labels=1, window=32, calendar=["calendar.tod_sin", "calendar.tod_cos"]
    )


def champ(out: Path, extra_channel: bool = False) -> Path:
    names = ["living.motion", "living.illuminance"] + (["garage.motion"] if extra_channel else [])
    specs = [
        ChannelSpec(
            name=n,
            kind="motion" if "motion" in n else "illuminance",
            mean=0.0,
            std=100.0 if "ill" in n else 1.0,
        )
        for n in names
    ]
    w = np.zeros((len(specs), 1))
    w[0, 0], w[1, 0] = 8.0, -4.0
    return build_bundle(
        out,
        specs,
        [DeviceSpec(name="living.light", kind="binary", threshold=0.5)],
        w,
        np.array([-4.0]),
        step_seconds=60.0,
        window=16,
        version="champ",
    )


def test_scored_on_the_same_heldout_rows(db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    m = champion_metrics(db, champ(tmp_path / "c", extra_channel=True))
    assert m["champion_evaluated"] == 1.0
    a = m["champion_holdout_agreement.living.light"]
    assert 0.0 <= a <= 1.0
    labels = ~np.isnan(db.holdout.labels[db.context :, 0])
    assert m["champion_holdout_labels.living.light"] == float(labels.sum())  # the challenger's rows
    assert not any(k.startswith("champion_label_events") for k in m)


def test_a_champion_that_cannot_run_is_reported(db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    c = champ(tmp_path / "bad")
    (c / "model_int8.onnx").write_bytes(b"garbage")
    assert champion_metrics(db, c) == {"champion_evaluated": 0.0}


def test_warm_start_only_with_the_same_channels(db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    c = champ(tmp_path / "c")
    (c / "model.pt").write_bytes(b"x")
    assert warm_start_source(c, db.parts["train"]) is None  # other channels: cold start
    assert warm_start_source(None, db.parts["train"]) is None
