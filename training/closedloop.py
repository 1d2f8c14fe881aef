"""Closed-loop check of a bundle on the simulated home: the model drives the devices, minute by minute.

Open-loop accuracy on logged history can hide a model that only learned persistence from sensors that see
the devices themselves (a lamp in the illuminance). Here a tier's decisions are applied to `SimHome` at
every minute (no MQTT, no policy smoothing, no person overriding), its sensors are windowed as the runtime
does (forward fill up to the stale limit, mask, normalize, calendar channels from the local clock), and each
decision is compared with what the person wants right now (`SimHome.preferred`): overall and while the
person is present (the moments they would notice and override).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from edge_agent.manifest import Manifest, calendar_value
from simhome import SimHome
from training.data.windows import coarsen_time
from training.decisions import agree, decide
from training.ortrun import make_session, run_session

STALE_SECONDS = 300.0  # the history loader's forward-fill limit; the runtime's stale limit


def _fill(buf: np.ndarray) -> np.ndarray:
    """Forward-fill NaNs along time per channel, back-fill the leading ones (WindowSampler's rule)."""
    t = buf.shape[1]
    good = ~np.isnan(buf)
    idx = np.where(good, np.arange(t), -1)
    np.maximum.accumulate(idx, axis=1, out=idx)
    first = np.argmax(good, axis=1)
    idx = np.where(idx < 0, first[:, None], idx)
    return np.take_along_axis(buf, idx, axis=1)


def closed_loop(
    bundle: Path,
    man: Manifest,
    tier: str = "int8",
    hours: float = 48.0,
    seed: int = 101,
    start: str = "2023-01-16T06:00",
    timezone: str = "Europe/Brussels",
) -> dict[str, float]:
    """Agreement of the tier's decisions with the preference over `hours` of closed-loop simulation."""
    t = man.tier(tier)
    sess = make_session(Path(bundle) / t.file)
    home = SimHome(
        seed, dt.datetime.fromisoformat(start).replace(tzinfo=ZoneInfo(timezone)), timezone=timezone
    )
    names = [c.name for c in man.channels]
    c, w = len(names), man.window
    mean = np.array([ch.mean for ch in man.channels], np.float32)
    std = np.array([ch.std for ch in man.channels], np.float32)
    buf = np.full((c, w), np.nan, np.float32)
    last = np.full(c, np.nan, np.float32)
    age = np.full(c, np.inf)
    ids = np.arange(c, dtype=np.int64)[None]
    same, present = [], []
    step = man.step_seconds
    for i in range(int(hours * 3600 / step)):
        home.step(step)
        r = home.readings()
        now = home.now_local()
        hod = now.hour + now.minute / 60 + now.second / 3600
        for j, n in enumerate(names):
            v = calendar_value(n, hod, now.weekday()) if n.startswith("calendar.") else r.get(n)
            if v is None:
                age[j] += step
            else:
                last[j], age[j] = v, 0.0
        buf = np.roll(buf, -1, axis=1)
        buf[:, -1] = np.where(age <= STALE_SECONDS, last, np.nan)
        if i < w:
            continue
        mask = (~np.isnan(buf[:, -1])).astype(np.float32)
        x = np.where(mask[:, None] > 0, (_fill(buf) - mean[:, None]) / std[:, None], 0.0).astype(np.float32)
        x = coarsen_time(x[None], t.time_factor)
        out = run_session(sess, x, mask[None], ids)[0]
        dec = decide(out, man.devices)
        pref = home.preferred()
        want = np.array([[pref[d.name] for d in man.devices]], np.float32)
        same.append(agree(dec, want, man.devices)[0])
        present.append([home.presence(d.name)[0] for d in man.devices])
        for k, d in enumerate(man.devices):
            home.set_device(d.name, float(dec[0, k]))
    ok, pres = np.array(same), np.array(present)
    res = {"closed_loop_agreement": float(ok.mean())}
    for k, d in enumerate(man.devices):
        res[f"closed_loop_agreement.{d.name}"] = float(ok[:, k].mean())
        if pres[:, k].any():
            res[f"closed_loop_agreement_present.{d.name}"] = float(ok[pres[:, k], k].mean())
    return res
