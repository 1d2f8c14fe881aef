"""Issue 22's smaller rules: threshold rules (f1, accuracy, balanced, cost), labels never forward-filled,
descriptive sidecar keys accepted (unknown roles still refused, the key quoted), electrical kinds, `--help`
with defaults, the step budget, progress lines when not on a terminal, split files that overlap."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_agent.kinds import KIND_NAMES, kind_spec
from training.cli import build_parser, main
from training.data import DataError, load_csv
from training.splitfiles import canonical_dataset, load_file_splits, same_dataset
from training.thresholds import choose_threshold, parse_rule
from training.train import TrainConfig, step_budget


def test_threshold_rules() -> None:
    """f1 keeps a rare device's recall; a cost rule moves the threshold the way its costs say."""
    rng = np.random.default_rng(0)
    y = (rng.random(4000) < 0.05).astype(float)  # rare ON
    p = np.clip(0.35 * y + rng.normal(0.3, 0.12, y.size), 0, 1)
    t_f1, _ = choose_threshold(p, y, "f1")
    t_acc, _ = choose_threshold(p, y, "accuracy")
    t_bal, _ = choose_threshold(p, y, "balanced")
    assert t_bal < t_f1 <= t_acc  # balanced accuracy goes lowest (lights on in empty rooms)
    t_cheap_on, _ = choose_threshold(p, y, "cost:1/10")  # a missed ON is 10x worse: lower threshold
    t_dear_on, _ = choose_threshold(p, y, "cost:10/1")  # a wrong ON is 10x worse: higher threshold
    assert t_cheap_on < t_acc < t_dear_on
    assert choose_threshold(p, y, "cost:1/1")[0] == t_acc  # equal costs = accuracy
    assert parse_rule("balanced_accuracy") == parse_rule("balanced")
    assert parse_rule("cost:1/3").name == "cost:1/3" and parse_rule("COST:2/0.5").cost_off == 0.5
    for bad in ("cost:1", "cost:0/1", "cost:a/b", "median"):
        with pytest.raises(ValueError, match="threshold rule|cost"):
            parse_rule(bad)


def test_bad_rule_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ex:
        build_parser().parse_args(["evaluate", "b", "--threshold-rule", "cost:1"])
    assert ex.value.code == 2 and "cost:ON/OFF" in capsys.readouterr().err


def _csv(tmp: Path, name: str, rows: list[str], **sc: object) -> Path:
    path = tmp / name
    path.write_text("time,power,light\n" + "\n".join(rows) + "\n", encoding="utf-8")
    side = {
        "step_seconds": 60,
        "ffill_limit_seconds": 600,
        "columns": {
            "power": {"role": "channel", "kind": "power", "unit": "W"},
            "light": {"role": "device", "device_kind": "binary", "ffill_limit_seconds": 600},
        },
    }
    side.update(sc)
    (tmp / (name + ".sidecar.json")).write_text(json.dumps(side), encoding="utf-8")
    return path


def test_labels_are_never_forward_filled(tmp_path: Path) -> None:
    """Empty label cells stay unknown even under a 10-minute fill limit; the input beside them is carried."""
    rows = [f"2024-01-01T00:0{i}:00Z,{100 + i},{'' if 2 <= i <= 5 else i % 2}" for i in range(8)]
    rows[3] = "2024-01-01T00:03:00Z,,"  # input empty too: carried from the row before
    log = load_csv(_csv(tmp_path, "h.csv", rows))
    lab = log.labels[:, 0]
    assert np.isnan(lab[2:6]).all() and lab[:2].tolist() == [0, 1] and lab[6:].tolist() == [0, 1]
    assert log.values[3, 0] == 102  # the channel is carried within its limit
    assert log.stats["unlabeled_rows"] == 4


def test_descriptive_sidecar_keys_and_errors_that_quote_the_key(tmp_path: Path) -> None:
    rows = [f"2024-01-01T00:0{i}:00Z,{i},{i % 2}" for i in range(4)]
    ok = _csv(tmp_path, "a.csv", rows, description="whole-house meter", source="me")
    side = json.loads((tmp_path / "a.csv.sidecar.json").read_text())
    side["columns"]["power"].update(description="mains", unit="watts (W)")
    (tmp_path / "a.csv.sidecar.json").write_text(json.dumps(side))
    assert load_csv(ok).channels[0].unit == "watts (W)"
    side["columns"]["power"]["role"] = "sensor"  # unknown role: still refused
    side["columns"]["light"]["colour"] = "red" * 200  # a long value is never printed whole
    (tmp_path / "a.csv.sidecar.json").write_text(json.dumps(side))
    with pytest.raises(DataError) as e:
        load_csv(ok)
    msg = str(e.value)
    assert "column 'power' key 'role'" in msg and "'sensor'" in msg and "redred" not in msg
    assert len(msg) < 300


def test_electrical_and_environmental_kinds() -> None:
    for k in ("voltage", "current", "energy", "power_factor", "frequency", "pm25", "noise"):
        assert k in KIND_NAMES
    assert KIND_NAMES.index("device_state") < KIND_NAMES.index(
        "voltage"
    )  # appended: old bundles keep meaning
    assert kind_spec("voltage").bounds[1] >= 480 and kind_spec("current").unit == "A"


def test_help_shows_defaults() -> None:
    sub = build_parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    text = " ".join(sub.choices["train"].format_help().split())  # type: ignore[attr-defined]
    assert "(default: 15)" in text and "first day of validation" in text.replace("FIRST", "first")
    assert "SAFETY stop" in text and "--threshold-rule" in text


def test_step_budget_sets_the_schedule() -> None:
    assert step_budget(TrainConfig(epochs=3), 100) == (300, 3)
    assert step_budget(TrainConfig(epochs=3, steps=250), 100) == (250, 3)
    assert step_budget(TrainConfig(epochs=3, steps=40), 100) == (40, 1)


def test_split_files_in_time_order_and_spellings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a = _csv(tmp_path, "a.csv", [f"2024-01-01T00:{i:02d}:00Z,{i},{i % 2}" for i in range(40)])
    b = _csv(tmp_path, "b.csv", [f"2024-01-01T00:{i:02d}:00Z,{i},{i % 2}" for i in range(30, 50)])
    with pytest.raises(
        DataError, match=r"val rows .*00:30:00.* overlap or precede the train rows .*00:00:00"
    ):
        load_file_splits(str(a), str(b), None, sidecar=None, timezone=None, drop_channels=[])
    monkeypatch.chdir(tmp_path)
    assert same_dataset("csv:a.csv", str(a)) and same_dataset("./a.csv", f"csv:{a}")
    assert not same_dataset("a.csv", "b.csv")
    assert (
        canonical_dataset(f"csv:{a}") == str(a.resolve())
        and canonical_dataset("uci-occupancy") == "uci-occupancy"
    )
    code = main(
        [
            "train",
            "--dataset",
            str(a),
            "--val-dataset",
            str(b),
            "--split",
            "0.5,0.7",
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert code == 2 and "are the split; drop --split" in capsys.readouterr().err


def test_progress_lines_when_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    from training.progress import TrainProgress

    with TrainProgress(10, None, enabled=True) as p:  # pytest's stderr is not a terminal
        for _ in range(5):
            p.step(loss=0.5, windows=64, epoch=1)
        p.epoch_line(1, 2, 0.5, 0.4, 0.45)
    err = capsys.readouterr().err
    assert "epoch 1/2 step 5/10 train 0.5000 val full 0.4000 coarse 0.4500" in err
    with TrainProgress(10, None, enabled=False) as p:
        p.epoch_line(1, 2, 0.5, 0.4, 0.45)
    assert capsys.readouterr().err == ""
