"""Held-out days of a home's log: the int8 tier's agreement with the person, per device, for the manifest.

Run on the bundle being written (its `int8.onnx`, through onnxruntime as the daemon runs it), on the windows
ending in the held-out days (`DbDataset.holdout`, whose first `context` rows only fill the first windows),
normalized with the manifest's moments and decided by the runtime's rule (`training.decisions.decide`).
Labels are the person's preference (edge_agent.labels), whatever the model was trained on. Metrics, per
device d of the bundle:

    holdout_agreement.<d>        share of labelled held-out rows where the decision equals the label
    holdout_event_agreement.<d>  the same over rule-a rows only (does it anticipate the person's change;
                                 left out when the held-out days hold no such row)
    holdout_labels.<d>           labelled held-out rows
    holdout_events.<d>           rule-a held-out rows

and for every device of the home `label_events.<d>` (person-change label events in the training span),
plus `holdout_days` and `min_labels`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edge_agent.features import normalize
from edge_agent.manifest import ChannelSpec, DeviceSpec
from training.data.dblog import DbDataset
from training.data.windows import WindowSampler
from training.decisions import agree, decide
from training.ortrun import make_session, run_batched

logger = logging.getLogger(__name__)

INT8_FILE = "int8.onnx"
CHUNK = 4096  # windows per inference chunk


def holdout_metrics(
    db: DbDataset,
    bundle_dir: Path,
    channels: list[ChannelSpec],
    devices: list[DeviceSpec],
    window: int,
    model_file: str = INT8_FILE,
) -> dict[str, float]:
    """The metrics of the module docstring for the bundle in `bundle_dir` (its channels = the log's);
    `model_file`: the tier file to run (the int8 tier's)."""
    log = db.holdout
    names = [c.name for c in log.channels]
    if names != [c.name for c in channels] or [d.name for d in log.devices] != [d.name for d in devices]:
        raise ValueError("the held-out log's channels/devices differ from the bundle's")
    sampler = WindowSampler(log, window)
    ends = sampler.ends[sampler.ends >= db.context]  # int64 [M] windows ending in the held-out days
    mean = np.array([c.mean for c in channels], np.float32)
    std = np.array([c.std for c in channels], np.float32)
    sess = make_session(Path(bundle_dir) / model_file)
    hits = np.zeros((ends.size, len(devices)), dtype=bool)  # [M, D]
    known = np.zeros((ends.size, len(devices)), dtype=bool)
    for i in range(0, ends.size, CHUNK):
        e = ends[i : i + CHUNK]
        x, mask, labels = sampler.batch(e)  # [B, C, T], [B, C], [B, D]
        ids = np.broadcast_to(np.arange(len(channels), dtype=np.int64), mask.shape)
        out = run_batched(sess, normalize(x, mask, mean, std), mask, ids)[0]  # [B, D]
        dec = decide(out, devices)
        hits[i : i + CHUNK] = agree(dec, np.nan_to_num(labels, nan=-1e9), devices)
        known[i : i + CHUNK] = ~np.isnan(labels)
    ev = db.event_rows[ends] & known  # [M, D]
    metrics: dict[str, float] = {"holdout_days": float(db.holdout_days), "min_labels": float(db.min_labels)}
    for k, d in enumerate(devices):
        n_lab, n_ev = int(known[:, k].sum()), int(ev[:, k].sum())
        if n_lab:  # keys without data are left out (the manifest's JSON has no NaN)
            metrics[f"holdout_agreement.{d.name}"] = float(hits[known[:, k], k].mean())
        if n_ev:
            metrics[f"holdout_event_agreement.{d.name}"] = float(hits[ev[:, k], k].mean())
        metrics[f"holdout_labels.{d.name}"] = float(n_lab)
        metrics[f"holdout_events.{d.name}"] = float(n_ev)
    for name, n in db.label_events.items():
        metrics[f"label_events.{name}"] = float(n)
    logger.info(
        "held out %g days: %s",
        db.holdout_days,
        ", ".join(
            f"{d.name} {metrics.get(f'holdout_agreement.{d.name}', float('nan')):.3f} "
            f"(events {metrics.get(f'holdout_event_agreement.{d.name}', float('nan')):.3f})"
            for d in devices
        ),
    )
    return metrics
