"""Recorder: WAL SQLite, batched writer thread, urgent overrides, agent_state upsert, retention job."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import text

from edge_agent.recorder import Recorder, retention_job
from edge_agent.scheduler import JOB_DEFAULTS, Scheduler

pytestmark = pytest.mark.integration


def test_batched_rows_flushed_and_wal(tmp_path: Path) -> None:
    """Rows land in one batch; flush() waits for them; the file is in WAL mode."""
    rec = Recorder(f"sqlite:///{tmp_path / 'a.db'}", flush_interval=30.0, batch_rows=10_000)
    for i in range(1000):
        rec.add("readings", {"ts": float(i), "channel": "x.t", "value": 1.0})
    assert rec.flush(5.0)
    assert rec.count("readings") == 1000
    with rec.engine.connect() as c:
        assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    rec.close()


def test_override_committed_without_waiting_for_the_batch(tmp_path: Path) -> None:
    """An override (training label) is committed at once even with a long flush interval."""
    rec = Recorder(f"sqlite:///{tmp_path / 'a.db'}", flush_interval=60.0, batch_rows=10_000)
    rec.add("overrides", {"ts": 1.0, "device": "l", "value": 0.0, "previous": 1.0})
    deadline = time.monotonic() + 5
    while rec.count("overrides") == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rec.count("overrides") == 1
    rec.close()


def test_agent_state_upsert(tmp_path: Path) -> None:
    """agent_state keeps the latest value per key, across recorder instances."""
    url = f"sqlite:///{tmp_path / 'a.db'}"
    rec = Recorder(url)
    rec.set_state("k", {"a": 1}, 1.0)
    rec.set_state("k", {"a": 2}, 2.0)
    rec.flush()
    rec.set_state("k", {"a": 3}, 3.0)
    rec.close()
    rec2 = Recorder(url)
    assert rec2.get_state("k") == {"a": 3} and rec2.get_state("nope") is None
    rec2.close()


def test_full_queue_drops_and_counts(tmp_path: Path) -> None:
    """A full queue drops rows and counts them instead of blocking the caller."""
    rec = Recorder(f"sqlite:///{tmp_path / 'a.db'}", queue_size=100)
    for i in range(5000):
        rec.add("readings", {"ts": float(i), "channel": "c", "value": 0.0})
    rec.flush()
    assert rec.dropped > 0 and rec.count("readings") + rec.dropped == 5000
    rec.close()


def test_retention_deletes_old_readings_via_scheduler(tmp_path: Path) -> None:
    """The retention job, run by the scheduler, deletes readings older than the limit only."""
    rec = Recorder(f"sqlite:///{tmp_path / 'a.db'}")
    now = 10 * 86400.0
    rec.add("readings", {"ts": now - 3 * 86400, "channel": "c", "value": 0.0})
    rec.add("readings", {"ts": now - 1 * 86400, "channel": "c", "value": 0.0})
    rec.flush()
    s = Scheduler()
    s.every(3600, retention_job(rec, lambda: now, days=2), "retention", run_now=True)
    assert JOB_DEFAULTS["max_instances"] == 1 and s.jobs() == ["retention"]
    s.start()
    deadline = time.monotonic() + 5
    while rec.count("readings") != 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    s.stop()
    rec.flush()
    assert rec.count("readings") == 1
    rec.close()


def test_an_override_without_its_hold_state_still_holds_after_restart(tmp_path: Path) -> None:
    """Killed after the override row was committed but before the hold state was: the restarted agent
    reads the override and holds the device anyway (issue 19 item 3)."""
    from conftest import agent_config_dict
    from testbundle import home_bundle

    from edge_agent.agent import Agent
    from edge_agent.config import parse_config

    cfg = parse_config(agent_config_dict(home_bundle(tmp_path / "b"), 1, tmp_path / "state"))
    now = time.time()
    rec = Recorder(cfg.database_url)
    rec.add("overrides", {"ts": now - 10, "device": "living.light", "value": 0.0, "hold_until": now + 590})
    rec.add("overrides", {"ts": now - 900, "device": "bedroom.fan", "value": 1.0, "hold_until": now - 300})
    rec.close()
    agent = Agent(cfg)
    try:
        held = {d.name: d.tracker.held(now) for d in agent.devices}
        assert held == {"living.light": True, "bedroom.fan": False, "living.heating": False}
        assert agent.devices[0].tracker.held_until == now + 590
    finally:
        agent.recorder.close()


def test_a_full_database_counts_every_lost_row_and_keeps_the_overrides(tmp_path: Path) -> None:
    """SQLite's own 'database or disk is full' (max_page_count caps the file): readings are lost and
    counted, the override and the hold state are kept and written once there is room again."""
    from sqlalchemy import event

    url = f"sqlite:///{tmp_path / 'full.db'}"
    rec = Recorder(url, flush_interval=0.05, batch_rows=200)
    limit = {"pages": 0}

    @event.listens_for(rec.engine, "connect")
    def _cap(dbapi_con, _rec) -> None:  # type: ignore[no-untyped-def]
        if limit["pages"]:
            dbapi_con.execute(f"PRAGMA max_page_count={limit['pages']}")

    with rec.engine.connect() as c:
        pages = int(c.execute(text("PRAGMA page_count")).scalar() or 0)
    limit["pages"] = pages + 1
    rec.engine.dispose()  # new connections get the cap
    for i in range(3000):
        rec.add("readings", {"ts": float(i), "channel": "c" * 100, "value": 0.0})
    rec.add("overrides", {"ts": 1.0, "device": "l", "value": 0.0, "previous": 1.0, "hold_until": 99.0})
    rec.set_state("holds", {"l": {"held_until": 99.0}}, 1.0)
    assert rec.flush()
    assert rec.dropped > 0 and rec.errors > 0
    limit["pages"] = 10**9
    rec.engine.dispose()
    assert rec.flush() and rec.flush()  # the next commits retry the kept rows
    assert rec.count("overrides") == 1 and rec.get_state("holds") == {"l": {"held_until": 99.0}}
    assert rec.count("readings") + rec.dropped == 3000  # every reading is either written or counted lost
    rec.close()


def test_the_database_is_not_world_readable(tmp_path: Path) -> None:
    rec = Recorder(f"sqlite:///{tmp_path / 'db' / 'a.db'}")
    rec.add("readings", {"ts": 1.0, "channel": "c", "value": 0.0})
    rec.close()
    for f in (tmp_path / "db").iterdir():
        assert f.stat().st_mode & 0o007 == 0, f


def test_one_agent_per_state_directory(tmp_path: Path) -> None:
    """A second lock on the same state directory is refused with the owner's pid; released, it is free."""
    import os

    from edge_agent.statelock import StateLock, StateLockError

    a, b = StateLock(tmp_path), StateLock(tmp_path)
    a.acquire()
    with pytest.raises(StateLockError, match=f"pid {os.getpid()}"):
        b.acquire()
    a.release()
    b.acquire()
    b.release()
