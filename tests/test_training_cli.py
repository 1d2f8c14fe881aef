"""`python -m training` bad input: one clear line naming the file/column and the fix, exit 2, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from training.cli import main

SIDECAR = {
    "timestamp_column": "time",
    "step_seconds": 60,
    "columns": {
        "a": {"role": "channel", "kind": "temperature"},
        "b": {"role": "channel", "kind": "co2"},
        "dev": {"role": "device", "device_kind": "binary"},
    },
}


def _csv(tmp: Path, rows: list[str], sidecar: dict | None = None, header: str = "time,a,b,dev") -> Path:
    p = tmp / "log.csv"
    p.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    (tmp / "log.csv.sidecar.json").write_text(json.dumps(sidecar or SIDECAR), encoding="utf-8")
    return p


def _rows(n: int, a: str | None = None, b: str | None = None) -> list[str]:
    return [
        f"2024-01-01T{i // 60:02d}:{i % 60:02d}:00+00:00,{a if a is not None else 20 + i % 3},"
        f"{b if b is not None else 400 + i},{i % 2}"
        for i in range(n)
    ]


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_unknown_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A name that is neither built in nor a file says so and lists the built-ins."""
    err = _run(["train", "--dataset", "no-such-set", "--out", str(tmp_path / "b")], capsys)
    assert "no-such-set" in err and "uci-occupancy" in err


def test_missing_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A sidecar column absent from the CSV is named."""
    sc = json.loads(json.dumps(SIDECAR))
    sc["columns"]["humidity"] = {"role": "channel", "kind": "humidity"}
    csv = _csv(tmp_path, _rows(200), sc)
    err = _run(["train", "--dataset", str(csv), "--out", str(tmp_path / "b")], capsys)
    assert "humidity" in err


def test_non_numeric_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A column of words is a clear error naming the column."""
    csv = _csv(tmp_path, _rows(200, b="high"))
    err = _run(["train", "--dataset", str(csv), "--out", str(tmp_path / "b")], capsys)
    assert "column 'b'" in err and "non-numeric" in err


def test_all_missing_channel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A channel with no value at all is named, with the fix."""
    csv = _csv(tmp_path, _rows(200, a=""))
    err = _run(["train", "--dataset", str(csv), "--out", str(tmp_path / "b")], capsys)
    assert "'a'" in err and "no value" in err


def test_evaluate_path_that_is_not_a_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An existing directory without manifest.json is refused with the fix."""
    (tmp_path / "notes.txt").write_text("x")
    err = _run(["evaluate", str(tmp_path), "--dataset", "uci-occupancy"], capsys)
    assert "not a model bundle" in err and str(tmp_path) in err


def test_evaluate_corrupt_bundle_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A manifest that does not validate is named with the failing key."""
    (tmp_path / "manifest.json").write_text('{"format": 1}')
    err = _run(["evaluate", str(tmp_path)], capsys)
    assert "manifest.json" in err and "rebuild" in err


def test_train_out_is_a_foreign_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Training never writes over a non-bundle directory."""
    (tmp_path / "keep.txt").write_text("mine")
    err = _run(["train", "--dataset", "uci-occupancy", "--out", str(tmp_path)], capsys)
    assert "not a bundle" in err and (tmp_path / "keep.txt").read_text() == "mine"


def test_split_with_uci_and_bad_window(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """UCI has its own splits; a window that is not a multiple of 8 is refused up front."""
    err = _run(
        ["train", "--dataset", "uci-occupancy", "--split", "0.7,0.85", "--out", str(tmp_path / "b")], capsys
    )
    assert "--split" in err
    err = _run(
        ["train", "--dataset", "uci-occupancy", "--window", "30", "--out", str(tmp_path / "b")], capsys
    )
    assert "--window" in err


def test_unknown_drop_channel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--drop-channels with an unknown name lists the known channels."""
    err = _run(
        ["train", "--dataset", "uci-occupancy", "--drop-channels", "Lux", "--out", str(tmp_path / "b")],
        capsys,
    )
    assert "Lux" in err and "Light" in err


def test_subprocess_prints_no_traceback(tmp_path: Path) -> None:
    """Through the real entry point: exit code 2 and a single stderr line."""
    r = subprocess.run(
        [sys.executable, "-m", "training", "evaluate", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    assert "no such bundle directory" in r.stderr


def test_given_timezone_is_recorded_in_the_manifest(tmp_path: Path) -> None:
    """--timezone wins over the sidecar (which has none here): the bundle's manifest carries it."""
    from edge_agent.manifest import read_manifest

    csv = _csv(tmp_path, _rows(200))
    out = tmp_path / "b"
    args = ["train", "--dataset", str(csv), "--window", "8", "--epochs", "1", "--latency-runs", "5"]
    assert main([*args, "--timezone", "America/New_York", "--no-progress", "--out", str(out)]) == 0
    assert read_manifest(out).timezone == "America/New_York"


def test_head_modes_reach_the_training_record(tmp_path: Path) -> None:
    """--level-head/--setpoint-head are the TrainConfig's (recorded in training.json); classes is the default."""
    csv = _csv(tmp_path, _rows(200))
    base = [
        "train",
        "--dataset",
        str(csv),
        "--window",
        "8",
        "--epochs",
        "1",
        "--latency-runs",
        "5",
        "--no-progress",
    ]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    assert (
        main(
            [*base, "--level-head", "ordinal", "--setpoint-head", "regression", "--out", str(tmp_path / "b")]
        )
        == 0
    )
    a = json.loads((tmp_path / "a" / "training.json").read_text())["train_config"]
    b = json.loads((tmp_path / "b" / "training.json").read_text())["train_config"]
    assert (a["level_head"], a["setpoint_head"]) == ("softmax", "classes")
    assert (b["level_head"], b["setpoint_head"]) == ("ordinal", "regression")
