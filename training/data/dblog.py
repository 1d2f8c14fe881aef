"""`db:<SQLAlchemy URL>` datasets: the agent's own log, through the one export path and the generic CSV loader.

`load_db(url, ...)`: `edge_agent.history.load_history` (grid, `<device>.state` inputs, labels) -> a temporary
CSV + sidecar (`edge_agent.history_csv`) -> `training.data.load_csv` (same step, per-column forward-fill
limits, gaps masked, DST, zone), then a chronological split by days:

    test (held out) = the last `holdout_days` days; val = the last 15 % of the rest; train = the remainder.

A device with fewer than `min_labels` person-change label events in the training span (train + val) is left
out with one line "not enough data: N events for device X, need M"; if none is left that line is a DataError.
The held-out part is labelled with the person's preference whatever the label mode (naive included), so
held-out agreement is always agreement with the person; `event_rows` marks its rule-a rows (a person's change
follows) and `context` the `window - 1` rows before it, so the first held-out rows are full windows too.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edge_agent.history import History, HistoryError, LabelMode, load_history
from edge_agent.history_csv import write_history_csv
from training.data.calendar import add_calendar_channels
from training.data.csvload import load_csv
from training.data.errors import DataError
from training.data.splits import slice_log
from training.sensorlog import SensorLog

logger = logging.getLogger(__name__)

DB_PREFIX = "db:"
VAL_FRACTION = 0.15
DAY = 86400.0


@dataclass
class DbDataset:
    parts: dict[str, SensorLog]  # train, val, test (= the held-out days, preference labels)
    holdout: SensorLog  # `context` rows before the held-out days, then the held-out days
    context: int  # rows of `holdout` before the first held-out row
    event_rows: np.ndarray  # bool [len(holdout), D] rule-a rows (a person's change follows)
    label_events: dict[str, int]  # every device of the home -> person-change label events in train + val
    dropped: list[str] = field(default_factory=list)
    holdout_days: float = 0.0
    min_labels: int = 0


def is_db(dataset: str) -> bool:
    return dataset.startswith(DB_PREFIX)


def _keep_devices(hist: History, cut: float, min_labels: int) -> tuple[list[int], dict[str, int], list[str]]:
    events = {d.name: int((hist.labels.event_ts[k] < cut).sum()) for k, d in enumerate(hist.devices)}
    counts = (~np.isnan(hist.targets[hist.times < cut])).sum(axis=0)
    keep, short = [], []
    for k, d in enumerate(hist.devices):
        if events[d.name] >= min_labels and counts[k] > 0:
            keep.append(k)
        else:
            short.append(
                f"not enough data: {events[d.name]} events for device {d.name}, need {max(min_labels, 1)}"
            )
    for line in short:
        if keep:
            logger.warning("%s; left out of the bundle", line)
    if not keep:
        text = "; ".join(short).replace("; not enough data: ", "; ")
        raise DataError(text if short else "not enough data: the log has no device")
    return keep, events, [hist.devices[k].name for k in range(len(hist.devices)) if k not in keep]


def load_db(
    url: str,
    *,
    history_days: float | None = None,
    holdout_days: float | None = None,
    labels: LabelMode = "preference",
    min_labels: int | None = None,
    step_seconds: float | None = None,
    window: int = 64,
    calendar: list[str] | None = None,
) -> DbDataset:
    """The log at `url` as train/val/test SensorLogs (module docstring). DataError on bad input."""
    try:
        hist = load_history(url, last_days=history_days, step=step_seconds, labels=labels)
    except HistoryError as e:
        raise DataError(str(e)) from None
    learning = hist.learning
    hold = float(learning.train.holdout_days if holdout_days is None else holdout_days)
    need = int(learning.readiness.shadow_min_labels if min_labels is None else min_labels)
    cut = float(hist.times[-1]) + hist.step - hold * DAY
    n_fit = int(np.searchsorted(hist.times, cut, side="left"))
    days = len(hist) * hist.step / DAY
    if hold <= 0 or n_fit < max(2 * window, 10) or n_fit >= len(hist):
        raise DataError(
            f"{url.removeprefix('sqlite:///')}: {days:.1f} days of log cannot hold out {hold:g} days and still "
            f"train on {window}-step windows; use a shorter --holdout-days or --window, or let the agent observe longer"
        )
    keep, events, dropped = _keep_devices(hist, cut, need)
    with tempfile.TemporaryDirectory(prefix="edge-agent-db-") as tmp:
        csv, _, _ = write_history_csv(hist, Path(tmp) / "history.csv", devices=keep)
        log = load_csv(csv)
    if len(log) != len(hist) or log.t0 != float(hist.times[0]):
        raise DataError(f"{url}: the exported grid does not match the log ({len(log)} vs {len(hist)} rows)")
    log.name = "db:" + Path(url.removeprefix("sqlite:///")).stem
    if calendar:
        log = add_calendar_channels(log, calendar)
    pref = replace(log, labels=hist.labels.labels[:, keep].astype(np.float32))  # [N, D'] the person's
    n_val = max(int(round(n_fit * VAL_FRACTION)), 1)
    a = max(n_fit - (window - 1), 0)
    holdout = slice_log(pref, a, len(log), f"{log.name}:holdout")
    parts = {
        "train": slice_log(log, 0, n_fit - n_val, f"{log.name}:train"),
        "val": slice_log(log, n_fit - n_val, n_fit, f"{log.name}:val"),
        "test": slice_log(pref, n_fit, len(log), f"{log.name}:test"),
    }
    logger.info(
        "%s: %d rows (%.1f days), train %d / val %d / held out %d (%g days); label events %s",
        log.name,
        len(log),
        days,
        len(parts["train"]),
        len(parts["val"]),
        len(parts["test"]),
        hold,
        events,
    )
    return DbDataset(
        parts=parts,
        holdout=holdout,
        context=n_fit - a,
        event_rows=hist.labels.event_rows[a:][:, keep],
        label_events=events,
        dropped=dropped,
        holdout_days=hold,
        min_labels=need,
    )
