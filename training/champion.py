"""The champion on the challenger's held-out days, and the warm start from it: the retrain's training side.

`champion_metrics(db, champion_dir)` evaluates the bundle in service (its int8 tier, its own normalization,
the runtime's decision rule: `training.holdout.holdout_metrics`) on exactly the held-out days the challenger
is scored on, so the gate (`edge_agent.promotion`) compares both on the same rows. The held-out log is
re-ordered to the champion's channels (a channel the log no longer has is NaN: masked, as the runtime masks
a silent sensor) and devices (a device the log does not label is left unscored). Its keys are the holdout
keys prefixed `champion_` (`champion_holdout_agreement.<d>`, `champion_holdout_labels.<d>`, ...) plus
`champion_evaluated` (1.0, or 0.0 with the reason logged when the champion's step differs).

`warm_start_source(champion_dir, train_log)`: the champion's `model.pt` when it has the same channels and
devices, in the same order, as the new training log (its weights then mean the same inputs), else None.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from edge_agent.manifest import read_manifest
from training.data.dblog import DbDataset
from training.holdout import holdout_metrics
from training.sensorlog import ChannelInfo, DeviceInfo, SensorLog

logger = logging.getLogger(__name__)

PREFIX = "champion_"
MODEL_FILE = "model.pt"


def _reorder(log: SensorLog, channels: list[str], devices: list[str]) -> tuple[SensorLog, list[int | None]]:
    """`log` with the columns `channels` / `devices` (NaN where it has none); also the device map new -> old."""
    cidx = {c.name: i for i, c in enumerate(log.channels)}
    didx = {d.name: i for i, d in enumerate(log.devices)}
    n = len(log)
    values = np.full((n, len(channels)), np.nan, np.float32)  # [N, C']
    for j, name in enumerate(channels):
        if name in cidx:
            values[:, j] = log.values[:, cidx[name]]
    labels = np.full((n, len(devices)), np.nan, np.float32)  # [N, D']
    dmap: list[int | None] = [didx.get(name) for name in devices]
    for j, k in enumerate(dmap):
        if k is not None:
            labels[:, j] = log.labels[:, k]
    out = replace(
        log,
        values=values,
        labels=labels,
        channels=[ChannelInfo(name) for name in channels],
        devices=[DeviceInfo(name) for name in devices],
    )
    return out, dmap


def champion_metrics(db: DbDataset, champion_dir: Path) -> dict[str, float]:
    """The champion's held-out metrics on `db`'s held-out days, keys prefixed `champion_` (module docstring)."""
    man = read_manifest(champion_dir)
    log = db.holdout
    if abs(man.step_seconds - log.step_seconds) > 1e-6:
        logger.warning(
            "champion %s: step %gs differs from the log's %gs; not evaluated on the held-out days",
            man.version,
            man.step_seconds,
            log.step_seconds,
        )
        return {f"{PREFIX}evaluated": 0.0}
    channels = [c.name for c in man.channels]
    devices = [d.name for d in man.devices]
    missing = sorted(set(channels) - {c.name for c in log.channels})
    if missing:
        logger.info("champion %s: channels %s not in the log any more (masked)", man.version, missing)
    sub, dmap = _reorder(log, channels, devices)
    events = np.zeros((len(log), len(devices)), dtype=bool)  # [N, D']
    for j, k in enumerate(dmap):
        if k is not None:
            events[:, j] = db.event_rows[:, k]
    view = replace(db, holdout=sub, event_rows=events)
    tier = next((t for t in man.tiers if t.name == "int8"), man.tiers[0])
    logger.info("champion %s (%s) on the same held-out days:", man.version, tier.file)
    try:
        m = holdout_metrics(view, champion_dir, list(man.channels), list(man.devices), man.window, tier.file)
    except Exception as e:  # a champion the trainer cannot run: the gate keeps it and says how to replace it
        logger.warning("champion %s could not be scored on the held-out days: %s", man.version, e)
        return {f"{PREFIX}evaluated": 0.0}
    out = {f"{PREFIX}{k}": v for k, v in m.items() if not k.startswith("label_events.")}
    out[f"{PREFIX}evaluated"] = 1.0
    return out


def warm_start_source(champion_dir: Path | None, train_log: SensorLog) -> Path | None:
    """The champion's model.pt if its channels and devices are the training log's (same order), else None."""
    if champion_dir is None:
        return None
    pt = Path(champion_dir) / MODEL_FILE
    try:
        man = read_manifest(champion_dir)
    except (OSError, ValueError) as e:
        logger.warning("warm start: champion %s unreadable (%s); cold start", champion_dir, e)
        return None
    same = [c.name for c in man.channels] == [c.name for c in train_log.channels] and [
        d.name for d in man.devices
    ] == [d.name for d in train_log.devices]
    if not same:
        logger.info("warm start: champion %s has other channels or devices; cold start", man.version)
        return None
    if not pt.is_file():
        logger.info("warm start: champion %s keeps no %s; cold start", man.version, MODEL_FILE)
        return None
    return pt
