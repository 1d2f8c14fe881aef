"""End to end through the CLI on UCI occupancy: train (6 epochs, no wall-clock budget: the same model on a
busy or an idle box) -> bundle -> evaluate -> report keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.manifest import read_manifest
from training.cli import main

SPLITS = ("test", "test2")
TIERS = ("full", "int8", "coarse", "focused", "sparse")
DEVICE_KEYS = ("accuracy", "balanced_accuracy", "f1", "average_precision", "majority_rate")


@pytest.fixture(scope="module")
def uci_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("uci") / "bundle"
    code = main(
        [
            "train",
            "--dataset",
            "uci-occupancy",
            "--epochs",
            "6",
            "--latency-runs",
            "100",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    return out


@pytest.mark.slow
def test_train_writes_a_complete_bundle(uci_bundle: Path) -> None:
    """The manifest has the five tiers, a validation threshold, per-channel stats and the parity error."""
    man = read_manifest(uci_bundle)
    assert [t.name for t in man.tiers] == list(TIERS)
    assert [c.name for c in man.channels] == ["Temperature", "Humidity", "Light", "CO2", "HumidityRatio"]
    assert 0.05 <= man.devices[0].threshold <= 0.95
    assert man.metrics["onnx_max_abs_error"] < 1e-4
    assert man.metrics["int8_agreement_val"] >= 0.99
    assert man.timezone == "Europe/Brussels"  # the dataset's own zone (Mons, Belgium): calendar inputs use it
    assert (uci_bundle / "training.json").is_file() and (uci_bundle / "model.pt").is_file()


@pytest.mark.slow
def test_evaluate_report_keys_and_accuracy(uci_bundle: Path, tmp_path: Path) -> None:
    """evaluate writes every issue-3/issue-11 key; the model beats the majority class on both test splits."""
    rj, rm, png = tmp_path / "r.json", tmp_path / "r.md", tmp_path / "r.png"
    code = main(
        [
            "evaluate",
            str(uci_bundle),
            "--json",
            str(rj),
            "--markdown",
            str(rm),
            "--plot",
            str(png),
            "--latency-runs",
            "100",
            "--faithfulness-windows",
            "300",
        ]
    )
    assert code == 0
    r = json.loads(rj.read_text())
    for tier in TIERS:
        for s in SPLITS:
            t = r["tiers"][tier][s]
            assert {"accuracy", "agreement_vs_full"} <= set(t)
            for k in DEVICE_KEYS:
                assert k in t["devices"]["Occupancy"]
        assert r["tiers"][tier]["latency_us"]["p50"] > 0 and r["tiers"][tier]["latency_us"]["p99"] > 0
    for name in ("majority", "lda", "threshold_rule", "gbdt_window"):
        for s in SPLITS:
            assert "accuracy" in r["baselines"][name][s]
            for k in DEVICE_KEYS:
                assert k in r["baselines"][name][s]["devices"]["Occupancy"]
    for s in ("train", "val", *SPLITS):
        assert r["data"][s]["rows"] > 0 and "masked_rows" in r["data"][s]
    assert r["faithfulness_top1"] > 0.5  # the top-attention channel is the top-deletion one on most windows
    assert r["tiers"]["full"]["test"]["agreement_vs_full"] == 1.0  # the reference is the full tier itself
    assert r["onnx_max_abs_error"] < 1e-4
    assert r["torch_eager_latency_us"]["p50"] > 0 and r["torch_eager_latency_us"]["p99"] > 0
    assert len(r["deletion_curve"]["attention"]) == 4
    # A 6-epoch model: clearly above majority on test; above it on test2 (a later week with drift, where the
    # published LDA itself falls to ~91% here). The targets are measured in bench/.
    assert r["tiers"]["full"]["test"]["accuracy"] > r["baselines"]["majority"]["test"]["accuracy"] + 0.05
    assert r["tiers"]["full"]["test2"]["accuracy"] > r["baselines"]["majority"]["test2"]["accuracy"]
    for s in SPLITS:  # a short-trained model sits nearer its threshold; the trained one measures >= 99.98%
        assert r["tiers"]["int8"][s]["agreement_vs_full"] >= 0.98
    assert "| full |" in rm.read_text() and png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_evaluate_without_light(uci_bundle: Path, tmp_path: Path) -> None:
    """--drop-channels Light masks it in every tier (zero attention) and fits the baselines without it."""
    rj = tmp_path / "r.json"
    assert (
        main(
            [
                "evaluate",
                str(uci_bundle),
                "--drop-channels",
                "Light",
                "--json",
                str(rj),
                "--latency-runs",
                "50",
                "--faithfulness-windows",
                "200",
            ]
        )
        == 0
    )
    r = json.loads(rj.read_text())
    assert r["drop_channels"] == ["Light"] and "Light" not in r["focused_channels"]
    assert r["tiers"]["full"]["test2"]["accuracy"] > 0.5
