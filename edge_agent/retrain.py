"""One retrain: lock, skip or train a challenger, gate it against the champion, promote atomically, record.

`Retrainer(cfg).run(trigger)` -> RetrainOutcome, never raises for a failed child:

1. `<state_dir>/retrain/.lock` is taken with fcntl.flock (LOCK_NB): a second retrain at once is refused; the
   kernel drops the lock when the holder dies, so a crash never leaves it stuck.
2. The champion is the bundle in service (the store's `current`, or `bundle:` of the config). The person's
   changes recorded since the end of the data it was trained on (`data_end` in its manifest, else its
   training span) are counted; fewer than `learning.retrain.min_new_labels` -> skipped, reason recorded.
3. The training child (edge_agent.trainjob: nice 19, SCHED_IDLE, memory limit, budget kill) trains the
   challenger on the home's log with `--champion DIR`: it warm-starts from the champion's weights where the
   channels match and scores the champion on the same held-out days (training.champion).
4. The gate (edge_agent.promotion) decides. Promoted -> installed into the bundle store and made current in
   one atomic symlink switch (the daemon's BundleWatcher hot-swaps it between two decisions). Kept -> the
   challenger is still installed (not current) with its verdict, so every version keeps its metrics, data
   span, parent and outcome. A write error while installing (disk full) -> failed, the champion serves on.
5. The outcome is a `retrains` row in the database and `<state_dir>/retrain/last.json` (the stats topic's
   `last_retrain`: {"at", "outcome", "reason", "champion", "challenger"}); a `running` status whose lock is
   free was left by a retrain that died, and reads as failed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from edge_agent.bundlestore import BundleStore, StoreError
from edge_agent.config import AgentConfig
from edge_agent.manifest import Manifest, read_manifest
from edge_agent.promotion import GateSettings, Verdict, judge
from edge_agent.recorder import device_changes, metadata, retrains, side_engine
from edge_agent.trainjob import TrainJob, TrainOutcome

logger = logging.getLogger(__name__)

LOCK = ".lock"
LAST = "last.json"
OUTCOMES = ("promoted", "kept", "skipped", "failed", "running")


@dataclass
class RetrainOutcome:
    """What one retrain did; `status()` is the stats topic's `last_retrain`."""

    at: float
    outcome: str  # promoted | kept | skipped | failed | running
    reason: str
    champion: str | None
    challenger: str | None = None
    trigger: str = "manual"
    seconds: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)

    def status(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "outcome": self.outcome,
            "reason": self.reason,
            "champion": self.champion,
            "challenger": self.challenger,
        }


def gate_settings(cfg: AgentConfig) -> GateSettings:
    r = cfg.learning.retrain
    return GateSettings(margin=r.margin, tolerance=r.tolerance, min_device_labels=r.min_device_labels)


def data_end(manifest: Manifest) -> float | None:
    """Epoch seconds of the last row the model saw (its `data_end` metric, else its training span's end)."""
    if "data_end" in manifest.metrics:
        return float(manifest.metrics["data_end"])
    if manifest.training_span is not None:
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(manifest.training_span[1]).timestamp()
    return None


def retrain_dir(cfg: AgentConfig) -> Path:
    return cfg.state_dir / "retrain"


def lock_held(cfg: AgentConfig) -> bool:
    """Whether a retrain holds the lock now (tried, never waited for)."""
    path = retrain_dir(cfg) / LOCK
    if not path.exists():
        return False
    with _lock(path) as got:
        return not got


def read_last(cfg: AgentConfig) -> dict[str, Any] | None:
    """The last retrain's status (None: never retrained); a dead retrain's `running` reads as failed."""
    try:
        data = json.loads((retrain_dir(cfg) / LAST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("outcome") not in OUTCOMES:
        return None
    if data["outcome"] == "running" and not lock_held(cfg):
        data = {**data, "outcome": "failed", "reason": "interrupted: the retrain process died"}
    return data


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[bool]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


class Retrainer:
    """Retrains for config `cfg`. `argv` (tests, benches) replaces the trainer command as in TrainJob."""

    def __init__(
        self,
        cfg: AgentConfig,
        *,
        clock: Callable[[], float] = time.time,
        python: Sequence[str] = (sys.executable,),
        argv: Sequence[str] | None = None,
        on_line: Callable[[str], None] | None = None,
        on_start: Callable[[int], None] | None = None,
        on_status: Callable[[dict[str, Any]], None] | None = None,
        lowest_priority: bool = True,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.python = list(python)
        self.argv = None if argv is None else list(argv)
        self.on_line = on_line
        self.on_start = on_start
        self.on_status = on_status or (lambda _s: None)
        self.store = BundleStore(cfg.bundle_store, threads=cfg.process.inference_threads)
        self.dir = retrain_dir(cfg)
        self.lowest_priority = lowest_priority  # the daemon: always (False only in offline harnesses)

    def run(self, trigger: str = "manual") -> RetrainOutcome:
        with _lock(self.dir / LOCK) as got:
            if not got:
                return RetrainOutcome(
                    self.clock(),
                    "skipped",
                    "another retrain is running (one at a time); wait for it",
                    self._champion_name(),
                    trigger=trigger,
                )
            t0 = time.monotonic()
            result = self._run(trigger)
            result.seconds = round(time.monotonic() - t0, 2)
            self._record(result)
            return result

    # ---- internals -------------------------------------------------------------------------------------
    def _champion_dir(self) -> Path | None:
        return self.cfg.bundle_path()

    def _champion_name(self) -> str | None:
        d = self._champion_dir()
        if d is None:
            return None
        try:
            return read_manifest(d).version
        except (OSError, ValueError):
            return d.name

    def _run(self, trigger: str) -> RetrainOutcome:
        now = self.clock()
        champ_dir = self._champion_dir()
        champion: Manifest | None = None
        if champ_dir is not None:
            try:
                champion = read_manifest(champ_dir)
            except (OSError, ValueError) as e:
                logger.warning(
                    "retrain: the bundle in service %s is unreadable (%s); training as a first model",
                    champ_dir,
                    e,
                )
                champ_dir = None
        name = champion.version if champion is not None else None
        base = RetrainOutcome(now, "running", "training", name, trigger=trigger)
        self._write_last(base)
        need = self.cfg.learning.retrain.min_new_labels
        if champion is not None:
            since = data_end(champion)
            try:
                new = self._new_labels(since)
            except SQLAlchemyError as e:
                return self._done(
                    base, "failed", f"cannot read the log ({e.__class__.__name__}); check the database"
                )
            base.detail["new_labels"] = new
            if new < need:
                when = (
                    "the start" if since is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(since))
                )
                return self._done(
                    base,
                    "skipped",
                    f"{new} new labels since {when}, need {need} (learning.retrain.min_new_labels)",
                )
        extra = ["--champion", str(champ_dir)] if champ_dir is not None else []
        job = TrainJob(
            self.cfg,
            python=self.python,
            argv=self.argv,
            on_line=self.on_line,
            on_start=self.on_start,
            extra_args=extra,
            promote=lambda out, man: self._gate(out, man, champion, base),
            lowest_priority=self.lowest_priority,
        )
        res = job.run()
        base.detail["train_seconds"] = round(res.seconds, 1)
        base.detail["budget_seconds"] = self.cfg.learning.train.budget_seconds
        base.detail.update({f"trainer_{k}": v for k, v in res.budget_detail().items()})
        if res.peak_rss_mb is not None:
            base.detail["peak_rss_mb"] = round(res.peak_rss_mb, 1)
        if res.outcome in ("promoted", "kept"):
            return self._done(base, res.outcome, res.message)
        if res.outcome == "not enough data":
            return self._done(base, "skipped", res.message)
        return self._done(base, "failed", f"{res.outcome}: {res.message}")

    def _gate(
        self, out: Path, man: Manifest, champion: Manifest | None, base: RetrainOutcome
    ) -> TrainOutcome:
        """Called by the TrainJob with the challenger's bundle directory, before anything is installed."""
        verdict: Verdict = judge(
            man.metrics, has_champion=champion is not None, settings=gate_settings(self.cfg)
        )
        base.challenger = man.version
        base.detail["verdict"] = verdict.as_dict()
        note = {"retrain": {"verdict": verdict.as_dict(), "champion": base.champion, "at": base.at}}
        try:
            if verdict.promote:
                info = self.store.install(out, source="retrain", note=note)
            else:
                info = self.store.install(
                    out, source="retrain", make_current=False, outcome=f"kept: {verdict.reason}", note=note
                )
        except StoreError as e:
            if verdict.promote:
                return TrainOutcome("refused", f"promotion failed, {base.champion} stays in service: {e}")
            return TrainOutcome(
                "kept", f"{verdict.reason} (the challenger was not stored: {e})", manifest=man
            )
        with contextlib.suppress(StoreError):
            self.store.prune(self.cfg.learning.train.keep_versions)
        outcome = "promoted" if verdict.promote else "kept"
        return TrainOutcome(outcome, verdict.reason, info=info, manifest=man)

    def _new_labels(self, since: float | None) -> int:
        engine = side_engine(self.cfg.database_url)
        try:
            metadata.create_all(engine)
            q = select(func.count()).where(
                device_changes.c.source == "person", device_changes.c.learning_paused.is_(False)
            )
            if since is not None:
                q = q.where(device_changes.c.ts > since)
            with engine.connect() as conn:
                return int(conn.execute(q).scalar() or 0)
        finally:
            engine.dispose()

    def _done(self, base: RetrainOutcome, outcome: str, reason: str) -> RetrainOutcome:
        base.outcome, base.reason = outcome, " ".join(reason.split())
        log = logger.warning if outcome == "failed" else logger.info
        log("retrain (%s): %s: %s", base.trigger, outcome, base.reason)
        return base

    def _record(self, r: RetrainOutcome) -> None:
        self._write_last(r)
        engine = side_engine(self.cfg.database_url)
        try:
            metadata.create_all(engine)
            with engine.begin() as conn:
                conn.execute(
                    insert(retrains).values(
                        ts=r.at,
                        outcome=r.outcome,
                        reason=r.reason,
                        champion=r.champion,
                        challenger=r.challenger,
                        trigger=r.trigger,
                        seconds=r.seconds,
                        detail=json.dumps(r.detail),
                    )
                )
        except SQLAlchemyError as e:
            logger.warning(
                "retrain: outcome not recorded in the database (%s); it is in %s", e, self.dir / LAST
            )
        finally:
            engine.dispose()

    def _write_last(self, r: RetrainOutcome) -> None:
        status = r.status()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = self.dir / f"{LAST}.tmp"
            tmp.write_text(json.dumps(status), encoding="utf-8")
            os.replace(tmp, self.dir / LAST)
        except OSError as e:
            logger.warning("retrain: cannot write %s (%s)", self.dir / LAST, e)
        self.on_status(status)


def outcome_dict(r: RetrainOutcome) -> dict[str, Any]:
    return asdict(r)
