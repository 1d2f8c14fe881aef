"""One retrain (edge_agent.retrain) with real child processes, a real bundle store and a real SQLite file:
promoted / kept by the gate / skipped on too few new labels; a child that crashes, times out or is SIGKILLed,
a disk full during promotion, a second retrain while one runs, a retrain process killed while it holds the
lock: the champion serves on and the store stays consistent. The trainer here is a small script that writes a
real bundle with chosen held-out metrics (the real trainer is tests/test_retrain_train.py's)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select
from testbundle import home_bundle

from edge_agent.bundlestore import BundleStore, StoreError
from edge_agent.config import AgentConfig, parse_config
from edge_agent.recorder import device_changes, make_engine, metadata, retrains
from edge_agent.retrain import Retrainer, lock_held, read_last, retrain_dir
from edge_agent.retrain_service import missed_run, previous_version

T0 = 1_717_192_800.0

TRAINER = """
import json, os, shutil, sys, time
src, out, version, metrics = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
assert sys.argv[5] == "--champion" and os.path.isdir(sys.argv[6]), sys.argv
mode = os.environ.get("FAKE_TRAINER", "ok")
if mode == "crash":
    raise RuntimeError("boom in epoch 3")
if mode == "hang":
    print("epoch 1", flush=True)
    time.sleep(600)
if mode == "sigkill":
    os.kill(os.getpid(), 9)
shutil.copytree(src, out)
m = json.load(open(os.path.join(out, "manifest.json")))
m["version"], m["metrics"] = version, metrics
json.dump(m, open(os.path.join(out, "manifest.json"), "w"))
print("wrote", out, flush=True)
"""


def config(tmp: Path, **retrain: Any) -> AgentConfig:
    return parse_config(
        {
            "agent_id": "rt",
            "state_dir": str(tmp / "state"),
            "timezone": "Europe/Brussels",
            "learning": {
                "train": {"budget_seconds": 60, "memory_mb": 512},
                "retrain": {"min_new_labels": 3, "margin": 0.01, "tolerance": 0.02, **retrain},
            },
        }
    )


def champion(cfg: AgentConfig, tmp: Path, data_end: float = T0) -> BundleStore:
    store = BundleStore(cfg.bundle_store)
    store.install(home_bundle(tmp / "champ", version="champ-1", metrics={"data_end": data_end}))
    return store


def person_changes(cfg: AgentConfig, times: list[float]) -> None:
    eng = make_engine(cfg.database_url)
    metadata.create_all(eng)
    with eng.begin() as c:
        for t in times:
            c.execute(
                insert(device_changes).values(
                    ts=t,
                    device="living.light",
                    value=1.0,
                    previous=0.0,
                    source="person",
                    learning_paused=False,
                )
            )
    eng.dispose()


def heldout(chal: dict[str, float], champ: dict[str, float], labels: int = 200) -> dict[str, float]:
    m: dict[str, float] = {"champion_evaluated": 1.0, "data_end": T0 + 86400}
    for d, a in chal.items():
        m[f"holdout_agreement.{d}"], m[f"holdout_labels.{d}"] = a, labels
    for d, a in champ.items():
        m[f"champion_holdout_agreement.{d}"], m[f"champion_holdout_labels.{d}"] = a, labels
    return m


def retrainer(cfg: AgentConfig, tmp: Path, version: str, metrics: dict[str, float], **kw: Any) -> Retrainer:
    script = tmp / "trainer.py"
    script.write_text(textwrap.dedent(TRAINER))
    src = home_bundle(tmp / f"src-{version}", version=version)
    argv = [sys.executable, str(script), str(src), "{out}", version, json.dumps(metrics)]
    return Retrainer(cfg, argv=argv, clock=lambda: T0 + 2 * 86400, **kw)


def rows(cfg: AgentConfig) -> list[Any]:
    eng = make_engine(cfg.database_url)
    with eng.connect() as c:
        out = list(c.execute(select(retrains).order_by(retrains.c.id)))
    eng.dispose()
    return out


def consistent(store: BundleStore) -> list[str]:
    """The store's version names, after checking nothing half-written is left."""
    left = [p.name for p in store.root.iterdir() if p.name.startswith((".incoming-", ".current-"))]
    assert left == [], left
    return [v.name for v in store.versions()]


ALL = {"living.light": 0.95, "bedroom.fan": 0.90, "living.heating": 0.92}
OLD = {"living.light": 0.85, "bedroom.fan": 0.90, "living.heating": 0.92}


def test_better_challenger_is_promoted_and_recorded(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    store = champion(cfg, tmp_path)
    person_changes(cfg, [T0 + 3600 * k for k in range(1, 6)])
    statuses: list[dict[str, Any]] = []
    r = retrainer(cfg, tmp_path, "chal-2", heldout(ALL, OLD), on_status=statuses.append).run("manual")
    assert r.outcome == "promoted", r.reason
    assert r.champion == "champ-1" and r.challenger == "chal-2" and "better" in r.reason
    assert store.current_name() == "chal-2"
    assert statuses[0]["outcome"] == "running" and statuses[-1]["outcome"] == "promoted"
    h = json.loads((store.root / "store.json").read_text())
    assert h["chal-2"]["parent"] == "champ-1" and h["chal-2"]["source"] == "retrain"
    assert h["chal-2"]["retrain"]["verdict"]["promote"] is True
    assert h["champ-1"]["outcome"] == "replaced by chal-2"
    (row,) = rows(cfg)
    assert row.outcome == "promoted" and row.challenger == "chal-2" and row.trigger == "manual"
    assert json.loads(row.detail)["new_labels"] == 5
    last = read_last(cfg)
    assert last is not None and last["outcome"] == "promoted" and last["at"] == T0 + 2 * 86400
    assert set(last) == {"at", "outcome", "reason", "champion", "challenger"}


def test_a_device_worse_keeps_the_champion_and_the_challenger_with_its_reason(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    store = champion(cfg, tmp_path)
    person_changes(cfg, [T0 + 3600 * k for k in range(1, 6)])
    worse = dict(ALL, **{"bedroom.fan": 0.80})
    r = retrainer(cfg, tmp_path, "chal-2", heldout(worse, OLD)).run("schedule")
    assert r.outcome == "kept" and r.reason.startswith("bedroom.fan worse"), r.reason
    assert store.current_name() == "champ-1"
    v = {x.name: x for x in store.versions()}
    assert v["chal-2"].outcome.startswith("kept: bedroom.fan worse") and not v["chal-2"].current
    assert rows(cfg)[0].outcome == "kept"


def test_too_few_new_labels_is_skipped_without_training(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    store = champion(cfg, tmp_path, data_end=T0 + 10 * 3600)
    person_changes(cfg, [T0 + 3600 * k for k in range(1, 12)])  # only 1 after the champion's data
    rt = retrainer(cfg, tmp_path, "chal-2", heldout(ALL, OLD))
    r = rt.run("schedule")
    assert r.outcome == "skipped" and "1 new labels" in r.reason and "need 3" in r.reason
    assert consistent(store) == ["champ-1"] and store.current_name() == "champ-1"
    assert not (cfg.state_dir / "training").exists()  # no child was started
    assert rows(cfg)[0].outcome == "skipped"


@pytest.mark.parametrize(
    ("mode", "word"), [("crash", "crashed"), ("sigkill", "signal 9"), ("hang", "timed out")]
)
def test_a_failed_child_leaves_the_champion_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, word: str
) -> None:
    cfg = config(tmp_path)
    if mode == "hang":
        cfg.learning.train.budget_seconds = 1.0
    store = champion(cfg, tmp_path)
    person_changes(cfg, [T0 + 3600 * k for k in range(1, 6)])
    monkeypatch.setenv("FAKE_TRAINER", mode)
    rt = retrainer(cfg, tmp_path, "chal-2", heldout(ALL, OLD))
    if mode == "hang":
        from edge_agent import trainjob

        monkeypatch.setattr(trainjob, "default_margin", lambda _b: 1.0)
    r = rt.run("manual")
    assert r.outcome == "failed", r.reason
    assert word in r.reason or (mode == "sigkill" and "out of memory" in r.reason), r.reason
    assert "champ-1 stays in service" in r.reason
    assert consistent(store) == ["champ-1"] and store.current_name() == "champ-1"
    assert rows(cfg)[-1].outcome == "failed"
    assert not lock_held(cfg)  # released


def test_disk_full_during_promotion_keeps_the_old_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config(tmp_path)
    store = champion(cfg, tmp_path)
    person_changes(cfg, [T0 + 3600 * k for k in range(1, 6)])
    real_write = os.write
    calls = {"n": 0}

    def full_copy(self: BundleStore, src: Path, dst: Path) -> None:  # the first file lands, then ENOSPC
        calls["n"] += 1
        (dst / "manifest.json").write_bytes((src / "manifest.json").read_bytes())
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(BundleStore, "_copy_verified", full_copy)
    r = retrainer(cfg, tmp_path, "chal-2", heldout(ALL, OLD)).run("manual")
    assert calls["n"] == 1 and os.write is real_write
    assert r.outcome == "failed" and "disk full" in r.reason and "champ-1 stays in service" in r.reason
    assert consistent(store) == ["champ-1"] and store.current_name() == "champ-1"


def test_a_second_retrain_is_refused_while_one_holds_the_lock(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    champion(cfg, tmp_path)
    person_changes(cfg, [T0 + 3600 * k for k in range(1, 6)])
    lock = retrain_dir(cfg) / ".lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            f"open({str(retrain_dir(cfg) / 'last.json')!r}, 'w').write("
            '\'{"at": 1, "outcome": "running", "reason": "training", "champion": "champ-1", "challenger": null}\')\n'
            "print('held', flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        assert lock_held(cfg)
        r = retrainer(cfg, tmp_path, "chal-2", heldout(ALL, OLD)).run("mqtt")
        assert r.outcome == "skipped" and "another retrain is running" in r.reason
        assert read_last(cfg)["outcome"] == "running"  # type: ignore[index]
    finally:
        holder.send_signal(signal.SIGKILL)  # a retrain killed while holding the lock
        holder.wait()
    assert not lock_held(cfg)  # the kernel released it with the process
    assert read_last(cfg)["outcome"] == "failed"  # type: ignore[index]  # its `running` reads as died
    r = retrainer(cfg, tmp_path, "chal-3", heldout(ALL, OLD)).run("manual")
    assert r.outcome == "promoted", r.reason


def test_rollback_refuses_a_corrupt_or_missing_version_by_name(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    store = champion(cfg, tmp_path)
    store.install(home_bundle(tmp_path / "b", version="ver-B"))
    store.install(home_bundle(tmp_path / "c", version="ver-C"))
    assert previous_version(store) == "ver-B"
    (store.root / "ver-B" / "model_int8.onnx").write_bytes(b"not a model")
    with pytest.raises(StoreError, match="'ver-B' refused, ver-C stays in service"):
        store.rollback("ver-B")
    (store.root / "champ-1" / "manifest.json").unlink()
    with pytest.raises(StoreError, match="'champ-1' refused"):
        store.rollback("champ-1")
    with pytest.raises(StoreError, match="no version 'nope'"):
        store.rollback("nope")
    assert store.current_name() == "ver-C"


def test_missed_run_within_the_grace_after_the_state_dir_existed() -> None:
    tz = "Europe/Brussels"
    at_0330 = 1_717_205_400.0  # 2024-06-01 03:30 CEST
    grace = 6 * 3600.0
    assert missed_run("30 3 * * *", tz, grace, at_0330 + 3600, at_0330 - 86400, None) == at_0330
    assert missed_run("30 3 * * *", tz, grace, at_0330 + 3600, at_0330 - 86400, at_0330 + 10) is None  # ran
    assert missed_run("30 3 * * *", tz, grace, at_0330 + 7 * 3600, at_0330 - 86400, None) is None  # too late
    assert missed_run("30 3 * * *", tz, grace, at_0330 + 3600, at_0330 + 60, None) is None  # installed after
    assert missed_run("30 3 * * *", tz, grace, at_0330 + 3600, None, None) is None  # first start ever


def test_the_nightly_job_in_the_agent_and_a_missed_run_at_start(tmp_path: Path) -> None:
    from conftest import agent_config_dict

    from edge_agent.agent import Agent

    data = agent_config_dict(tmp_path / "unused", 1, tmp_path / "state")
    data.pop("bundle")
    data["timezone"] = "Europe/Brussels"
    data["learning"] = {"retrain": {"cron": "15 2 * * *", "misfire_grace_seconds": 7200}}
    cfg = parse_config(data)
    at_0215 = 1_717_200_900.0  # 2024-06-01 02:15 CEST
    d = retrain_dir(cfg)
    d.mkdir(parents=True)
    (d / "schedule.json").write_text(json.dumps({"since": at_0215 - 86400}))
    agent = Agent(cfg, clock=lambda: at_0215 + 1800)  # the hub was off at 02:15, back at 02:45
    job = agent.scheduler._sched.get_job("retrain")
    assert job is not None and str(job.trigger.timezone) == "Europe/Brussels"
    assert str(job.trigger.fields[job.trigger.FIELD_NAMES.index("hour")]) == "2"
    assert job.misfire_grace_time == 7200 and job.coalesce is True
    assert agent.scheduler._sched._job_defaults["max_instances"] == 1
    assert agent.retrain._jobs.get_nowait() == ("retrain", "missed\t")  # queued for the worker
    assert (
        "edge-agent/t1/retrain/set" in agent.link.subscriptions
        and "edge-agent/t1/rollback/set" in agent.link.subscriptions
    )
    agent.recorder.close()
