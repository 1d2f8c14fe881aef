"""The built-in `uci-occupancy` dataset (Candanedo & Feldheim 2016), read from the shared data directory.

Files `datatraining.txt`, `datatest.txt`, `datatest2.txt` (CSV, leading row number, local time in Mons,
Belgium -> zone Europe/Brussels, ~1 reading a minute with :59 jitter) -> SensorLogs `train`, `test`, `test2`
on a 60 s grid (as-of resampling: 17:51:59 lands on 17:52:00). Never copied into the repo.
Directory: `data_dir` argument, else env `EDGE_AGENT_UCI_DIR`, else `<repo>/../shared/data/uci-occupancy`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from edge_agent.dataformat import ColumnSpec, Sidecar
from training.data.csvload import build_log
from training.data.errors import DataError
from training.data.resample import sort_rows
from training.data.timestamps import TimestampParser, get_zone
from training.sensorlog import ChannelInfo, DeviceInfo, SensorLog

NAME = "uci-occupancy"
FILES = {"train": "datatraining.txt", "test": "datatest.txt", "test2": "datatest2.txt"}
TIMEZONE = "Europe/Brussels"
CHANNELS = (
    ChannelInfo("Temperature", "°C", "temperature"),
    ChannelInfo("Humidity", "%", "humidity"),
    ChannelInfo("Light", "lux", "illuminance"),
    ChannelInfo("CO2", "ppm", "co2"),
    ChannelInfo("HumidityRatio", "kg/kg", "humidity_ratio"),
)
DEVICES = (DeviceInfo("Occupancy", "binary"),)
DEFAULT_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "uci-occupancy"


def uci_dir(data_dir: Path | None = None) -> Path:
    """The directory holding the UCI files (argument > $EDGE_AGENT_UCI_DIR > ../shared/data/uci-occupancy)."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get("EDGE_AGENT_UCI_DIR")
    return Path(env) if env else DEFAULT_DIR


def _sidecar() -> Sidecar:
    cols = {c.name: ColumnSpec(role="channel", unit=c.unit, kind=c.kind) for c in CHANNELS}
    cols.update({d.name: ColumnSpec(role="device", device_kind=d.kind) for d in DEVICES})
    return Sidecar(
        timestamp_column="date", timezone=TIMEZONE, step_seconds=60, ffill_limit_seconds=300, columns=cols
    )


def load_uci(data_dir: Path | None = None, timezone: str | None = None) -> dict[str, SensorLog]:
    """{'train', 'test', 'test2'} SensorLogs; DataError naming the directory and the fix when files are absent."""
    d = uci_dir(data_dir)
    missing = [f for f in FILES.values() if not (d / f).is_file()]
    if missing:
        raise DataError(
            f"UCI occupancy data not found: {d} lacks {', '.join(missing)}; pass --data-dir DIR or set "
            "EDGE_AGENT_UCI_DIR to the directory with datatraining.txt, datatest.txt, datatest2.txt"
        )
    sc = _sidecar()
    zone = get_zone(timezone or TIMEZONE, "--timezone")
    names = [c.name for c in CHANNELS] + [dv.name for dv in DEVICES]
    out: dict[str, SensorLog] = {}
    for split, fname in FILES.items():
        path = d / fname
        try:
            df = pd.read_csv(path, index_col=0, dtype={"date": "str"})
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
            raise DataError(f"{path}: not the UCI occupancy CSV ({err}); restore the original file") from None
        lacking = [c for c in ["date", *names] if c not in df.columns]
        if lacking:
            raise DataError(f"{path}: columns {lacking} missing; restore the original UCI occupancy file")
        parser = TimestampParser(zone, str(path), "date")
        ts, _, ok = parser.parse(df["date"], 2)
        t_us = ts[ok].copy()
        vals = np.asfortranarray(df[names].to_numpy(dtype=np.float32)[ok])  # [n, 6]
        stats = sort_rows(t_us, [vals])
        logd = build_log(
            path, sc, zone, t_us, vals, None, list(CHANNELS), list(DEVICES), parser, {}, len(df), stats
        )
        logd.name = f"{NAME}:{split}"
        out[split] = logd
    return out
