"""The training job with real child processes: success (installed), crash, timeout (the process group killed),
out of memory, not enough data, no torch; the child's priority and memory limit read from /proc."""

from __future__ import annotations

import ctypes
import os
import platform
import sys
import textwrap
from pathlib import Path
from typing import Any

from conftest import wait_until
from testbundle import home_bundle

from edge_agent.bundlestore import BundleStore
from edge_agent.config import AgentConfig, parse_config
from edge_agent.trainjob import TRAIN_EXTRA_HINT, TrainJob, trainer_argv

IOPRIO_GET = {"x86_64": 252, "aarch64": 31}


def config(tmp: Path, **train: Any) -> AgentConfig:
    return parse_config(
        {
            "agent_id": "tj",
            "state_dir": str(tmp / "state"),
            "learning": {"train": {"budget_seconds": 60, "memory_mb": 512, **train}},
        }
    )


def script(tmp: Path, body: str) -> Path:
    p = tmp / "trainer.py"
    p.write_text("import os, shutil, sys, time\n" + textwrap.dedent(body))
    return p


def with_a_bundle_in_service(cfg: AgentConfig, tmp: Path) -> BundleStore:
    store = BundleStore(cfg.bundle_store)
    store.install(home_bundle(tmp / "old", version="old-1"))
    return store


def test_success_installs_the_bundle_and_streams_the_log(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    store = with_a_bundle_in_service(cfg, tmp_path)
    src = home_bundle(tmp_path / "new", version="new-2")
    fake = script(
        tmp_path,
        """
        print("epoch 1/1 loss 0.25", flush=True)
        shutil.copytree(sys.argv[1], sys.argv[2])
        print("wrote", sys.argv[2])
        """,
    )
    lines: list[str] = []
    r = TrainJob(cfg, argv=[sys.executable, str(fake), str(src), "{out}"], on_line=lines.append).run()
    assert r.ok and r.outcome == "installed", r.message
    assert (
        r.info is not None
        and r.info.name == "new-2"
        and r.info.parent == "old-1"
        and r.info.source == "train"
    )
    assert store.current_name() == "new-2"
    assert lines[0] == "epoch 1/1 loss 0.25" and lines[1].startswith("wrote ")
    assert r.log is not None and "epoch 1/1" in r.log.read_text()
    assert r.peak_rss_mb is not None and r.peak_rss_mb > 1
    assert not list((cfg.state_dir / "training").glob("out-*"))  # the child's output dir is gone


def test_child_priority_and_memory_limit(tmp_path: Path) -> None:
    """Read while the child runs: nice 19, SCHED_IDLE, idle I/O class, RLIMIT_DATA = memory_mb."""
    cfg = config(tmp_path, memory_mb=384)
    go = tmp_path / "go"
    fake = script(
        tmp_path,
        f"""
        deadline = time.monotonic() + 30
        while not os.path.exists({str(go)!r}) and time.monotonic() < deadline:
            time.sleep(0.01)
        sys.exit(1)
        """,
    )
    seen: dict[str, Any] = {}

    def inspect(pid: int) -> None:
        limits = Path(f"/proc/{pid}/limits").read_text().splitlines()
        seen["data"] = next(ln for ln in limits if ln.startswith("Max data size")).split()[3:5]
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, pid)
        seen["sched"] = os.sched_getscheduler(pid)
        nr = IOPRIO_GET.get(platform.machine())
        if nr is not None:
            seen["ioclass"] = ctypes.CDLL(None, use_errno=True).syscall(nr, 1, pid) >> 13
        go.touch()

    r = TrainJob(cfg, argv=[sys.executable, str(fake)], on_start=inspect).run()
    assert r.outcome == "crashed"
    assert seen["data"] == [str(384 * 1024 * 1024)] * 2
    assert seen["nice"] == 19 and seen["sched"] == os.SCHED_IDLE
    if "ioclass" in seen:
        assert seen["ioclass"] == 3  # IOPRIO_CLASS_IDLE
    assert "RLIMIT_DATA" in " ".join(r.priority) and "SCHED_IDLE" in r.priority


def test_crash_leaves_the_current_bundle(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    store = with_a_bundle_in_service(cfg, tmp_path)
    fake = script(tmp_path, 'print("loading"); raise RuntimeError("boom in epoch 3")\n')
    r = TrainJob(cfg, argv=[sys.executable, str(fake)]).run()
    assert r.outcome == "crashed" and not r.ok
    assert "exit 1" in r.message and "RuntimeError: boom in epoch 3" in r.message
    assert "old-1 stays in service" in r.message and "\n" not in r.message
    assert store.current_name() == "old-1" and [v.name for v in store.versions()] == ["old-1"]


def test_timeout_kills_the_process_group(tmp_path: Path) -> None:
    cfg = config(tmp_path, budget_seconds=0.5)
    store = with_a_bundle_in_service(cfg, tmp_path)
    pidfile = tmp_path / "grandchild.pid"
    fake = script(
        tmp_path,
        f"""
        import subprocess
        g = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        open({str(pidfile)!r}, "w").write(str(g.pid))
        print("training forever", flush=True)
        time.sleep(120)
        """,
    )
    r = TrainJob(cfg, argv=[sys.executable, str(fake)], margin_seconds=1.0).run()
    assert r.outcome == "timeout" and "timed out" in r.message and "old-1 stays in service" in r.message
    assert r.seconds < 30
    grandchild = int(pidfile.read_text())
    wait_until(lambda: not alive(grandchild), timeout=10)  # killed with its process group
    assert store.current_name() == "old-1"


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for init to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_out_of_memory_is_named(tmp_path: Path) -> None:
    cfg = config(tmp_path, memory_mb=256)
    store = with_a_bundle_in_service(cfg, tmp_path)
    fake = script(tmp_path, "big = bytearray(600 * 1024 * 1024)\n")
    r = TrainJob(cfg, argv=[sys.executable, str(fake)]).run()
    assert r.outcome == "out of memory", r.message
    assert (
        "limit 256 MB" in r.message and "MemoryError" in r.message and "learning.train.memory_mb" in r.message
    )
    assert store.current_name() == "old-1"


def test_not_enough_data_is_one_line(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    fake = script(
        tmp_path,
        'print("error: not enough data: 3 events for device living.light, need 10", file=sys.stderr)\n'
        "sys.exit(2)\n",
    )
    r = TrainJob(cfg, argv=[sys.executable, str(fake)]).run()
    assert r.outcome == "not enough data"
    assert "not enough data: 3 events for device living.light, need 10" in r.message
    assert BundleStore(cfg.bundle_store).current_name() is None


def test_without_torch_one_line_and_nothing_else(tmp_path: Path) -> None:
    """An interpreter that cannot see site-packages (-S) lacks torch: the hint, no log, no store."""
    cfg = config(tmp_path)
    fake = script(tmp_path, "open(sys.argv[1], 'w').write('ran')\n")
    marker = tmp_path / "ran"
    r = TrainJob(cfg, python=[sys.executable, "-S"], argv=[sys.executable, str(fake), str(marker)]).run()
    assert r.outcome == "no torch" and r.message == TRAIN_EXTRA_HINT
    assert not marker.exists() and not cfg.state_dir.exists()


def test_trainer_argv_reads_the_home_log_with_the_config_budget(tmp_path: Path) -> None:
    cfg = config(tmp_path, history_days=14, holdout_days=3, epochs=4, window=32)
    argv = trainer_argv(cfg, tmp_path / "out", python=["py"])
    assert argv[:5] == ["py", "-m", "training", "-v", "train"]
    assert argv[argv.index("--dataset") + 1] == f"db:sqlite:///{tmp_path / 'state' / 'edge-agent.db'}"
    pairs = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}
    assert (
        pairs["--history-days"] == "14"
        and pairs["--holdout-days"] == "3"
        and pairs["--labels"] == "preference"
    )
    assert pairs["--budget-seconds"] == "60" and pairs["--epochs"] == "4" and pairs["--window"] == "32"
    assert pairs["--min-labels"] == str(cfg.learning.readiness.shadow_min_labels)
    other = trainer_argv(cfg, tmp_path / "out", python=["py"], dataset="h.csv")
    assert "--history-days" not in other and other[other.index("--dataset") + 1] == "h.csv"
