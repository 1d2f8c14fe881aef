"""End to end on a generic CSV (two simulated weeks): train through the CLI with a date split and a bounded
number of steps (2 epochs of 2000 windows, no wall-clock budget), then evaluate: per-device thresholds in the manifest, every report key, calendar channels, all device kinds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.manifest import read_manifest
from simhome import DEVICE_NAMES, write_history
from training.cli import main


@pytest.mark.slow
def test_csv_train_and_evaluate(tmp_path: Path) -> None:
    """Two weeks of simulated history -> bundle (thresholds per binary device) -> report with every key."""
    csv = write_history(tmp_path / "home.csv", 14, seed=3, start="2023-05-01")
    out = tmp_path / "bundle"
    code = main(
        [
            "train",
            "--dataset",
            str(csv),
            "--split",
            "2023-05-10,2023-05-12",
            "--epochs",
            "2",
            "--max-windows-per-epoch",
            "2000",
            "--latency-runs",
            "50",
            "--threshold-metric",
            "f1",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    man = read_manifest(out)
    assert [d.name for d in man.devices] == list(DEVICE_NAMES)
    kinds = {d.name: d.kind for d in man.devices}
    assert kinds["bedroom.fan"] == "level" and kinds["living.heating"] == "setpoint"
    for d in man.devices:
        if d.kind == "binary":
            assert 0.05 <= d.threshold <= 0.95 and f"val_f1.{d.name}" in man.metrics
    assert {"calendar.tod_sin", "calendar.tod_cos"} <= {c.name for c in man.channels}
    heat = next(d for d in man.devices if d.name == "living.heating")
    assert heat.min_value is not None and heat.max_value is not None and heat.unit == "°C"
    assert (
        man.timezone == "Europe/Brussels"
    )  # the sidecar's zone: the home's calendar inputs are computed in it
    assert man.training_span is not None and man.training_span[0].startswith("2023-04-30T2")  # local midnight

    rj = tmp_path / "r.json"
    assert (
        main(
            ["evaluate", str(out), "--json", str(rj), "--latency-runs", "50", "--faithfulness-windows", "100"]
        )
        == 0
    )
    r = json.loads(rj.read_text())
    for tier in ("full", "int8", "coarse", "focused", "sparse"):
        t = r["tiers"][tier]["test"]
        assert set(t["devices"]) == set(DEVICE_NAMES)
        for dev in ("living.light", "kitchen.light", "bedroom.light"):
            assert {"accuracy", "balanced_accuracy", "f1", "average_precision", "majority_rate"} <= set(
                t["devices"][dev]
            )
        assert "mae" in t["devices"]["living.heating"]
    assert r["data"]["test"]["rows"] > 0 and "masked_rows" in r["data"]["test"]
    assert set(r["baselines"]) == {"majority", "lda", "threshold_rule", "gbdt_window"}
