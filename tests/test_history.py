"""edge_agent.history + history_csv + `edge-agent export-history`: the recorder DB (real SQLite file written by
the Recorder) -> generic CSV + sidecar -> training's CSV loader: values, masks, labels, DST, bad input."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from edge_agent.cli import main as agent_main
from edge_agent.config import load_config
from edge_agent.history import load_history
from edge_agent.history_csv import write_history_csv
from tests.homelog import home_config, write_db
from training.data import WindowSampler, load_csv

BXL = ZoneInfo("Europe/Brussels")
# 2024-10-27 00:00 local (+02:00); clocks go back at 03:00 local (01:00 UTC)
T0 = dt.datetime(2024, 10, 27, 0, 0, tzinfo=BXL).timestamp()
N = 300  # 5 hours of minutes


def _rows() -> tuple[list, list, list]:
    readings = []
    for i in range(N):
        t = T0 + 60 * i
        readings.append((t, "living.motion", 1.0 if 60 <= i < 120 else 0.0))
        readings.append((t + 20, "living.illuminance", 10.0 + i))  # last reading of the step wins
        readings.append((t + 40, "living.illuminance", 20.0 + i))
        if i < 50 and i % 10 == 0:  # then silent: carried 30 min (temperature's stale limit), then missing
            readings.append((t, "living.temperature", 20.0 + i / 10))
    readings.append((T0 + 60 * 70 + 30, "living.motion", 0.0))  # the max of a step is kept for events
    changes = [
        (T0 + 10, "living.light", 0.0, "initial", False),
        (T0 + 60 * 90 + 5, "living.light", 1.0, "person", False),
        (T0 + 60 * 150, "living.light", 0.0, "automation:night", False),
        (T0 + 60 * 200, "living.light", 1.0, "person", True),
    ]
    switches = [(T0 + 60 * 250, "pause_learning", True), (T0 + 60 * 260, "pause_learning", False)]
    return readings, changes, switches


@pytest.fixture
def db(tmp_path: Path) -> Path:
    cfg_path = home_config(tmp_path)
    write_db(load_config(cfg_path), *_rows())
    return cfg_path


def test_round_trip_values_masks_labels(db: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = load_config(db)
    with caplog.at_level(logging.WARNING):
        hist = load_history(cfg.database_url)
        csv, side, _ = write_history_csv(hist, tmp_path / "h.csv")
    warnings = [r.getMessage() for r in caplog.records]
    assert any("attic.co2" in w for w in warnings)  # a channel with no reading: named, left out
    assert any("hall.fan" in w for w in warnings)  # a device with no label: named, left out
    text = csv.read_text(encoding="utf-8").splitlines()
    assert text[1].startswith("2024-10-27T00:00:00+02:00,")
    assert any(line.startswith("2024-10-27T02:30:00+02:00,") for line in text)
    assert any(line.startswith("2024-10-27T02:30:00+01:00,") for line in text)  # the repeated hour
    sc = json.loads(side.read_text(encoding="utf-8"))
    assert sc["timezone"] == "Europe/Brussels"
    assert sc["columns"]["living.light.state"]["ffill_limit_seconds"] == float("inf")
    assert sc["columns"]["living.light"]["ffill_limit_seconds"] == 0
    assert sc["columns"]["living.temperature"]["ffill_limit_seconds"] == 1800

    log = load_csv(csv)
    assert len(log) == N and log.t0 == T0 and log.step_seconds == 60
    assert log.timezone == "Europe/Brussels"
    chans = [c.name for c in log.channels]
    assert "attic.co2" not in chans and "hall.fan.state" not in chans  # never reported: no input
    assert [d.name for d in log.devices] == ["living.light"]
    col = {n: log.values[:, k] for k, n in enumerate(chans)}
    np.testing.assert_allclose(col["living.illuminance"], 20.0 + np.arange(N))
    assert col["living.motion"][70] == 1.0 and col["living.motion"].sum() == 60
    temp = col["living.temperature"]
    # last reading at row 40; carried up to 30 rows (1800 s), missing after: masked like the runtime's stale rule
    assert temp[40] == 24.0 and temp[70] == 24.0 and np.isnan(temp[71:]).all()
    ws = WindowSampler(log, 8)
    mask = ws.batch(np.array([70, 71]))[1]
    assert mask[0, chans.index("living.temperature")] == 1 and mask[1, chans.index("living.temperature")] == 0
    state = col["living.light.state"]
    assert (state[:90] == 0).all() and (state[90:150] == 1).all() and (state[150:200] == 0).all()
    np.testing.assert_array_equal(log.labels[:, 0], hist.labels.labels[:, 0])  # never carried
    lab = log.labels[:, 0]
    assert (lab[87:90] == 1).all()  # rule a: the 3 rows before the person's change
    assert (lab[:87] == 0).all()  # rule b: the initial state, also while nobody is there (rows 0..59)
    assert (lab[90:150] == 1).all()  # rule b: what the person left, also after the room emptied (row 134)
    assert np.isnan(lab[150:]).all()  # automation's state, then a paused change's state
    assert int(hist.labels.events[0]) == 1


def test_naive_labels_and_no_state_inputs(db: Path, tmp_path: Path) -> None:
    hist = load_history(load_config(db).database_url, labels="naive")
    assert not any(c.kind == "device_state" for c in hist.channels)
    assert int(hist.labels.events[0]) == 1  # the person's changes are still counted
    lab = hist.targets[:, 0]
    assert (lab[:90] == 0).all() and (lab[90:150] == 1).all() and (lab[200:] == 1).all()


def test_span_and_step(db: Path) -> None:
    url = load_config(db).database_url
    hist = load_history(url, since=T0 + 3600, until=T0 + 7200, step=300)
    assert len(hist) == 12 and hist.times[0] == T0 + 3600
    k = [c.name for c in hist.channels].index("living.motion")
    assert hist.values[0, k] == 1.0  # event kind: the max of the five minutes


def test_export_history_cli(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out" / "h.csv"
    out.parent.mkdir()
    code = agent_main(["export-history", "--config", str(db), "--out", str(out), "--since", "2024-10-27"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "wrote" in captured.out and "living.light 1 events" in captured.out
    assert "attic.co2" in captured.err and captured.err.count("\n") == 2  # two warning lines, no traceback
    assert load_csv(out).values.shape == (N, 4)
    assert sorted(p.name for p in out.parent.iterdir()) == ["h.csv", "h.csv.sidecar.json"]


def _one_line_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = agent_main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("edge-agent: ") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_input_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg_path = home_config(tmp_path)
    out = str(tmp_path / "h.csv")
    err = _one_line_exit_2(["export-history", "--config", str(cfg_path), "--out", out], capsys)
    assert "no database" in err
    cfg = load_config(cfg_path)
    write_db(cfg, [(T0, "living.motion", 1.0)], catalog=False)
    err = _one_line_exit_2(["export-history", "--config", str(cfg_path), "--out", out], capsys)
    assert "run the agent at least once" in err
    write_db(cfg, [], catalog=True)
    err = _one_line_exit_2(
        ["export-history", "--config", str(cfg_path), "--out", out, "--since", "2030-01-01"], capsys
    )
    assert "no readings" in err
    err = _one_line_exit_2(
        ["export-history", "--config", str(cfg_path), "--out", out, "--since", "soon"], capsys
    )
    assert "--since" in err
    db_file = Path(cfg.database_url.removeprefix("sqlite:///"))
    for p in db_file.parent.glob("edge-agent.db*"):
        p.unlink()
    db_file.write_bytes(b"this is not a database" * 100)
    err = _one_line_exit_2(["export-history", "--config", str(cfg_path), "--out", out], capsys)
    assert "cannot read database" in err
    assert not Path(out).exists()


FULL_DISK = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))  # the database is read, the CSV is larger
from edge_agent.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_write_error_removes_the_temporary_file(tmp_path: Path) -> None:
    """A write that fails half-way (file size limit: as a full disk) leaves nothing behind, says so in one line."""
    db = home_config(tmp_path)
    rows = [
        (T0 + 60 * i, ch, float(i)) for i in range(4000) for ch in ("living.motion", "living.illuminance")
    ]
    write_db(load_config(db), rows, [(T0, "living.light", 0.0, "initial", False)])
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    args = ["export-history", "--config", str(db), "--out", str(out / "h.csv")]
    res = subprocess.run([sys.executable, "-c", FULL_DISK, *args], capture_output=True, text=True, env=env)
    assert res.returncode == 2, res.stderr
    err = res.stderr.strip().splitlines()[-1]
    assert err.startswith("edge-agent: cannot write") and "free space" in err
    assert "Traceback" not in res.stderr
    assert list(out.iterdir()) == []


def test_pause_switch_and_quiet_span_from_the_database(tmp_path: Path) -> None:
    """pause_learning (switches table) and a configured quiet span (local time) leave their rows unlabelled."""
    cfg_path = home_config(tmp_path, learning={"quiet_spans": [{"start": "01:00", "end": "01:30"}]})
    readings = [(T0 + 60 * i, "living.motion", 1.0) for i in range(N)]  # someone there all along
    changes = [(T0, "living.light", 0.0, "initial", False)]
    switches = [(T0 + 60 * 200, "pause_learning", True), (T0 + 60 * 210, "pause_learning", False)]
    write_db(load_config(cfg_path), readings, changes, switches)
    hist = load_history(load_config(cfg_path).database_url)
    unlabelled = np.flatnonzero(np.isnan(hist.targets[:, 0])).tolist()
    # 00:00 local + 60..89 min = the quiet span; rows 200..209 = the pause
    assert unlabelled == list(range(60, 90)) + list(range(200, 210))


def test_agent_state_is_a_label_only_while_the_room_is_occupied(tmp_path: Path) -> None:
    """Presence from the recorded motion channel: the agent's state counts while someone is there to object."""
    cfg_path = home_config(tmp_path)
    readings = [(T0 + 60 * i, "living.motion", 1.0 if i < 30 else 0.0) for i in range(120)]
    changes = [
        (T0, "living.light", 0.0, "initial", False),
        (T0 + 60 * 10, "living.light", 1.0, "agent", False),
    ]
    write_db(load_config(cfg_path), readings, changes)
    lab = load_history(load_config(cfg_path).database_url).targets[:, 0]
    # last motion in row 29: occupied while a row ends within presence_seconds (900 s) of it, up to row 43
    assert (lab[:10] == 0).all() and (lab[10:44] == 1).all() and np.isnan(lab[44:]).all()
