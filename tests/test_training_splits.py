"""Issue 22, done when: three split files (train / validation / test) of a simulated home; train with an
explicit validation file; the split and threshold rule in the manifest; evaluate scores the whole test file;
baselines are fitted on train only (a pattern planted in the test file alone is not learned by them); the
same numbers whichever way the dataset is spelled; the report states the split and the rule; a scored file
that overlaps the training span is an error naming both spans."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from edge_agent.manifest import read_manifest
from simhome import write_history
from training.baselines import fit_baselines
from training.cli import main
from training.data import load_csv
from training.pipeline import DataSpec, load_splits

PLANT = "plant.signal"  # noise in train and validation; equal to the device's label (x1000) in test only
DEVICE = "bedroom.light"


def _write(frame: pd.DataFrame, path: Path, sidecar: dict) -> Path:
    frame.to_csv(path, index=False)
    (path.parent / (path.name + ".sidecar.json")).write_text(json.dumps(sidecar), encoding="utf-8")
    return path


def _three_files(tmp: Path) -> dict[str, Path]:
    src = write_history(tmp / "home.csv", 12, seed=5, start="2023-05-01")
    sidecar = json.loads(Path(str(src) + ".sidecar.json").read_text())
    sidecar["columns"][PLANT] = {"role": "channel", "kind": "generic", "description": "planted"}
    sidecar["description"] = "simulated home, one file per split"  # descriptive keys are accepted
    df = pd.read_csv(src, dtype=str, keep_default_na=False)
    day = df["time"].str[:10]
    rng = np.random.default_rng(0)
    parts = {"train": day < "2023-05-09", "val": (day >= "2023-05-09") & (day < "2023-05-11")}
    parts["test"] = day >= "2023-05-11"
    out = {}
    for name, rows in parts.items():
        f = df[rows].copy()
        if name == "test":
            lab = pd.to_numeric(f[DEVICE], errors="coerce").fillna(0).to_numpy()
            f[PLANT] = np.round(1000 * lab + rng.uniform(0, 10, len(f)), 1).astype(str)
        else:
            f[PLANT] = np.round(rng.uniform(0, 1000, len(f)), 1).astype(str)
        out[name] = _write(f, tmp / f"{name}.csv", sidecar)
    return out


def _eval(bundle: Path, tmp: Path, name: str, *extra: str) -> dict:
    rj = tmp / f"{name}.json"
    args = ["evaluate", str(bundle), *extra, "--json", str(rj), "--markdown", str(tmp / f"{name}.md")]
    if "--baselines" not in extra:  # gbdt_window is fitted once below (the slowest to fit)
        args += ["--baselines", "majority,lda,threshold_rule"]
    assert main([*args, "--latency-runs", "10", "--faithfulness-windows", "40"]) == 0
    return json.loads(rj.read_text())


def _figures(r: dict) -> dict:
    """Every accuracy figure of the report: per tier and baseline, per scored split and device."""
    out = {}
    for group in ("tiers", "baselines"):
        for name, per in r[group].items():
            for split, m in per.items():
                if split == "latency_us":
                    continue
                for dev, dm in m["devices"].items():
                    out[(group, name, split, dev)] = (
                        dm["accuracy"],
                        dm.get("f1"),
                        dm.get("average_precision"),
                    )
    return out


@pytest.mark.slow
def test_explicit_split_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _three_files(tmp_path)
    bundle = tmp_path / "bundle"
    code = main(
        [
            "train",
            "--dataset",
            f"csv:{files['train']}",
            "--val-dataset",
            str(files["val"]),
            "--test-dataset",
            str(files["test"]),
            "--steps",
            "40",
            "--batch",
            "64",
            "--max-windows-per-epoch",
            "1000",
            "--latency-runs",
            "10",
            "--no-progress",
            "--out",
            str(bundle),
        ]
    )
    assert code == 0
    man = read_manifest(bundle)
    assert man.split is not None and man.split.rule == "files"
    assert {k: Path(p.source).name for k, p in man.split.parts.items()} == {
        "train": "train.csv",
        "val": "val.csv",
        "test": "test.csv",
    }
    assert man.split.parts["train"].last < man.split.parts["val"].first < man.split.parts["test"].first
    assert man.threshold_rule == "f1" and man.metrics["steps_run"] == 40  # the step budget, not the clock
    assert man.metrics["threshold_windows"] == man.split.parts["val"].rows - man.window + 1  # all of them

    r1 = _eval(bundle, tmp_path, "default")  # the manifest's split: its test file, whole
    test_rows = len(load_csv(files["test"]))
    assert r1["data"]["test"]["rows"] == test_rows and r1["split"]["parts"]["test"]["rows"] == test_rows
    r2 = _eval(bundle, tmp_path, "whole", "--dataset", str(files["test"]), "--whole")
    os.chdir(tmp_path)  # a relative spelling, with the sidecar given explicitly
    r3 = _eval(
        bundle, tmp_path, "spelled", "--test-dataset", "test.csv", "--sidecar", "test.csv.sidecar.json"
    )
    r4 = _eval(
        bundle, tmp_path, "trainspell", "--dataset", "./train.csv", "--sidecar", "train.csv.sidecar.json"
    )
    f1 = _figures(r1)
    assert f1 and f1 == _figures(r2) == _figures(r3) == _figures(r4)
    assert r2["split"]["parts"]["test"]["whole_file"] is True

    # baselines were fitted on train only: the planted test-only pattern is learnable (fitted on the test
    # file itself, a single-channel rule finds it), but not learned by the evaluation's baselines
    test = load_csv(files["test"])
    cheat = fit_baselines(test, None, man.window, ["threshold_rule"])["threshold_rule"]
    assert cheat.rule(DEVICE).startswith(PLANT)
    fair = r1["baselines"]["threshold_rule"]["test"]["devices"][DEVICE]["accuracy"]
    from training.data import WindowSampler

    ends = WindowSampler(test, man.window).ends
    k = [d.name for d in test.devices].index(DEVICE)
    y = test.labels[ends, k]
    known = ~np.isnan(y)
    cheat_acc = float((cheat.predict(test, ends)[DEVICE][known] == y[known]).mean())
    assert cheat_acc > 0.999 and fair < cheat_acc - 0.01, (fair, cheat_acc)

    md = (tmp_path / "default.md").read_text()
    assert "## Split" in md and "rule (manifest): files" in md and "rule **f1**" in md
    assert "| threshold |" in md

    # the training file scored whole: an error naming both spans; another file without --whole: an error
    capsys.readouterr()
    assert main(["evaluate", str(bundle), "--dataset", str(files["train"]), "--whole"]) == 2
    err = capsys.readouterr().err
    assert "overlap the bundle's training span" in err and err.count("2023-") >= 4
    other = tmp_path / "other.csv"
    shutil.copy(files["test"], other)
    shutil.copy(str(files["test"]) + ".sidecar.json", str(other) + ".sidecar.json")
    assert main(["evaluate", str(bundle), "--dataset", str(other)]) == 2
    assert "not the dataset the bundle was trained on" in capsys.readouterr().err

    # evaluate can choose another rule: re-chosen for the model and every baseline, and said so
    r5 = _eval(bundle, tmp_path, "cost", "--threshold-rule", "cost:1/4", "--baselines", "gbdt_window,lda")
    assert r5["thresholds"]["rule"] == "cost:1/4" and "re-chosen" in r5["thresholds"]["model"]
    assert set(r5["thresholds"]["baseline_values"]["gbdt_window"]) >= {DEVICE}
    # the baselines' thresholds are those of the rule on the validation file, fitted on the training file
    parts = load_splits(DataSpec(dataset=str(files["train"]), val_dataset=str(files["val"])))
    for rule, r in (("f1", r1), ("cost:1/4", r5)):
        lda = fit_baselines(parts["train"], parts["val"], man.window, ["lda"], threshold_rule=rule)["lda"]
        assert r["thresholds"]["baseline_values"]["lda"] == pytest.approx(lda.thresholds)
