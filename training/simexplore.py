"""Simulated-home history under an exploring controller, labelled with the person's preference.

Why: in a home's own history the device state follows the person, and some sensors measure the device
itself (a lamp raises its room's illuminance and the house power; the heating setpoint drives the room
temperature). A model trained on (sensors -> state in effect) learns persistence: "lamp light seen -> keep
the lamp on", "no lamp light -> keep it off", and in closed loop never switches the light on for a person
sitting in the dark (measured: 0 % agreement while present). The cure is off-policy data: here the devices
are driven by a behaviour policy that follows the preference with a human lag but is randomly perturbed
(~35 % of the time a device is held in a random state for 5-90 minutes), so the device's own footprint in
the sensors is decorrelated from the label, and the label is what the person wants (`SimHome.preferred`).
A real home has no such labels; there the override log (the retraining issue) plays this role.

Output: the generic CSV + sidecar (`edge_agent.dataformat`), the same columns as `simhome.write_history`.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from simhome import CHANNELS, DEVICES, SimHome
from simhome.history import make_sidecar, sidecar_path

EXPLORE_FRACTION = 0.35  # share of the time a device is held in a random state
DWELL_MIN = (5.0, 90.0)  # minutes a perturbation lasts (uniform)
FOLLOW_LAG_MIN = (1, 4)  # minutes the behaviour policy lags the preference when following it


def _random_state(
    kind: str, levels: int, lo: float, hi: float, rng: np.random.Generator, current: float
) -> float:
    if kind == "binary":
        return 1.0 - current
    if kind == "level":
        return float(rng.integers(0, levels))
    return float(np.round(rng.uniform(lo, hi) * 2) / 2)


def write_explored_history(
    path: Path,
    days: int,
    seed: int,
    start: str,
    timezone: str = "Europe/Brussels",
    explore: float = EXPLORE_FRACTION,
) -> Path:
    """Write `days` of one-minute history from local midnight of `start` (YYYY-MM-DD) to `path` + sidecar."""
    tz = ZoneInfo(timezone)
    home = SimHome(seed, dt.datetime.fromisoformat(start).replace(tzinfo=tz), timezone=timezone)
    rng = np.random.default_rng([seed, 4242])
    n = int(days * 1440)
    mean_dwell = float(np.mean(DWELL_MIN))
    p_start = explore / ((1 - explore) * mean_dwell)  # per minute, so the held share is ~explore
    n_dev = len(DEVICES)
    held_until = np.zeros(n_dev)  # minute index until which a perturbation holds
    pending: list[list[tuple[int, float]]] = [[] for _ in DEVICES]  # scheduled follow-ups (minute, value)
    last_pref = np.full(n_dev, np.nan)
    times = np.empty(n, dtype=np.float64)
    values = np.full((n, len(CHANNELS)), np.nan, dtype=np.float32)
    labels = np.empty((n, n_dev), dtype=np.float32)
    names = [c.name for c in CHANNELS]
    for i in range(n):
        pref = home.preferred()
        for k, d in enumerate(DEVICES):
            p = pref[d.name]
            if p != last_pref[k]:
                pending[k].append((i + int(rng.integers(*FOLLOW_LAG_MIN)), p))
                last_pref[k] = p
            if i >= held_until[k]:
                while pending[k] and pending[k][0][0] <= i:
                    home.set_device(d.name, pending[k].pop(0)[1])
                if rng.random() < p_start:
                    lo = d.min_value if d.min_value is not None else 0.0
                    hi = d.max_value if d.max_value is not None else 1.0
                    home.set_device(d.name, _random_state(d.kind, d.levels, lo, hi, rng, home.device(d.name)))
                    held_until[k] = i + rng.uniform(*DWELL_MIN)
                    pending[k] = [(int(np.ceil(held_until[k])), p)]  # then back to the preference
            labels[i, k] = p
        home.step(60.0)
        times[i] = home.now
        r = home.readings()
        values[i] = [np.nan if r[c] is None else r[c] for c in names]
    # labels[i] is the preference at the start of minute i; row i is stamped at its end: shift by one
    labels = np.concatenate([labels[1:], [[home.preferred()[d.name] for d in DEVICES]]]).astype(np.float32)
    return _write(Path(path), times, values, labels, tz, timezone)


def _write(
    path: Path, times: np.ndarray, values: np.ndarray, labels: np.ndarray, tz: ZoneInfo, timezone: str
) -> Path:
    stamps = pd.DatetimeIndex(
        pd.to_datetime(np.round(times).astype(np.int64), unit="s", utc=True)
    ).tz_convert(tz)
    df = pd.DataFrame(values, columns=[c.name for c in CHANNELS])
    for k, d in enumerate(DEVICES):
        df[d.name] = labels[:, k]
    df.insert(
        0, "time", stamps.strftime("%Y-%m-%dT%H:%M:%S%z").str.replace(r"(\d\d)(\d\d)$", r"\1:\2", regex=True)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    df.to_csv(tmp, index=False, float_format="%.6g", na_rep="")
    tmp.replace(path)
    sidecar = make_sidecar(timezone=timezone)
    sidecar_path(path).write_text(json.dumps(sidecar.model_dump(), indent=2), encoding="utf-8")
    return path
