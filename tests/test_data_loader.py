"""The generic CSV loader: DST, duplicates, out-of-order rows, gaps, bad cells, sidecar errors, memory bound."""

from __future__ import annotations

import json
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from training.data import DataError, hour_and_weekday, load_csv, load_dataset
from training.data.csvload import bytes_per_row

BXL = ZoneInfo("Europe/Brussels")
STEP = 900  # 15 min


def _sidecar(path: Path, **over) -> Path:
    sc = {
        "timestamp_column": "time",
        "step_seconds": STEP,
        "ffill_limit_seconds": 2 * STEP,
        "columns": {
            "temp": {"role": "channel", "kind": "temperature", "unit": "°C"},
            "lux": {"role": "channel", "kind": "illuminance", "unit": "lux"},
            "note": {"role": "ignore"},
            "light": {"role": "device", "device_kind": "binary"},
        },
    }
    sc.update(over)
    out = path.with_name(path.name + ".sidecar.json")
    out.write_text(json.dumps(sc), encoding="utf-8")
    return out


def _write(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    lines = ["time,temp,lux,note,light"] + [f"{t},{a},{b},x,{c}" for t, a, b, c in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _grid(start_utc: datetime, n: int) -> list[datetime]:
    return [start_utc + timedelta(seconds=STEP * i) for i in range(n)]


def _fall_back_rows(fmt) -> list[tuple[str, str, str, str]]:
    """25 steps around 2024-10-27 03:00 CEST -> 02:00 CET with a gap, a duplicate, a swap and a bad cell."""
    times = _grid(datetime(2024, 10, 26, 22, 0, tzinfo=UTC), 25)
    rows = [(fmt(t), str(i), str(100 + i), str(i % 2)) for i, t in enumerate(times)]
    rows[18] = (rows[18][0], "err", rows[18][2], rows[18][3])  # non-numeric cell
    rows = rows[:4] + rows[6:]  # hole: steps 4 and 5 have no row (within the 2-step fill limit)
    rows.insert(5, rows[4])  # duplicate of step 6 (now at index 4)
    i20 = next(k for k, r in enumerate(rows) if r[1] == "20")
    rows[i20], rows[i20 + 1] = rows[i20 + 1], rows[i20]  # out of order
    return rows


@pytest.mark.parametrize("mode", ["naive", "offset"])
def test_fall_back_duplicates_gap_bad_cell(tmp_path, mode):
    if mode == "naive":
        fmt = lambda t: t.astimezone(BXL).strftime("%Y-%m-%d %H:%M:%S")  # noqa: E731
    else:
        fmt = lambda t: t.astimezone(BXL).isoformat()  # noqa: E731
    csv = _write(tmp_path / "fall.csv", _fall_back_rows(fmt))
    _sidecar(csv)
    log = load_csv(csv, timezone="Europe/Brussels" if mode == "naive" else None)
    assert log.t0 == datetime(2024, 10, 26, 22, 0, tzinfo=UTC).timestamp() and len(log) == 25
    temp = log.values[:, 0]
    expect = np.arange(25, dtype=np.float32)
    expect[18] = 17  # the bad cell is masked, then step 17 is carried forward (within the limit)
    expect[4] = 3  # the last reading before the gap (step 3) carries 2 steps: 4 and 5
    expect[5] = 3
    np.testing.assert_array_equal(temp, expect)
    np.testing.assert_array_equal(
        log.values[:, 1], np.where(np.isin(np.arange(25), [4, 5]), 103, 100 + np.arange(25))
    )
    st = log.stats
    assert st["rows_in"] == 24 and st["duplicates"] == 1 and st["out_of_order"] == 1
    assert st["non_numeric"] == 1 and st["non_numeric.temp"] == 1 and st["bad_timestamps"] == 0
    assert st["gaps"] == 0 and st["masked_rows"] == 0  # a 2-step hole is within the 2-step fill limit
    assert st["ambiguous_times"] == (8 if mode == "naive" else 0)
    # the repeated hour is neither shifted nor duplicated: local 02:00 occurs at steps 8 (CEST) and 12 (CET)
    hour, _ = hour_and_weekday(log)
    assert hour[8] == 2.0 and hour[12] == 2.0 and hour[7] == pytest.approx(1.75) and hour[16] == 3.0
    assert log.utc_offset_seconds[8] == 7200 and log.utc_offset_seconds[12] == 3600


def test_spring_forward_gap_and_nonexistent(tmp_path):
    times = _grid(datetime(2024, 3, 31, 0, 0, tzinfo=UTC), 12)  # 01:00 CET .. 03:45 CEST
    fmt = lambda t: t.astimezone(BXL).strftime("%Y-%m-%d %H:%M")  # noqa: E731
    rows = [(fmt(t), str(i), "5", "1") for i, t in enumerate(times)]
    rows = rows[:7] + rows[10:]  # steps 7,8,9 missing: 1 step beyond the 2-step fill limit
    rows.insert(3, ("2024-03-31 02:30", "99", "5", "1"))  # does not exist in Brussels: dropped, counted
    csv = _write(tmp_path / "spring.csv", rows)
    _sidecar(csv, timezone="Europe/Brussels")
    log = load_csv(csv)
    assert len(log) == 12 and log.stats["nonexistent_times"] == 1 and log.stats["rows_in"] == 10
    assert log.stats["gaps"] == 1 and log.stats["gap_rows"] == 1 and log.stats["masked_rows"] == 1
    assert np.isnan(log.values[9]).all() and np.isnan(log.labels[9]).all() and log.values[8, 0] == 6
    assert 99 not in log.values[:, 0]
    hour, _ = hour_and_weekday(log)
    assert hour[3] == pytest.approx(1.75) and hour[4] == 3.0  # 01:45 CET is followed by 03:00 CEST


def _bad(tmp_path, rows=None, sidecar_over=None, header=None):
    csv = tmp_path / "bad.csv"
    rows = rows or [(f"2024-01-01 00:{m:02d}", "1", "2", "0") for m in range(0, 60, 15)]
    _write(csv, rows)
    if header is not None:
        text = csv.read_text().splitlines()
        csv.write_text("\n".join([header, *text[1:]]) + "\n")
    _sidecar(csv, **(sidecar_over or {}))
    return csv


@pytest.mark.parametrize(
    "case,match",
    [
        ("role", r"column 'lux' key 'role'.*'sensor'"),
        ("unknown_sidecar_col", r"column 'pressure' is not in the CSV header"),
        ("unknown_csv_col", r"column 'extra' is in the CSV but not in the sidecar"),
        ("no_time", r"timestamp column 'time'.*not in the CSV header"),
        ("mostly_text", r"column 'lux' is mostly non-numeric.*line 2"),
        ("all_missing", r"channel column 'lux' has no value"),
        ("binary", r"device column 'light' line 3: value 2 is not 0 or 1"),
        ("zone", r"unknown time zone 'Mars/Olympus'"),
        ("mixed", r"line 3.*has a UTC offset"),
        ("bad_times", r"not ISO 8601 \(first: line 2, 'yesterday'\)"),
    ],
)
def test_bad_input_one_line_errors(tmp_path, case, match):
    cols = json.loads(_sidecar(_bad(tmp_path)).read_text())["columns"]
    rows = None
    header = None
    over: dict = {}
    if case == "role":
        over = {"columns": {**cols, "lux": {"role": "sensor"}}}
    elif case == "unknown_sidecar_col":
        over = {"columns": {**cols, "pressure": {"role": "channel"}}}
    elif case == "unknown_csv_col":
        header = "time,temp,lux,extra,light"
    elif case == "no_time":
        header = "when,temp,lux,note,light"
        over = {}
    elif case == "mostly_text":
        rows = [(f"2024-01-01 00:{m:02d}", "1", "n/a?" if m < 45 else "3", "0") for m in range(0, 60, 15)]
    elif case == "all_missing":
        rows = [(f"2024-01-01 00:{m:02d}", "1", "", "0") for m in range(0, 60, 15)]
    elif case == "binary":
        rows = [(f"2024-01-01 00:{m:02d}", "1", "2", "2" if m == 15 else "0") for m in range(0, 60, 15)]
    elif case == "zone":
        over = {"timezone": "Mars/Olympus"}
    elif case == "mixed":
        rows = [("2024-01-01 00:00", "1", "2", "0"), ("2024-01-01T00:15+01:00", "1", "2", "0")]
    elif case == "bad_times":
        rows = [("yesterday", "1", "2", "0"), ("today", "1", "2", "0"), ("2024-01-01 00:00", "1", "2", "0")]
    csv = _bad(tmp_path, rows, over, header)
    with pytest.raises(DataError, match=match) as err:
        load_dataset(str(csv))
    assert "\n" not in str(err.value) and len(str(err.value)) < 400


def test_missing_sidecar_and_file(tmp_path):
    csv = _write(tmp_path / "lonely.csv", [("2024-01-01 00:00", "1", "2", "0")])
    with pytest.raises(DataError, match=r"lonely.csv: no sidecar found.*--sidecar"):
        load_csv(csv)
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset(str(tmp_path / "nope.csv"))


def _big_csv(path: Path, n: int, k: int) -> Path:
    t = 1_700_000_000 + 60 * np.arange(n)
    rng = np.random.default_rng(1)
    vals = rng.normal(20, 3, size=(n, k)).round(2)
    stamps = np.datetime_as_string(t.astype("datetime64[s]"), unit="s")
    body = "\n".join(
        f"{s}Z," + ",".join(map(str, v)) + ",1" for s, v in zip(stamps, vals.tolist(), strict=True)
    )
    path.write_text("time," + ",".join(f"c{i}" for i in range(k)) + ",dev\n" + body + "\n")
    cols = {f"c{i}": {"role": "channel"} for i in range(k)} | {"dev": {"role": "device"}}
    path.with_name(path.name + ".sidecar.json").write_text(json.dumps({"step_seconds": 60, "columns": cols}))
    return path


def _peak(path: Path) -> int:
    tracemalloc.start()
    log = load_csv(path, chunksize=5_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert log.stats["rows"] > 0
    return peak


def test_memory_bounded_per_row(tmp_path):
    k = 6
    small, big = _big_csv(tmp_path / "s.csv", 10_000, k), _big_csv(tmp_path / "b.csv", 60_000, k)
    _peak(small)  # warm imports and caches
    growth = _peak(big) - _peak(small)
    bound = bytes_per_row(k + 1) * 50_000
    assert growth <= bound, f"peak grew {growth} B for 50k more rows, documented bound {bound} B"


def test_device_words_and_sidecar_yaml(tmp_path):
    csv = tmp_path / "words.csv"
    csv.write_text("time,t,light\n2024-01-01T00:00Z,1,ON\n2024-01-01T00:01Z,2,off\n2024-01-01T00:02Z,3,1\n")
    sc = tmp_path / "words.sidecar.yaml"
    sc.write_text("columns:\n  t: {role: channel}\n  light: {role: device}\n")
    log = load_csv(csv)  # found by stem; on/off/true/false accepted for devices
    assert log.labels[:, 0].tolist() == [1.0, 0.0, 1.0] and log.utc_offset_seconds.tolist() == [0, 0, 0]
    sc.write_text("columns: [t, light]\n")
    with pytest.raises(DataError, match=r"sidecar .*words.sidecar.yaml: columns: .*fix that key"):
        load_csv(csv)


def test_cli_exits_2_with_one_line(tmp_path, capsys):
    from training.cli import main

    csv = _bad(tmp_path)
    sc = csv.with_name(csv.name + ".sidecar.json")
    sc.write_text(sc.read_text().replace('"ignore"', '"sensor"'))
    assert main(["train", "--dataset", str(csv), "--out", str(tmp_path / "b"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: sidecar") and "'note'" in err and "role" in err and "\n" not in err
    assert (
        main(
            ["train", "--dataset", "uci-occupancy", "--data-dir", str(tmp_path), "--out", str(tmp_path / "b")]
        )
        == 2
    )
    assert "EDGE_AGENT_UCI_DIR" in capsys.readouterr().err
