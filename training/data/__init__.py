"""The data layer of training: datasets -> resampled SensorLogs, chronological splits, lazy windows, calendar.

Public API (the trainer, evaluator, baselines and CLI use only these names):

    DataError                          one-line bad-input error (CLI prints it, exits 2)
    load_dataset(spec, ...)            'uci-occupancy' -> {'train','test','test2'}; 'sim[:DAYS[:SEED]]' or
                                       a CSV path -> {'all'}
    split_log(log, split)              -> {'train','val','test'} by local dates or fractions
    WindowSampler(log, window)         .ends int64 [M], .batch(ends) -> x [B,C,T], mask [B,C], labels [B,D]
    normalize, coarsen_time            the runtime's (edge_agent.features normalize, pool_time)
    channel_moments
    hour_and_weekday(log), add_calendar_channels(log), calendar_columns(log, names)
    load_csv(path, sidecar=, timezone=)
    load_db(url, ...)                  the agent's own log (training.data.dblog): train/val/held-out days
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from training.data.calendar import (
    CALENDAR_CHANNELS,
    DEFAULT_CALENDAR,
    add_calendar_channels,
    calendar_columns,
    hour_and_weekday,
    local_seconds,
)
from training.data.csvload import load_csv
from training.data.dblog import load_db
from training.data.errors import DataError
from training.data.splits import DEFAULT_SPLIT, slice_log, split_log
from training.data.uci import NAME as UCI_NAME
from training.data.uci import load_uci
from training.data.windows import WindowSampler, channel_moments, coarsen_time, normalize
from training.sensorlog import SensorLog

BUILTIN_DATASETS: tuple[str, ...] = (UCI_NAME, "sim")
SIM_DEFAULT_DAYS = 28

__all__ = [
    "BUILTIN_DATASETS",
    "CALENDAR_CHANNELS",
    "DEFAULT_CALENDAR",
    "DEFAULT_SPLIT",
    "DataError",
    "WindowSampler",
    "add_calendar_channels",
    "calendar_columns",
    "channel_moments",
    "coarsen_time",
    "drop_channels",
    "hour_and_weekday",
    "load_csv",
    "load_db",
    "load_dataset",
    "local_seconds",
    "normalize",
    "slice_log",
    "split_log",
]


def drop_channels(log: SensorLog, names: Sequence[str]) -> SensorLog:
    """A SensorLog without the named channels (DataError naming an unknown one and listing the known)."""
    if not names:
        return log
    have = [c.name for c in log.channels]
    for n in names:
        if n not in have:
            raise DataError(f"--drop-channels: unknown channel {n!r} in {log.name}; known: {', '.join(have)}")
    keep = [i for i, n in enumerate(have) if n not in set(names)]
    if not keep:
        raise DataError(
            f"--drop-channels {','.join(names)} removes every channel of {log.name}; keep at least one"
        )
    return replace(
        log, values=log.values[:, keep], channels=[log.channels[i] for i in keep], stats=dict(log.stats)
    )


def _load_sim(spec: str) -> SensorLog:
    import tempfile

    from simhome.history import write_history

    parts = spec.split(":")[1:]
    try:
        days = int(parts[0]) if parts and parts[0] else SIM_DEFAULT_DAYS
        seed = int(parts[1]) if len(parts) > 1 else 0
        if days < 1 or len(parts) > 2:
            raise ValueError
    except ValueError:
        raise DataError(f"dataset {spec!r}: write sim, sim:DAYS or sim:DAYS:SEED (e.g. sim:28:0)") from None
    with tempfile.TemporaryDirectory(prefix="edge-agent-sim-") as tmp:
        path = write_history(Path(tmp) / f"sim-{days}d-seed{seed}.csv", days, seed=seed)
        log = load_csv(path)
    log.name = f"sim:{days}:{seed}"
    return log


def load_dataset(
    spec: str,
    *,
    data_dir: Path | None = None,
    sidecar: Path | None = None,
    timezone: str | None = None,
    drop_channels: Sequence[str] = (),
) -> dict[str, SensorLog]:
    """Load a dataset by name or path.

    `spec`: 'uci-occupancy' -> {'train', 'test', 'test2'} (files in `data_dir`, $EDGE_AGENT_UCI_DIR or
    ../shared/data/uci-occupancy); 'sim' / 'sim:DAYS' / 'sim:DAYS:SEED' -> {'all'}, a fresh simulated-home
    history (simhome, 28 days, seed 0 by default) written to a temporary CSV and loaded; a CSV path (optionally 'csv:PATH') -> {'all'} using its sidecar
    (`sidecar` or found next to it) and `timezone` for naive timestamps. `drop_channels` removes channels.
    """
    if spec == UCI_NAME:
        logs = load_uci(data_dir, timezone)
    elif spec == "sim" or spec.startswith("sim:"):
        logs = {"all": _load_sim(spec)}
    else:
        path = Path(spec[4:] if spec.startswith("csv:") else spec)
        if not path.is_file():
            raise DataError(
                f"unknown dataset {spec!r}: not a built-in ({', '.join(BUILTIN_DATASETS)}) and no such CSV file; "
                "pass a built-in name or the path of a CSV with a sidecar"
            )
        logs = {"all": load_csv(path, sidecar=sidecar, timezone=timezone)}
    return {k: globals()["drop_channels"](v, drop_channels) for k, v in logs.items()}
