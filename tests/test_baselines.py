"""Classical baselines (training.baselines) and the shared metrics (training.metrics)."""

from __future__ import annotations

import numpy as np
import pytest

from training.baselines import BASELINES, fit_baselines
from training.data import WindowSampler, load_dataset, slice_log
from training.features import current_features, window_feature_names, window_features
from training.metrics import device_metrics
from training.sensorlog import ChannelInfo, DeviceInfo, SensorLog

WINDOW = 32


@pytest.fixture(scope="module")
def uci():
    return load_dataset("uci-occupancy")


def _eval(b, log):
    ends = WindowSampler(log, WINDOW).ends
    sc = b.scores(log, ends)
    pred = b.decide(sc)
    return device_metrics("binary", log.labels[ends, 0], pred["Occupancy"], sc["Occupancy"])


def test_uci_published_lda_and_gbdt_beats_majority(uci):
    train = uci["train"]
    cut = int(0.85 * len(train))
    fit_part, val_part = slice_log(train, 0, cut, "fit"), slice_log(train, cut, len(train), "val")
    lda = fit_baselines(train, None, WINDOW, names=["lda"])["lda"]  # published protocol: all of train
    models = fit_baselines(fit_part, val_part, WINDOW)
    assert set(models) == set(BASELINES)
    for split in ("test", "test2"):
        m_lda = _eval(lda, uci[split])
        assert m_lda["accuracy"] >= 0.97, (split, m_lda)  # published 97.9 % / 98.8 %
        maj, gbdt = _eval(models["majority"], uci[split]), _eval(models["gbdt_window"], uci[split])
        assert maj["balanced_accuracy"] == 0.5 and maj["accuracy"] == pytest.approx(maj["majority_rate"])
        assert gbdt["balanced_accuracy"] > maj["balanced_accuracy"] + 0.3, (split, gbdt)
        assert gbdt["f1"] > 0.8 and gbdt["average_precision"] > 0.8
    assert models["threshold_rule"].rule("Occupancy").startswith("Light >")
    assert 0.0 < models["gbdt_window"].thresholds["Occupancy"] < 1.0


def _synthetic(n: int, seed: int) -> SensorLog:
    """A toy home: 'heat' drives a fan level, 'lux' a rare light, temperature a setpoint; some labels unknown."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    heat = (np.sin(t / 50.0) + 0.1 * rng.normal(size=n)).astype(np.float32)
    lux = rng.gamma(1.0, 50.0, size=n).astype(np.float32)
    temp = (20 + np.sin(t / 300.0) + 0.05 * rng.normal(size=n)).astype(np.float32)
    values = np.stack([heat, lux, temp], axis=1)
    values[n // 3 : n // 3 + 40, 1] = np.nan  # an outage of lux: masked windows
    fan = np.digitize(heat, [-0.3, 0.4]).astype(np.float32)  # 0, 1, 2
    light = (lux > 160).astype(np.float32)  # on ~4 % of the time (exp(-3.2))
    setpoint = np.round(2 * (temp + 0.5)) / 2
    labels = np.stack([fan, light, setpoint], axis=1).astype(np.float32)
    labels[::97, 0] = np.nan  # unknown fan labels are skipped, other devices still used
    return SensorLog(
        "toy",
        60.0,
        1.7e9,
        values,
        labels,
        [ChannelInfo("heat"), ChannelInfo("lux", "lux", "illuminance"), ChannelInfo("temp", "°C")],
        [
            DeviceInfo("fan", "level", levels=3),
            DeviceInfo("light", "binary"),
            DeviceInfo("heating", "setpoint", "°C"),
        ],
    )


def test_all_device_kinds_and_rare_label():
    train, val, test = _synthetic(4000, 0), _synthetic(1500, 1), _synthetic(1500, 2)
    models = fit_baselines(train, val, WINDOW, max_train_windows=3000)
    ends = WindowSampler(test, WINDOW).ends
    res = {}
    for name, b in models.items():
        sc, pred = b.scores(test, ends), b.predict(test, ends)
        assert set(pred) == {"fan", "light", "heating"}
        assert sc["fan"].shape == (ends.size, 3) and sc["light"].shape == (ends.size,)
        assert set(np.unique(pred["light"])) <= {0.0, 1.0} and set(np.unique(pred["fan"])) <= {0.0, 1.0, 2.0}
        res[name] = {
            d.name: device_metrics(d.kind, test.labels[ends, k], pred[d.name], sc[d.name], d.levels)
            for k, d in enumerate(test.devices)
        }
    # rare light: majority never turns it on; the class-weighted trees and the rule find it
    assert res["majority"]["light"]["f1"] == 0.0 and res["majority"]["light"]["majority_rate"] > 0.9
    assert res["gbdt_window"]["light"]["balanced_accuracy"] > 0.9
    assert res["threshold_rule"]["light"]["balanced_accuracy"] > 0.9
    assert models["threshold_rule"].rule("light").startswith("lux >")
    assert res["gbdt_window"]["fan"]["balanced_accuracy"] > res["majority"]["fan"]["balanced_accuracy"] + 0.3
    assert res["lda"]["heating"]["mae"] < res["majority"]["heating"]["mae"]
    assert res["gbdt_window"]["heating"]["mae"] < 0.3


def test_features_match_definitions():
    log = _synthetic(300, 3)
    s = WindowSampler(log, WINDOW)
    ends = s.ends[[0, 50, -1]]
    f = window_features(s, ends)
    names = window_feature_names([c.name for c in log.channels])
    assert f.shape == (3, len(names)) == (3, 3 * 6 + 2)
    x, mask, _ = s.batch(ends)
    w = x[1, 0]
    slope = np.polyfit(np.arange(WINDOW), w, 1)[0]
    got = dict(zip(names, f[1], strict=True))
    assert got["heat.last"] == w[-1] and got["heat.max"] == w.max() and got["heat.min"] == w.min()
    assert got["heat.mean"] == pytest.approx(w.mean(), rel=1e-5) and got["heat.std"] == pytest.approx(
        w.std(), rel=1e-4
    )
    assert got["heat.slope"] == pytest.approx(slope, rel=1e-3, abs=1e-6)
    np.testing.assert_array_equal(current_features(s, ends), log.values[ends])
    dead = np.array([log.values.shape[0] // 3 + 20])  # inside the lux outage: masked -> NaN features
    assert np.isnan(window_features(s, dead)[0, 6:12]).all() and np.isnan(current_features(s, dead)[0, 1])


def test_device_metrics_definitions():
    y = np.array([1, 1, 0, 0, 0, 0, np.nan, 0])
    p = np.array([1, 0, 0, 0, 1, 0, 1, 0])
    s = np.array([0.9, 0.4, 0.1, 0.2, 0.6, 0.3, 0.99, 0.05])
    m = device_metrics("binary", y, p, s)
    assert m["n"] == 7 and m["accuracy"] == pytest.approx(5 / 7)
    assert m["balanced_accuracy"] == pytest.approx(0.5 * (1 / 2 + 4 / 5)) and m["f1"] == pytest.approx(0.5)
    assert m["majority_rate"] == pytest.approx(5 / 7) and m["average_precision"] == pytest.approx(
        (1 + 2 / 3) / 2
    )
    lv = device_metrics("level", np.array([0, 1, 2, 2]), np.array([0, 2, 2, 2]), levels=3)
    assert lv["accuracy"] == 0.75 and lv["mae"] == 0.25 and lv["balanced_accuracy"] == pytest.approx(2 / 3)
    assert np.isnan(lv["average_precision"])
    sp = device_metrics("setpoint", np.array([20.0, 21.0, np.nan]), np.array([20.4, 22.0, 0.0]))
    assert sp["mae"] == pytest.approx(0.7) and sp["accuracy"] == 0.5 and np.isnan(sp["f1"])
    one = device_metrics("binary", np.zeros(4), np.zeros(4), np.zeros(4))
    assert one["accuracy"] == 1.0 and np.isnan(one["average_precision"])
