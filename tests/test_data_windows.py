"""UCI loading, chronological splits, calendar features and lazy windows (training.data)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.data import (
    DataError,
    WindowSampler,
    add_calendar_channels,
    channel_moments,
    coarsen_time,
    hour_and_weekday,
    load_dataset,
    normalize,
    split_log,
)
from training.sensorlog import ChannelInfo, DeviceInfo, SensorLog


@pytest.fixture(scope="module")
def uci() -> dict[str, SensorLog]:
    return load_dataset("uci-occupancy")


def test_uci_shapes_and_metadata(uci):
    assert set(uci) == {"train", "test", "test2"}
    # published row counts; the 60 s as-of grid maps each ~1/min reading (with :59 jitter) to its own step
    assert {k: len(v) for k, v in uci.items()} == {"train": 8143, "test": 2665, "test2": 9752}
    log = uci["train"]
    assert [c.name for c in log.channels] == ["Temperature", "Humidity", "Light", "CO2", "HumidityRatio"]
    assert [c.kind for c in log.channels] == [
        "temperature",
        "humidity",
        "illuminance",
        "co2",
        "humidity_ratio",
    ]
    assert [d.name for d in log.devices] == ["Occupancy"] and log.devices[0].kind == "binary"
    assert log.values.dtype == np.float32 and log.values.shape == (8143, 5) and log.labels.shape == (8143, 1)
    assert log.stats["masked_rows"] == 0 and log.stats["gaps"] == 0
    # first row "2015-02-04 17:51:00" Brussels (UTC+1) = 16:51 UTC; the second, 17:51:59, lands on 17:52
    assert log.t0 == 1423068660.0 and log.step_seconds == 60.0
    assert log.values[0, 0] == pytest.approx(23.18) and log.values[1, 0] == pytest.approx(23.15)
    assert set(np.unique(log.labels)) == {0.0, 1.0}


def test_uci_errors(tmp_path, uci):
    with pytest.raises(DataError, match="datatraining.txt"):
        load_dataset("uci-occupancy", data_dir=tmp_path)
    with pytest.raises(DataError, match="uci-occupancy"):
        load_dataset("no-such-dataset")
    with pytest.raises(DataError, match="'Lux'.*known: Temperature"):
        load_dataset("uci-occupancy", drop_channels=["Lux"])
    nolight = load_dataset("uci-occupancy", drop_channels=["Light"])
    assert [c.name for c in nolight["test2"].channels] == ["Temperature", "Humidity", "CO2", "HumidityRatio"]
    np.testing.assert_array_equal(nolight["test2"].values[:, 2], uci["test2"].values[:, 3])


def test_calendar(uci):
    log = uci["train"]
    hour, wd = hour_and_weekday(log)
    assert hour[0] == pytest.approx(17 + 51 / 60) and wd[0] == 2  # Wednesday 2015-02-04, local time
    cal = add_calendar_channels(log, ("calendar.tod_sin", "calendar.tod_cos", "calendar.dow_sin"))
    assert [c.name for c in cal.channels[-3:]] == ["calendar.tod_sin", "calendar.tod_cos", "calendar.dow_sin"]
    assert cal.channels[-1].kind == "calendar" and cal.values.shape == (len(log), 8)
    for i in (0, 500, 4000):
        assert cal.values[i, 5] == pytest.approx(math.sin(2 * math.pi * hour[i] / 24), abs=1e-6)
        assert cal.values[i, 7] == pytest.approx(math.sin(2 * math.pi * int(wd[i]) / 7), abs=1e-6)
    assert add_calendar_channels(cal, ("calendar.tod_sin",)) is cal


def test_split_fractions_and_dates(uci):
    log = uci["test2"]
    parts = split_log(log, None)
    n = len(log)
    assert [len(p) for p in parts.values()] == [
        round(0.7 * n),
        round(0.85 * n) - round(0.7 * n),
        n - round(0.85 * n),
    ]
    np.testing.assert_array_equal(parts["val"].values[0], log.values[round(0.7 * n)])
    assert parts["test"].t0 == log.t0 + round(0.85 * n) * 60
    # dates in local time: test2 spans 2015-02-11 14:48 .. 2015-02-18 09:19 (Brussels)
    by_date = split_log(log, "2015-02-14,2015-02-16")
    hour, _ = hour_and_weekday(by_date["val"])
    assert hour[0] == 0.0 and len(by_date["val"]) == 2 * 24 * 60
    assert len(by_date["train"]) + len(by_date["val"]) + len(by_date["test"]) == n
    for bad, msg in [
        ("2014-01-01,2014-02-01", "empty part"),
        ("0.9,0.5", "0 < A < B < 1"),
        ("soon,later", "not dates"),
        ("0.5", "two boundaries"),
    ]:
        with pytest.raises(DataError, match=msg):
            split_log(log, bad)


def _toy_log() -> SensorLog:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(40, 3)).astype(np.float32)
    values[10:13, 0] = np.nan  # a hole inside windows: forward-filled while live
    values[20:40, 1] = np.nan  # channel 1 dies at row 20: masked once its newest step is missing
    values[:6, 2] = np.nan  # channel 2 starts late: leading NaNs back-filled
    labels = (rng.random((40, 2)) > 0.5).astype(np.float32)
    labels[15, :] = np.nan  # unknown label: not a window end
    return SensorLog(
        "toy",
        60.0,
        0.0,
        values,
        labels,
        [ChannelInfo(f"c{i}") for i in range(3)],
        [DeviceInfo("a"), DeviceInfo("b")],
    )


def test_window_sampler_matches_direct_slice():
    log = _toy_log()
    s = WindowSampler(log, 8)
    assert s.ends.dtype == np.int64 and s.ends[0] == 7 and 15 not in s.ends and s.ends[-1] == 39
    x, mask, lab = s.batch(s.ends)
    assert x.shape == (len(s), 3, 8) and mask.shape == (len(s), 3) and lab.shape == (len(s), 2)
    assert x.dtype == mask.dtype == lab.dtype == np.float32
    for b, e in enumerate(s.ends):
        direct = log.values[e - 7 : e + 1].T  # [C, T]
        for c in range(3):
            live = not np.isnan(direct[c, -1])
            assert mask[b, c] == float(live)
            if not live:
                assert (x[b, c] == 0).all()
                continue
            ref = direct[c].copy()
            ok = ~np.isnan(ref)
            idx = np.where(ok, np.arange(8), -1)
            idx = np.maximum.accumulate(idx)
            idx[idx < 0] = np.argmax(ok)
            np.testing.assert_array_equal(x[b, c], ref[idx])
        np.testing.assert_array_equal(lab[b], log.labels[e])
    assert not np.isnan(x).any()
    # with a longer stale limit the dead channel stays live (filled) for stale_steps - 1 more steps
    s3 = WindowSampler(log, 8, stale_steps=3)
    _, m3, _ = s3.batch(np.array([20, 21, 22]))
    assert m3[:, 1].tolist() == [1.0, 1.0, 0.0]
    with pytest.raises(ValueError):
        WindowSampler(log, 8, stale_steps=9)


def test_normalize_and_coarsen():
    x = np.arange(2 * 2 * 8, dtype=np.float32).reshape(2, 2, 8)
    mask = np.array([[1, 0], [1, 1]], np.float32)
    z = normalize(x, mask, np.array([1.0, 2.0]), np.array([2.0, 4.0]))
    assert (
        (z[0, 1] == 0).all()
        and z[0, 0, 0] == pytest.approx(-0.5)
        and z[1, 1, 0] == pytest.approx((24 - 2) / 4)
    )
    ev = np.array([False, True])
    c = coarsen_time(x, 3, ev)  # 8 // 3 = 2 steps: the group 4-6 (mean; max for the event row), newest 7
    assert c.shape == (2, 2, 2) and c[0, 0].tolist() == [5.0, 7.0] and c[0, 1].tolist() == [14.0, 15.0]
    assert math.isclose(float(coarsen_time(x, 1, ev).sum()), float(x.sum()))


def test_sim_history_across_spring_forward(tmp_path):
    from simhome.history import write_history

    csv = write_history(tmp_path / "h.csv", 4, seed=3, start="2022-03-25", dropouts=False)
    log = load_dataset(str(csv))["all"]
    # 4 local days, one of 23 hours: one row per UTC minute, nothing shifted or duplicated
    assert len(log) == 4 * 1440 - 60 and log.stats["duplicates"] == 0 and log.stats["gaps"] == 0
    assert sorted(set(log.utc_offset_seconds.tolist())) == [3600, 7200]
    hour, wd = hour_and_weekday(log)
    assert hour[0] == 0.0 and wd[0] == 4  # Friday 2022-03-25 00:00 local
    jump = int(np.argmax(log.utc_offset_seconds == 7200))
    assert hour[jump - 1] == pytest.approx(1 + 59 / 60) and hour[jump] == 3.0
    sim = load_dataset("sim:2:1")["all"]
    assert sim.name == "sim:2:1" and len(sim.devices) >= 3 and len(sim.channels) >= 6
    with pytest.raises(DataError, match="sim:DAYS"):
        load_dataset("sim:two")


def test_channel_moments():
    log = _toy_log()
    log.values[:, 2] = 5.0  # a constant channel: std floored (the manifest needs std > 0)
    mean, std = channel_moments(log)
    v = log.values.astype(np.float64)
    np.testing.assert_allclose(mean[:2], np.nanmean(v, axis=0)[:2], rtol=1e-6)
    np.testing.assert_allclose(std[:2], np.nanstd(v, axis=0)[:2], rtol=1e-6)
    assert mean[2] == 5.0 and std[2] == pytest.approx(1e-6) and mean.dtype == std.dtype == np.float32
