"""Dataset -> splits -> trained models -> bundle: the `train` command's work, shared by the demo-bundle build.

Splits: `uci-occupancy` keeps its own files (train, test, test2) and carves the chronologically last 15 % of
train as validation; a CSV dataset is split chronologically by `--split A,B` (A = first day of validation,
B = first day of test; or fractions) into train/val/test, or given as separate files (`--val-dataset`,
`--test-dataset`, training.splitfiles); a `db:<URL>` dataset (the agent's own log, training.data.dblog)
holds out its last days as test (`--holdout-days`) and validates on the last 15 % of the rest. The split
used (rule, and per part its source and first/last row) is written into the manifest (`split`); what was
used to load it (dataset, files, split, window, calendar and dropped channels) into `training.json`, so
`evaluate` rebuilds exactly the same parts.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_agent.manifest import ChannelSpec, DeviceSpec, Manifest
from training.bundle import BundleSpec, Evaluator, default_budget, write_bundle
from training.champion import champion_metrics, warm_start_source
from training.data import (
    DEFAULT_CALENDAR,
    DataError,
    add_calendar_channels,
    load_dataset,
    slice_log,
    split_log,
)
from training.data.dblog import DB_PREFIX, DbDataset, is_db, load_db
from training.data.uci import NAME as UCI_NAME
from training.distill import distill_tiers
from training.holdout import holdout_metrics
from training.sensorlog import SensorLog
from training.splitfiles import load_file_splits, split_record, split_rule_text
from training.thresholds import parse_rule
from training.train import TrainConfig, train

logger = logging.getLogger(__name__)

TRAINING_FILE = "training.json"
SIMEXPLORE = "simexplore:"
UCI_VAL_FRACTION = 0.15


@dataclass
class DataSpec:
    """Which data, and how it is cut: enough to rebuild the same splits at evaluation time."""

    dataset: str
    data_dir: str | None = None
    sidecar: str | None = None
    timezone: str | None = None
    split: str | None = None
    drop_channels: list[str] = field(default_factory=list)
    calendar: list[str] | None = None  # None: the default for the dataset (UCI none, CSV time of day)
    # db: datasets (the agent's own log): days read, days held out, label mode, min person-change events
    history_days: float | None = None
    holdout_days: float | None = None  # None: the catalog's learning.train.holdout_days
    labels: str = "preference"  # preference | naive
    min_labels: int | None = None  # None: the catalog's learning.readiness.shadow_min_labels
    # explicit split files (CSV only): validation and test parts given as their own files
    val_dataset: str | None = None
    test_dataset: str | None = None

    def calendar_channels(self) -> list[str]:
        if self.calendar is not None:
            return list(self.calendar)
        return [] if self.dataset == UCI_NAME else list(DEFAULT_CALENDAR)


def load_splits(spec: DataSpec) -> dict[str, SensorLog]:
    """{'train', 'val', <test splits>}: UCI -> test, test2; CSV -> test. DataError on bad input.

    `simexplore:days=90,seed=7,start=2023-01-02` generates that explored simulated history
    (`training.simexplore`) in a temporary directory and loads it as a CSV (the demo bundle's dataset).
    """
    if spec.dataset.startswith(SIMEXPLORE):
        return _load_simexplore(spec)
    if is_db(spec.dataset):
        return load_db_spec(spec).parts
    if spec.val_dataset or spec.test_dataset:
        if spec.split:
            raise DataError(
                f"--split {spec.split!r}: the files given by --val-dataset/--test-dataset are the split; drop --split"
            )
        parts = load_file_splits(
            spec.dataset,
            spec.val_dataset,
            spec.test_dataset,
            sidecar=spec.sidecar,
            timezone=spec.timezone,
            drop_channels=spec.drop_channels,
        )
        cal = spec.calendar_channels()
        return {k: add_calendar_channels(v, cal) if cal else v for k, v in parts.items()}
    logs = load_dataset(
        spec.dataset,
        data_dir=Path(spec.data_dir) if spec.data_dir else None,
        sidecar=Path(spec.sidecar) if spec.sidecar else None,
        timezone=spec.timezone,
        drop_channels=spec.drop_channels,
    )
    if spec.dataset == UCI_NAME:
        if spec.split:
            raise DataError(
                f"--split {spec.split!r}: {UCI_NAME} has its own train/test/test2 files; "
                "--split applies to CSV datasets only, drop it"
            )
        tr = logs["train"]
        cut = int(round(len(tr) * (1 - UCI_VAL_FRACTION)))
        parts = {
            "train": slice_log(tr, 0, cut, f"{tr.name}:fit"),
            "val": slice_log(tr, cut, len(tr), f"{tr.name}:val"),
            "test": logs["test"],
            "test2": logs["test2"],
        }
    else:
        parts = split_log(logs["all"], spec.split)
    cal = spec.calendar_channels()
    return {k: add_calendar_channels(v, cal) if cal else v for k, v in parts.items()}


def simexplore_name(days: int, seed: int, start: str) -> str:
    return f"{SIMEXPLORE}days={days},seed={seed},start={start}"


def _load_simexplore(spec: DataSpec) -> dict[str, SensorLog]:
    import tempfile

    from training.simexplore import write_explored_history

    try:
        kv = dict(p.split("=", 1) for p in spec.dataset[len(SIMEXPLORE) :].split(","))
        days, seed, start = int(kv["days"]), int(kv["seed"]), kv["start"]
    except (ValueError, KeyError):
        raise DataError(
            f"dataset {spec.dataset!r}: expected {SIMEXPLORE}days=N,seed=S,start=YYYY-MM-DD"
        ) from None
    with tempfile.TemporaryDirectory(prefix="edge-agent-simexplore-") as tmp:
        csv = write_explored_history(Path(tmp) / "simhome.csv", days, seed=seed, start=start)
        return load_splits(replace(spec, dataset=str(csv)))


def load_db_spec(spec: DataSpec, window: int = 64) -> DbDataset:
    """A `db:<URL>` dataset (training.data.dblog): train/val/held-out days, calendar channels added."""
    if spec.split:
        raise DataError(f"--split {spec.split!r}: a db: dataset is split by --holdout-days; drop --split")
    if spec.labels not in ("preference", "naive"):
        raise DataError(f"--labels {spec.labels!r}: use preference or naive")
    return load_db(
        spec.dataset.removeprefix(DB_PREFIX),
        history_days=spec.history_days,
        holdout_days=spec.holdout_days,
        labels="naive" if spec.labels == "naive" else "preference",
        min_labels=spec.min_labels,
        window=window,
        calendar=spec.calendar_channels(),
    )


def test_split_names(spec: DataSpec) -> list[str]:
    if spec.dataset == UCI_NAME:
        return ["test", "test2"]
    if spec.val_dataset and not spec.test_dataset:
        return []  # explicit files without a test file: nothing to score unless told what
    return ["test"]


def part_sources(spec: DataSpec, parts: dict[str, SensorLog]) -> dict[str, str]:
    """Per part, the dataset it was read from (the manifest's split record)."""
    own = {"val": spec.val_dataset, "test": spec.test_dataset}
    return {k: own.get(k) or spec.dataset for k in parts}


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def _dataset_label(dataset: str) -> str:
    if dataset == UCI_NAME or dataset.startswith(SIMEXPLORE):
        return dataset
    if is_db(dataset):
        return "db-" + Path(dataset.removeprefix(DB_PREFIX).removeprefix("sqlite:///")).stem
    return Path(dataset.removeprefix("csv:")).stem


def train_bundle(
    data: DataSpec,
    out: Path,
    cfg: TrainConfig,
    *,
    version: str | None = None,
    created: str | None = None,
    latency_runs: int = 1000,
    champion: Path | None = None,
) -> Manifest:
    """Load, split, train and write the bundle to `out`; returns its manifest.

    A db: dataset also gets the int8 tier's agreement with the person on the held-out days in the manifest
    (training.holdout), `data_end` (epoch seconds of the log's last row) and, with `champion` (the bundle in
    service), the champion's agreement on the same held-out days (training.champion); training warm-starts
    from the champion's weights when its channels and devices are the log's."""
    t_start = time.monotonic()
    evaluate: Evaluator | None = None
    if is_db(data.dataset):
        db = load_db_spec(data, cfg.window)
        parts = db.parts
        h = db.holdout
        data_end = h.t0 + (len(h) - 1) * h.step_seconds

        def _holdout(tmp: Path, channels: list[ChannelSpec], devices: list[DeviceSpec]) -> dict[str, float]:
            m = holdout_metrics(db, tmp, channels, devices, cfg.window)
            m["data_end"] = float(data_end)
            if champion is not None:
                m.update(champion_metrics(db, champion))
            return m

        evaluate = _holdout

    else:
        parts = load_splits(data)
    tr, va = parts["train"], parts["val"]
    init = warm_start_source(champion, tr)
    if init is not None:
        cfg = replace(cfg, init_from=str(init))
    res = train(tr, va, cfg)
    res.metrics.update(distill_tiers(res, tr, va, cfg))
    res.metrics["pre_train_seconds"] = res.loop_end - res.metrics["train_seconds"] - t_start
    inner = evaluate

    def _timed(tmp: Path, channels: list[ChannelSpec], devices: list[DeviceSpec]) -> dict[str, float]:
        """The held-out evaluation (db:), then the budget use after the loop: thresholds, distillation,
        export, quantization, evaluation (the training job sizes its reserve from it, edge_agent.trainjob)."""
        m = inner(tmp, channels, devices) if inner is not None else {}
        m["post_train_seconds"] = time.monotonic() - res.loop_end
        m["train_rows"] = float(len(tr))
        return m

    evaluate = _timed
    rule = split_rule_text(data.dataset, data.split, data.val_dataset, data.test_dataset, data.holdout_days)
    label = _dataset_label(data.dataset)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    spec = BundleSpec(
        version=version or f"{stamp}-{label}-s{cfg.seed}",
        dataset=label,
        step_seconds=tr.step_seconds,
        window=cfg.window,
        channels=res.channels,
        devices=res.devices,
        channel_budget=default_budget(len(res.channels)),
        training_span=(_iso(tr.t0), _iso(tr.t0 + (len(tr) - 1) * tr.step_seconds)),
        metrics=res.metrics,
        created=created,
        timezone=data.timezone or tr.timezone,
        split=split_record(rule, parts, part_sources(data, parts)),
        threshold_rule=parse_rule(cfg.threshold_rule).name,
    )
    meta: dict[str, Any] = {
        "data": asdict(data) | {"calendar": data.calendar_channels()},
        "train_config": asdict(cfg),
        "history": res.history,
        "stop_reason": res.stop_reason,
        "rows": {k: len(v) for k, v in parts.items()},
        "champion": None if champion is None else str(champion),
    }
    assert res.val_pool is not None
    return write_bundle(
        out,
        spec,
        res.full,
        res.coarse,
        cfg.time_factor,
        res.val_pool,
        latency_runs=latency_runs,
        extra_files={TRAINING_FILE: json.dumps(meta, indent=2)},
        evaluate=evaluate,
    )


def read_training_meta(bundle: Path) -> dict[str, Any] | None:
    """The bundle's training.json (None if absent, e.g. a bundle written by another tool)."""
    path = Path(bundle) / TRAINING_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
