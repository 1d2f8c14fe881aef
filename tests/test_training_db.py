"""`python -m training train --dataset db:URL`: the agent's own log (real SQLite file written by the Recorder)
-> export -> CSV loader -> train -> bundle with held-out agreement per device; bad input is one line, exit 2."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from edge_agent.inference import verify_bundle
from tests.homelog import generated_log, home_config
from training.cli import main
from training.data.dblog import load_db
from training.data.windows import WindowSampler
from training.sensorlog import ChannelInfo, DeviceInfo, SensorLog
from training.train import DeviceHead, epoch_sample, transitions

FAST = ["--epochs", "2", "--max-windows-per-epoch", "384", "--window", "32", "--d", "16", "--batch", "64"]
FAST += ["--latency-runs", "10", "--no-progress"]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, int]]:
    tmp = tmp_path_factory.mktemp("home")
    return generated_log(home_config(tmp), days=7, seed=1)


def _bad(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err
    last = err.splitlines()[-1]  # warnings (e.g. a channel without readings) may come first, one line each
    assert last.startswith("error: ")
    return last


def test_train_on_the_agents_log(
    home: tuple[str, dict[str, int]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, counts = home
    out = tmp_path / "bundle"
    with caplog.at_level(logging.WARNING):
        code = main(["train", "--dataset", f"db:{url}", "--holdout-days", "2", *FAST, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "wrote" in captured.out
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    # hall.fan never changed: left out with the readiness line; attic.co2 never reported: left out, named
    assert any("not enough data: 0 events for device hall.fan, need 10" in w for w in warnings), warnings
    assert any("attic.co2" in w for w in warnings)
    man = verify_bundle(out)  # the runtime's verifier
    assert [d.name for d in man.devices] == ["living.light"]
    names = [c.name for c in man.channels]
    assert "living.light.state" in names and "attic.co2" not in names
    assert man.channels[names.index("living.light.state")].kind == "device_state"
    m = man.metrics
    assert m["holdout_days"] == 2.0
    assert 0 < m["label_events.living.light"] < counts["person_changes"]  # the training span's share
    assert m["label_events.hall.fan"] == 0
    assert m["holdout_labels.living.light"] > 100 and m["holdout_events.living.light"] >= 3
    assert 0.5 <= m["holdout_agreement.living.light"] <= 1.0
    assert 0.0 <= m["holdout_event_agreement.living.light"] <= 1.0
    assert m["train_transition_windows"] > 0
    meta = json.loads((out / "training.json").read_text(encoding="utf-8"))
    assert meta["data"]["holdout_days"] == 2 and meta["data"]["labels"] == "preference"


def test_naive_has_no_state_inputs_and_is_judged_by_the_person(home: tuple[str, dict[str, int]]) -> None:
    """Naive labels: the state in effect, no state inputs; the held-out split still holds the preference."""
    url, _ = home
    pref = load_db(url, holdout_days=2, window=32)
    naive = load_db(url, holdout_days=2, window=32, labels="naive")
    assert "living.light.state" not in [c.name for c in naive.parts["train"].channels]
    assert "living.light.state" in [c.name for c in pref.parts["train"].channels]
    np.testing.assert_array_equal(naive.parts["test"].labels, pref.parts["test"].labels)
    # naive labels are the state in effect; preference labels anticipate the person's change (rule a)
    p, q = pref.parts["train"].labels, naive.parts["train"].labels
    assert (~np.isnan(p) & (p != q)).any() and not np.isnan(q).any()
    assert naive.label_events == pref.label_events
    assert len(pref.holdout) - pref.context == len(pref.parts["test"]) and pref.context == 31


def test_not_enough_data(
    home: tuple[str, dict[str, int]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = home
    out = tmp_path / "b"
    err = _bad(["train", "--dataset", f"db:{url}", "--min-labels", "1000", *FAST, "--out", str(out)], capsys)
    assert "not enough data: " in err and "events for device living.light, need 1000" in err
    assert "0 events for device hall.fan, need 1000" in err
    assert not out.exists()


def test_bad_db_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "b")
    corrupt = tmp_path / "agent.db"
    corrupt.write_bytes(b"\x00garbage, not SQLite" * 500)
    err = _bad(["train", "--dataset", f"db:sqlite:///{corrupt}", *FAST, "--out", out], capsys)
    assert "cannot read database" in err and str(corrupt) in err
    err = _bad(["train", "--dataset", f"db:sqlite:///{tmp_path / 'none.db'}", *FAST, "--out", out], capsys)
    assert "no database at" in err
    assert not (tmp_path / "none.db").exists()  # never created by reading
    csv = tmp_path / "x.csv"
    csv.write_text("time,a\n", encoding="utf-8")
    err = _bad(["train", "--dataset", str(csv), "--holdout-days", "2", "--out", out], capsys)
    assert "--holdout-days" in err and "db:" in err


def test_short_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A day of log cannot hold out two days: one line."""
    url, _ = generated_log(home_config(tmp_path), days=1, seed=2)
    err = _bad(
        ["train", "--dataset", f"db:{url}", "--holdout-days", "2", *FAST, "--out", str(tmp_path / "b")],
        capsys,
    )
    assert "cannot hold out 2 days" in err


def test_transition_windows_are_oversampled() -> None:
    """Windows whose label differs from the device's state input make ~30 % of an epoch."""
    n = 2000
    state = np.zeros(n, np.float32)
    state[1000:] = 1
    labels = state.copy()
    labels[970:1000] = 1  # the person's change follows: 30 transition rows
    log = SensorLog(
        "t",
        60.0,
        0.0,
        np.stack([np.random.default_rng(0).normal(size=n).astype(np.float32), state], axis=1),
        labels[:, None],
        [ChannelInfo("a", "", "generic"), ChannelInfo("lamp.state", "", "device_state")],
        [DeviceInfo("lamp")],
    )
    sampler = WindowSampler(log, 8)
    heads = [DeviceHead("lamp", "binary")]
    moves = transitions(sampler, log, heads)
    assert moves.sum() == 30
    ends = epoch_sample(sampler, heads, 5000, np.random.default_rng(0), moves, 0.3)
    share = np.isin(ends, sampler.ends[moves]).mean()
    assert 0.2 < share < 0.4
    plain = epoch_sample(sampler, heads, 5000, np.random.default_rng(0))
    assert np.isin(plain, sampler.ends[moves]).mean() < 0.05


def test_history_days_reads_only_the_last_days(home: tuple[str, dict[str, int]]) -> None:
    url, _ = home
    db = load_db(url, history_days=3, holdout_days=1, window=32, min_labels=0)
    rows = sum(len(db.parts[k]) for k in ("train", "val", "test"))
    assert rows == 3 * 1440
    assert len(db.parts["test"]) == 1440
    assert (
        db.label_events["living.light"] < load_db(url, holdout_days=1, window=32).label_events["living.light"]
    )
