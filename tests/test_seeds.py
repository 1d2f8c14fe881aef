"""Robustness over seeds (training.seeds): the aggregation of per-seed reports (pure), the Markdown of a report
over seeds and of one bundle (per-device threshold and rule, faithfulness per head), and `train --seeds` /
`evaluate --seeds` end to end on a tiny CSV."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from training.cli import main
from training.errors import DataError
from training.report import markdown
from training.seeds import aggregate, parse_seeds, seeds_report, stat


def _report(acc: float, thr: float, faith: float, version: str, focused: list[str]) -> dict:
    """A minimal single-bundle report in the shape `evaluate` writes (one binary device, one split)."""
    dev = {"accuracy": acc, "balanced_accuracy": acc - 0.01, "f1": acc - 0.02, "average_precision": 0.9}
    dev["majority_rate"] = 0.8
    split = {"accuracy": acc, "devices": {"light": dev}, "agreement_vs_full": 1.0}
    return {
        "version": version,
        "dataset": "toy",
        "thresholds": {
            "rule": "f1",
            "model": "manifest",
            "baselines": "chosen by f1 on the validation part",
            "per_device": {"light": thr},
            "baseline_values": {"lda": {"light": 0.5}},
        },
        "drop_channels": [],
        "focused_channels": focused,
        "tiers": {t: {"test": split, "latency_us": {"p50": 50.0, "p99": 90.0}} for t in ("full", "int8")},
        "baselines": {"lda": {"test": {"accuracy": 0.9, "devices": {"light": dict(dev, accuracy=0.9)}}}},
        "torch_eager_latency_us": {"p50": 500.0, "p99": 900.0},
        "speedup_vs_torch_p50": {"full": 10.0, "int8": 10.0},
        "faithfulness_top1": faith,
        "faithfulness_top1_informative": faith,
        "faithfulness_windows": 100,
        "faithfulness_top1_devices": {"light": faith},
        "faithfulness_top1_informative_devices": {"light": None},
        "faithfulness_top1_min": faith,
        "deletion_curve": {
            "attention": [0.3, 0.5],
            "random": [0.1, 0.2],
            "aopc_attention": 0.4,
            "aopc_random": 0.15,
            "aopc_ratio": 2.5,
            "aopc_ratio_devices": {"light": 2.5},
        },
        "onnx_max_abs_error": 1e-6,
        "data": {"test": {"rows": 100, "masked_rows": 0, "windows": 90}},
    }


def test_stat_mean_sample_std_min_max() -> None:
    s = stat([0.96, 0.97, 0.98])
    assert s is not None
    assert s["mean"] == pytest.approx(0.97) and s["std"] == pytest.approx(0.01)
    assert (s["min"], s["max"], s["n"]) == (0.96, 0.98, 3)
    assert stat([0.5])["std"] == 0.0  # type: ignore[index]
    assert stat([None, float("nan")]) is None


def test_aggregate_every_figure_over_seeds() -> None:
    """Numbers -> statistics (also inside lists and nested dicts); None left out; equal strings kept, differing
    ones as the per-seed list; a key present in some seeds only is aggregated over those."""
    reps = [
        _report(0.96, 0.2, 0.9, "v0", ["a", "b"]),
        _report(0.98, 0.6, 1.0, "v1", ["a", "b"]),
        _report(0.97, 0.4, 0.8, "v2", ["b", "c"]),
    ]
    reps[2]["extra_only_here"] = 7.0
    agg = aggregate(reps)
    acc = agg["tiers"]["full"]["test"]["devices"]["light"]["accuracy"]
    assert acc["mean"] == pytest.approx(0.97) and acc["std"] == pytest.approx(0.01) and acc["n"] == 3
    thr = agg["thresholds"]["per_device"]["light"]
    assert thr["mean"] == pytest.approx(0.4) and thr["min"] == 0.2 and thr["max"] == 0.6
    assert agg["thresholds"]["rule"] == "f1"  # equal across seeds: kept
    assert agg["version"] == ["v0", "v1", "v2"]  # differs: every seed's
    assert agg["focused_channels"] == [["a", "b"], ["a", "b"], ["b", "c"]]
    assert [s["mean"] for s in agg["deletion_curve"]["attention"]] == pytest.approx([0.3, 0.5])
    assert agg["faithfulness_top1_informative_devices"]["light"] is None  # no figure in any seed
    assert agg["extra_only_here"]["n"] == 1
    assert agg["faithfulness_top1_min"]["mean"] == pytest.approx(0.9)


def test_seeds_report_headline_and_training() -> None:
    per = {0: _report(0.96, 0.2, 0.9, "v0", ["a"]), 1: _report(0.98, 0.6, 1.0, "v1", ["a"])}
    training = {0: {"train_seconds": 30.0, "stop_reason": "epochs"}, 1: {"train_seconds": 40.0}}
    rep = seeds_report(per, training)
    assert rep["seeds"] == [0, 1] and "sample standard deviation" in rep["spread"]
    assert rep["per_seed"]["1"]["full.test"] == 0.98 and rep["per_seed"]["0"]["lda.test"] == 0.9
    assert rep["training"]["train_seconds"]["mean"] == 35.0
    assert rep["training"]["stop_reason"] == {"0": "epochs", "1": None}


def test_markdown_over_seeds_shows_mean_and_std() -> None:
    per = {
        0: _report(0.96, 0.2, 0.9, "v0", ["a"]),
        1: _report(0.98, 0.6, 1.0, "v1", ["a"]),
        2: _report(0.97, 0.4, 0.8, "v2", ["a"]),
    }
    md = markdown(seeds_report(per, {s: {"train_seconds": 30.0 + s} for s in per}))
    assert "# Evaluation over seeds 0, 1, 2 on toy" in md
    assert "| full | 97.00 ± 1.00 | 100.00 ± 0.00 | 50 ± 0 |" in md  # tiers table
    # per device: accuracy, balanced accuracy, F1, AP, the threshold (mean ± std) and its rule
    row = "| tier full | test | light | 97.00 ± 1.00 | 96.00 ± 1.00 | 0.950 ± 0.010 | 0.900 ± 0.000 | 0.40 ± 0.20 | f1 |"
    assert row in md
    assert "| lda | test | light | 90.00 ± 0.00 |" in md
    assert "| 1 | v1 | 98.00 | 98.00 | 90.00 | 1.000 |" in md  # per-seed table
    assert "| light | 0.900 ± 0.100 | – | 2.50 ± 0.00 |" in md  # faithfulness per head
    assert "Worst head top-1: **0.900 ± 0.100**" in md
    assert "31.0 ± 1.0 s per seed" in md


def test_markdown_single_bundle_per_head_and_rule() -> None:
    md = markdown(_report(0.97, 0.35, 0.92, "v0", ["a", "b"]))
    assert "| tier full | test | light | 97.00 | 96.00 | 0.950 | 0.900 | 0.35 | f1 | 80.00 | – |" in md
    assert "| light | 0.920 | – | 2.50 |" in md and "Worst head top-1: **0.920**" in md
    assert "Focused tier channels (top by training attention): a, b." in md


@pytest.mark.parametrize("text", ["a,b", "", "0,0", "-1"])
def test_parse_seeds_rejects(text: str) -> None:
    with pytest.raises(DataError, match="--seeds"):
        parse_seeds(text)
    assert parse_seeds(" 2, 0 ,1") == [2, 0, 1]


SIDECAR = {
    "timestamp_column": "time",
    "step_seconds": 60,
    "columns": {
        "a": {"role": "channel", "kind": "temperature"},
        "b": {"role": "channel", "kind": "illuminance"},
        "dev": {"role": "device", "device_kind": "binary"},
    },
}


def _csv(tmp: Path) -> Path:
    rows = [
        f"2024-01-01T{i // 60:02d}:{i % 60:02d}:00+00:00,{20 + i % 3},{(i // 7) % 2 * 300 + i % 5},{(i // 7) % 2}"
        for i in range(300)
    ]
    p = tmp / "log.csv"
    p.write_text("\n".join(["time,a,b,dev", *rows]) + "\n", encoding="utf-8")
    (tmp / "log.csv.sidecar.json").write_text(json.dumps(SIDECAR), encoding="utf-8")
    return p


@pytest.mark.slow
def test_train_and_evaluate_seeds_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`train --seeds 0,1` writes a bundle per seed; `evaluate DIR` (seeds from seeds.json) writes per-seed
    reports and ONE report whose figures are the statistics of the per-seed ones."""
    csv = _csv(tmp_path)
    out = tmp_path / "runs"
    common = ["--dataset", str(csv), "--window", "8", "--epochs", "1", "--latency-runs", "5", "--no-progress"]
    assert main(["train", *common, "--seeds", "0,1", "--out", str(out)]) == 0
    assert (out / "seed-0" / "manifest.json").is_file() and (out / "seed-1" / "manifest.json").is_file()
    assert json.loads((out / "seeds.json").read_text())["seeds"] == [0, 1]
    rj, md = tmp_path / "r.json", tmp_path / "r.md"
    ev = ["--latency-runs", "5", "--faithfulness-windows", "20", "--baselines", "majority,lda"]
    assert main(["evaluate", str(out), *ev, "--json", str(rj), "--markdown", str(md)]) == 0
    assert "seeds 0,1 (mean±std)" in capsys.readouterr().out
    rep = json.loads(rj.read_text())
    per = [json.loads((tmp_path / f"r.seed-{s}.json").read_text()) for s in (0, 1)]
    assert rep["seeds"] == [0, 1] and [p["version"] for p in per] == rep["version"]
    for tier in ("full", "int8"):
        got = rep["tiers"][tier]["test"]["devices"]["dev"]["f1"]
        want = [p["tiers"][tier]["test"]["devices"]["dev"]["f1"] for p in per]
        assert got["n"] == 2 and got["mean"] == pytest.approx(statistics.mean(want))
        assert got["std"] == pytest.approx(statistics.stdev(want))
    assert rep["baselines"]["lda"]["test"]["accuracy"]["n"] == 2
    assert rep["training"]["train_seconds"]["n"] == 2
    text = md.read_text()
    assert "Evaluation over seeds 0, 1" in text and " ± " in text and "| tier int8 | test | dev |" in text
    # one seed only, by --seeds; a seed that was not trained is one clear line
    assert main(["evaluate", str(out), "--seeds", "1", *ev, "--json", str(rj)]) == 0
    assert json.loads(rj.read_text())["seeds"] == [1]
    capsys.readouterr()
    assert main(["evaluate", str(out), "--seeds", "0,5", *ev]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --seeds: no bundle for seed 5") and "\n" not in err


def test_train_seeds_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = _csv(tmp_path)
    base = ["train", "--dataset", str(csv), "--window", "8", "--epochs", "1", "--no-progress"]
    for extra, want in (
        (["--seed", "1", "--seeds", "0,1"], "--seed and --seeds"),
        (["--seeds", "x"], "--seeds 'x'"),
    ):
        assert main([*base, *extra, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and want in err and "\n" not in err
    single = tmp_path / "single"
    single.mkdir()
    (single / "manifest.json").write_text("{}", encoding="utf-8")
    assert main([*base, "--seeds", "0", "--out", str(single)]) == 2
    assert "is a single bundle" in capsys.readouterr().err
