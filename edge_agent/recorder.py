"""Recorder: the SQLAlchemy Core schema and a single writer thread that batches rows into the database.

Callers never wait on disk: `add(table, row)` puts the row in a bounded queue (full -> dropped and counted).
The writer commits every `flush_interval_seconds` or `batch_rows` rows; overrides (the training labels) and
model versions are committed at once. SQLite gets WAL + synchronous=NORMAL through a connect event. All
timestamps are epoch-float seconds of the agent's clock. `flush()` waits until everything queued is written.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from edge_agent.effects import Record, StateRecord

logger = logging.getLogger(__name__)

metadata = MetaData()

readings = Table(
    "readings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ts", Float, nullable=False, index=True),
    Column("channel", String(128), nullable=False),
    Column("value", Float, nullable=False),
)
decisions = Table(
    "decisions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ts", Float, nullable=False, index=True),
    Column("device", String(128), nullable=False),
    Column("output", Float, nullable=False),  # raw model output
    Column("target", Float, nullable=False),  # value after policy (hysteresis, clamps)
    Column("confidence", Float),
    Column("sent", Boolean, nullable=False),
    Column("reason", String(32), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("tier", String(16), nullable=False),
    Column("trigger", String(160)),
    Column("model_version", String(128), nullable=False),
    Column("latency_ms", Float),
    Column("attention", Text),  # JSON: [[channel, weight], ...] top channels
)
commands = Table(
    "commands",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ts", Float, nullable=False, index=True),
    Column("device", String(128), nullable=False),
    Column("topic", String(256), nullable=False),
    Column("payload", Text, nullable=False),
    Column("value", Float, nullable=False),
    Column(
        "status", String(32), nullable=False
    ),  # sent | dropped-disconnected | expired | dropped-queue-full
)
overrides = Table(
    "overrides",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ts", Float, nullable=False, index=True),
    Column("device", String(128), nullable=False),
    Column("value", Float, nullable=False),  # what the person set: the label
    Column("previous", Float),
    Column("agent_target", Float),  # the agent's last decided value for the device
    Column("agent_output", Float),  # the model's raw output then
    Column("decision_ts", Float),
    Column("model_version", String(128)),
    Column("hold_until", Float),
)
device_changes = Table(
    "device_changes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ts", Float, nullable=False, index=True),
    Column("device", String(128), nullable=False),
    Column("value", Float, nullable=False),
    Column("previous", Float),
    Column("source", String(160), nullable=False),  # initial | agent | person | automation:<name>
    Column("learning_paused", Boolean, nullable=False),
)
switches = Table(
    "switches",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ts", Float, nullable=False, index=True),
    Column("name", String(32), nullable=False),  # pause_learning | pause_control
    Column("value", Boolean, nullable=False),
)
model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", String(128), nullable=False),
    Column("loaded_at", Float, nullable=False),
    Column("path", Text, nullable=False),
    Column("manifest", Text, nullable=False),
)
tier_changes = Table(
    "tier_changes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ts", Float, nullable=False),
    Column("old", String(16), nullable=False),
    Column("new", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("signal", String(32), nullable=False),
    Column("value", Float),
)
suggestions = Table(  # suggest mode: what was offered and what became of it (edge_agent.suggest)
    "suggestions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ts", Float, nullable=False, index=True),  # when the outcome happened
    Column("device", String(128), nullable=False),
    Column("created", Float, nullable=False),  # when it was suggested
    Column("value", Float, nullable=False),  # what was suggested
    Column("basis", Float),  # the device's state then
    Column("outcome", String(16), nullable=False),  # accepted | rejected | ignored | stale
    Column("reason", Text, nullable=False),
    Column("model_version", String(128), nullable=False),
)
retrains = Table(  # one row per retrain (edge_agent.retrain), written by the retrain itself
    "retrains",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ts", Float, nullable=False, index=True),
    Column("outcome", String(16), nullable=False),  # promoted | kept | skipped | failed
    Column("reason", Text, nullable=False),
    Column("champion", String(128)),
    Column("challenger", String(128)),
    Column("trigger", String(32), nullable=False),  # schedule | manual | mqtt | missed
    Column("seconds", Float),
    Column("detail", Text),  # JSON: the gate's verdict, new labels, peak RSS
)
agent_state = Table(
    "agent_state",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated", Float, nullable=False),
)

URGENT_TABLES = frozenset({"overrides", "model_versions", "device_changes", "switches", "suggestions"})
KEEP_ON_FAILURE = frozenset(
    {"overrides", "model_versions", "agent_state", "device_changes", "switches", "suggestions"}
)  # retried, never dropped
RETRY_MAX_ROWS = 10_000
_STOP = object()


def side_engine(url: str) -> Engine:
    """A short-lived engine on the agent's database for a job beside the recorder (retrain, shadow score), with
    a busy timeout. Not `make_engine`: that opens and closes the file itself, and closing any descriptor of a
    SQLite file drops every POSIX lock this process holds on it (the running daemon's recorder writes in this
    process: "disk I/O error")."""
    if url.startswith("sqlite"):
        return create_engine(url, connect_args={"timeout": 10.0})
    return create_engine(url)


def make_engine(url: str) -> Engine:
    """Engine for `url`; SQLite gets its directory created and WAL + synchronous=NORMAL + busy timeout."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        _private_file(Path(url.removeprefix("sqlite:///")))
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_con: Any, _rec: Any) -> None:
            cur = dbapi_con.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

    return engine


def _private_file(path: Path) -> None:
    """Create the SQLite file (and its directory) readable by the service's user and group only (0640;
    SQLite gives the -wal/-shm files the same mode): the log says when people are home."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o640))
    mode = path.stat().st_mode & 0o777
    if mode & 0o007:
        path.chmod(mode & 0o770)


class Recorder:
    """Owns the engine and the writer thread."""

    def __init__(
        self, url: str, *, flush_interval: float = 1.0, batch_rows: int = 500, queue_size: int = 100_000
    ) -> None:
        self.url = url
        self.engine = make_engine(url)
        metadata.create_all(self.engine)
        self.flush_interval = flush_interval
        self.batch_rows = batch_rows
        self._q: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self.dropped = 0
        self.written = 0
        self.errors = 0
        self._retry: dict[str, list[dict[str, Any]]] = {}
        self._failing = 0  # consecutive failed commits
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    # ---- producers (any thread) ------------------------------------------------------------------------
    def write(self, record: Record) -> None:
        """Queue one typed record (`edge_agent.effects`); urgent ones are committed at once."""
        urgent = record.URGENT or (isinstance(record, StateRecord) and record.urgent)
        self.add(record.TABLE, record.row(), urgent=urgent)

    def add(self, table: str, row: dict[str, Any], *, urgent: bool = False) -> None:
        """Queue one row; urgent rows (overrides, holds, model versions) wait briefly for room rather than drop."""
        urgent = urgent or table in URGENT_TABLES
        try:
            if urgent:
                self._q.put((table, row, True), timeout=2.0)
            else:
                self._q.put_nowait((table, row, False))
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                logger.warning(
                    "recorder: write queue full, %d rows dropped so far (disk too slow?)", self.dropped
                )

    def call(self, fn: Callable[[Connection], None]) -> None:
        """Run `fn(conn)` on the writer thread in its own transaction (retention and other maintenance)."""
        self._q.put(("__call__", fn, False))

    def set_state(self, key: str, value: Any, now: float) -> None:
        """Upsert agent_state[key] = JSON(value)."""
        self.add("agent_state", {"key": key, "value": json.dumps(value), "updated": now})

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is committed."""
        done = threading.Event()
        try:
            self._q.put(("__flush__", done, False), timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        self.flush(timeout)
        self._q.put(_STOP)
        self._thread.join(timeout)
        self.engine.dispose()

    def queue_depth(self) -> int:
        return self._q.qsize()

    # ---- readers ---------------------------------------------------------------------------------------
    def get_state(self, key: str) -> Any:
        with self.engine.connect() as conn:
            v = conn.execute(select(agent_state.c.value).where(agent_state.c.key == key)).scalar()
        return None if v is None else json.loads(v)

    def override_holds(self, now: float) -> dict[str, float]:
        """device -> hold_until of the newest override per device whose hold is still running (a restart
        after a crash that lost the `holds` state still holds those devices)."""
        q = select(overrides.c.device, func.max(overrides.c.hold_until)).group_by(overrides.c.device)
        with self.engine.connect() as conn:
            return {d: float(h) for d, h in conn.execute(q) if h is not None and h > now}

    def label_counts(self) -> dict[str, int]:
        """device -> the person's changes recorded while learning was not paused (labels collected)."""
        q = (
            select(device_changes.c.device, func.count())
            .where(device_changes.c.source == "person", device_changes.c.learning_paused.is_(False))
            .group_by(device_changes.c.device)
        )
        with self.engine.connect() as conn:
            return {d: int(n) for d, n in conn.execute(q)}

    def count(self, table: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(metadata.tables[table])).scalar() or 0)

    # ---- writer thread ---------------------------------------------------------------------------------
    def _run(self) -> None:
        pending: dict[str, list[dict[str, Any]]] = {}
        n = 0
        deadline = time.monotonic() + self.flush_interval
        while True:
            timeout = max(0.0, deadline - time.monotonic())
            try:
                item = self._q.get(timeout=timeout)
            except queue.Empty:
                item = None
            now_commit = False
            if item is _STOP:
                self._commit(pending)
                return
            if item is not None:
                kind, payload, urgent = item
                if kind == "__flush__":
                    self._commit(pending)
                    pending, n = {}, 0
                    payload.set()
                    continue
                if kind == "__call__":
                    self._commit(pending)
                    pending, n = {}, 0
                    self._guarded(payload)
                    continue
                pending.setdefault(kind, []).append(payload)
                n += 1
                now_commit = urgent or n >= self.batch_rows
            if now_commit or time.monotonic() >= deadline:
                self._commit(pending)
                pending, n = {}, 0
                deadline = time.monotonic() + self.flush_interval

    def _guarded(self, fn: Callable[[Connection], None]) -> None:
        try:
            with self.engine.begin() as conn:
                fn(conn)
        except SQLAlchemyError as e:
            self.errors += 1
            logger.error("recorder: maintenance job failed: %s", e)

    def _commit(self, pending: dict[str, list[dict[str, Any]]]) -> None:
        """Write one batch. On failure every lost row is counted in `dropped`; the rows that must never be
        lost (overrides, holds and other agent state, model versions) are kept and retried with the next
        batch (up to RETRY_MAX_ROWS), so a full disk costs readings and decisions, not a person's hold."""
        for table, rows in self._retry.items():
            pending.setdefault(table, [])[:0] = rows
        self._retry = {}
        if not pending:
            return
        try:
            with self.engine.begin() as conn:
                for table, rows in pending.items():
                    if not rows:
                        continue
                    if table == "agent_state":
                        latest = {r["key"]: r for r in rows}
                        conn.execute(delete(agent_state).where(agent_state.c.key.in_(list(latest))))
                        conn.execute(insert(agent_state), list(latest.values()))
                    else:
                        conn.execute(insert(metadata.tables[table]), rows)
            self.written += sum(len(r) for r in pending.values())
            if self._failing:
                logger.warning("recorder: writing again after %d failed commits", self._failing)
                self._failing = 0
        except Exception as e:  # SQLAlchemyError (disk full, locked, gone) or worse: never let the writer die
            self.errors += 1
            self._failing += 1
            kept = {t: r for t, r in pending.items() if t in KEEP_ON_FAILURE}
            n_kept = sum(len(r) for r in kept.values())
            if n_kept <= RETRY_MAX_ROWS:
                self._retry = kept
            else:
                n_kept = 0
            lost = sum(len(r) for r in pending.values()) - n_kept
            self.dropped += lost
            full = "full" in str(e).lower()
            if self._failing == 1 or self._failing % 100 == 0:
                logger.error(
                    "recorder: commit failed%s (%s): %d rows lost (%d in total), %d kept to retry "
                    "(overrides, holds); the agent goes on deciding%s",
                    " — the disk is full" if full else "",
                    str(e).splitlines()[0][:200],
                    lost,
                    self.dropped,
                    n_kept,
                    "; free space under the state directory" if full else "",
                )


def retention_job(rec: Recorder, clock: Callable[[], float], days: float) -> Callable[[], None]:
    """A scheduler job that deletes readings older than `days` (on the writer thread)."""

    def job() -> None:
        cutoff = clock() - days * 86400.0

        def _delete(conn: Connection) -> None:
            res = conn.execute(delete(readings).where(readings.c.ts < cutoff))
            if res.rowcount:
                logger.info("retention: deleted %d readings older than %.0f days", res.rowcount, days)

        rec.call(_delete)

    return job
