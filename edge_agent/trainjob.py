"""The training job: `python -m training train` as a child process at the lowest priority, within a time and a
memory budget, its bundle installed into the store on success.

The runtime never imports torch or `training`: only the child does. Before anything else the child's
interpreter is asked whether torch is there (`importlib.util.find_spec`); without it the job is one line
(`TRAIN_EXTRA_HINT`) and nothing else happens. The child runs with nice 19, SCHED_IDLE where the kernel has it,
the idle I/O class (ioprio_set, else `ionice -c3`), its own process group, and RLIMIT_DATA = memory_mb.
RLIMIT_DATA, not RLIMIT_AS: torch maps ~800 MB of shared libraries and thread stacks, so a 1 GB address-space
limit kills even a tiny training (measured here: VmPeak 1418 MB at a peak RSS of 587 MB; RLIMIT_AS 1 GB ->
crash at import, RLIMIT_DATA 1 GB -> trains). The whole run fits the budget: the trainer gets a deadline
(`EDGE_AGENT_TRAIN_DEADLINE`, epoch seconds = start + budget - reserve, training.deadline) its loop plans to
end before, the reserve being room for thresholds, export, quantization and evaluation: twice the post-train
seconds the bundle in service recorded (same home, same history_days), else a tenth of the budget, at least
RESERVE_MIN_SECONDS and at most half the budget. The whole process group is still killed at budget + margin. Its output goes to `<state_dir>/training/train-<stamp>.log`; on failure the
outcome names the cause (crash, timeout, out of memory, not enough data) with the log's last line, and the
bundle in service is untouched.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.bundlestore import BundleStore, StoreError, VersionInfo
from edge_agent.config import AgentConfig
from edge_agent.manifest import Manifest, read_manifest

logger = logging.getLogger(__name__)

TRAIN_EXTRA_HINT = "training needs the training extra: pip install 'edge-agent[train]'"
POLL_SECONDS = 0.25  # how often the parent looks at the child and its log
TERM_GRACE_SECONDS = 5.0  # SIGTERM, then SIGKILL
LOGS_KEPT = 10
_IOPRIO_SET = {"x86_64": 251, "i686": 289, "i386": 289, "aarch64": 30, "riscv64": 30, "armv7l": 314}
_IOPRIO_CLASS_IDLE, _IOPRIO_WHO_PROCESS, _IOPRIO_CLASS_SHIFT = 3, 1, 13
_OOM = re.compile(r"MemoryError|can't allocate memory|Cannot allocate memory|bad_alloc|out of memory", re.I)
DEADLINE_ENV = "EDGE_AGENT_TRAIN_DEADLINE"  # = training.deadline.DEADLINE_ENV (the runtime never imports it)
RESERVE_MIN_SECONDS = 30.0
RESERVE_FACTOR = 2.0  # x the champion's recorded post-train seconds
RESERVE_DEFAULT_SHARE = 0.1  # of the budget, when no post-train time is recorded
_FIND = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec(sys.argv[1]) else 3)"


@dataclass
class TrainOutcome:
    """What one training run did. `outcome`: installed | no torch | not enough data | bad input | crashed |
    timeout | out of memory | refused | busy."""

    outcome: str
    message: str  # one line
    info: VersionInfo | None = None
    manifest: Manifest | None = None
    log: Path | None = None
    seconds: float = 0.0
    peak_rss_mb: float | None = None
    pid: int | None = None
    priority: list[str] = field(default_factory=list)  # what was applied to the child
    reserve_seconds: float | None = None  # budget kept after the trainer's deadline for export/quantize/eval
    budget_use: dict[str, float] = field(default_factory=dict)  # pre/train/post seconds from the manifest

    def budget_detail(self) -> dict[str, float]:
        """The budget use for a retrain's record: reserve, then the trainer's own pre/loop/post seconds."""
        out = {} if self.reserve_seconds is None else {"reserve_seconds": round(self.reserve_seconds, 1)}
        return out | {k: round(v, 1) for k, v in self.budget_use.items()}

    @property
    def ok(self) -> bool:
        return self.outcome == "installed"


def default_margin(budget_seconds: float) -> float:
    """Time after the training loop's budget for export, quantization and evaluation before the kill."""
    return max(120.0, 0.25 * budget_seconds)


def reserve_seconds(budget_seconds: float, post_train_seconds: float | None) -> float:
    """Budget kept after the training loop's deadline (module docstring)."""
    if post_train_seconds is not None and post_train_seconds > 0:
        want = RESERVE_FACTOR * post_train_seconds
    else:
        want = RESERVE_DEFAULT_SHARE * budget_seconds
    return min(max(want, RESERVE_MIN_SECONDS), 0.5 * budget_seconds)


BUDGET_KEYS = ("pre_train_seconds", "train_seconds", "post_train_seconds")


def budget_use(manifest: Manifest | None) -> dict[str, float]:
    """The trainer's recorded pre-train (load), loop and post-train seconds, as far as the manifest has them."""
    metrics = manifest.metrics if manifest is not None else {}
    return {k: float(metrics[k]) for k in BUDGET_KEYS if k in metrics}


def trainer_argv(
    cfg: AgentConfig, out: Path, *, python: Sequence[str], dataset: str | None = None
) -> list[str]:
    """The child command: the home's own log (`db:<database_url>`) unless `dataset` names another."""
    t = cfg.learning.train
    ds = dataset or f"db:{cfg.database_url}"
    argv = [*python, "-m", "training", "-v", "train", "--dataset", ds, "--out", str(out)]
    argv += [
        "--budget-seconds",
        f"{t.budget_seconds:g}",
        "--epochs",
        str(t.epochs),
        "--window",
        str(t.window),
    ]
    if ds.startswith("db:"):
        argv += ["--history-days", f"{t.history_days:g}", "--holdout-days", f"{t.holdout_days:g}"]
        argv += ["--labels", "preference", "--min-labels", str(cfg.learning.readiness.shadow_min_labels)]
        if cfg.learning.retrain.half_life_days is not None:
            argv += ["--half-life-days", f"{cfg.learning.retrain.half_life_days:g}"]
    return [*argv, "--no-progress"]


def has_module(python: Sequence[str], module: str = "torch") -> bool:
    """Whether the interpreter `python` can import `module` (asked in a child: the runtime never imports it)."""
    try:
        r = subprocess.run([*python, "-c", _FIND, module], capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


class TrainJob:
    """One training run for the config `cfg`; `run()` -> TrainOutcome (never raises for a failed child).

    `argv` (internal hook for tests and benches) replaces the trainer command; '{out}' in it becomes the output
    directory. `python` is the child's interpreter prefix; `requires` the module it must have.
    """

    def __init__(
        self,
        cfg: AgentConfig,
        *,
        python: Sequence[str] = (sys.executable,),
        dataset: str | None = None,
        argv: Sequence[str] | None = None,
        requires: str = "torch",
        margin_seconds: float | None = None,
        on_line: Callable[[str], None] | None = None,
        on_start: Callable[[int], None] | None = None,
        extra_args: Sequence[str] = (),
        promote: Callable[[Path, Manifest], TrainOutcome] | None = None,
        lowest_priority: bool = True,
    ) -> None:
        self.cfg = cfg
        self.python = list(python)
        self.dataset = dataset
        self.argv = list(argv) if argv is not None else None
        self.requires = requires
        t = cfg.learning.train
        self.budget = t.budget_seconds
        self.margin = default_margin(t.budget_seconds) if margin_seconds is None else margin_seconds
        self.memory_bytes = t.memory_mb * 1024 * 1024
        self.on_line = on_line or (lambda _line: None)
        self.on_start = on_start or (lambda _pid: None)
        self.work = cfg.state_dir / "training"
        self.extra_args = list(extra_args)  # appended to the trainer command (e.g. --champion DIR)
        self.promote = promote  # replaces the plain install of a trained bundle (the retrain's gate)
        self.lowest_priority = lowest_priority  # False: offline harnesses with no decider to protect
        self.store = BundleStore(cfg.bundle_store, threads=cfg.process.inference_threads)

    def run(self) -> TrainOutcome:
        if not has_module(self.python, self.requires):
            return TrainOutcome("no torch", TRAIN_EXTRA_HINT)
        self.work.mkdir(parents=True, exist_ok=True)
        with self._exclusive() as free:
            if not free:
                return TrainOutcome(
                    "busy", f"a training is already running for {self.cfg.state_dir}; wait for it to finish"
                )
            return self._run()

    # ---- internals -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[bool]:
        fd = os.open(self.work / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def _run(self) -> TrainOutcome:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        out = self.work / f"out-{stamp}-{os.getpid()}"
        log = self.work / f"train-{stamp}.log"
        shutil.rmtree(out, ignore_errors=True)
        if self.argv is not None:
            argv = [a.replace("{out}", str(out)) for a in self.argv]
        else:
            argv = trainer_argv(self.cfg, out, python=self.python, dataset=self.dataset)
        argv += [a.replace("{out}", str(out)) for a in self.extra_args]
        prefix, applied, preexec = self._priority()
        reserve = reserve_seconds(self.budget, self._champion_post_train())
        t0 = time.monotonic()
        env = {**os.environ, DEADLINE_ENV: f"{time.time() + self.budget - reserve:.3f}"}
        logger.info("training: budget %.0fs, the loop ends %.0fs before it", self.budget, reserve)
        with open(log, "wb") as logf:
            try:
                proc = subprocess.Popen(
                    [*prefix, *argv],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: the kill reaches every descendant
                    preexec_fn=preexec,
                )
            except OSError as e:
                return TrainOutcome("crashed", f"cannot start the trainer {argv[0]} ({e.strerror})", log=log)
        logger.info("training: pid %d (%s), log %s", proc.pid, ", ".join(applied), log)
        self.on_start(proc.pid)
        status, rss_kb, timed_out = self._wait(proc, log, t0)
        seconds = time.monotonic() - t0
        result = self._classify(status, timed_out, out, log)
        result.seconds, result.log, result.pid, result.priority = seconds, log, proc.pid, applied
        result.peak_rss_mb = rss_kb / 1024.0 if rss_kb else None
        result.reserve_seconds, result.budget_use = reserve, budget_use(result.manifest)
        shutil.rmtree(out, ignore_errors=True)
        self._prune_logs()
        return result

    def _champion_post_train(self) -> float | None:
        """The post-train seconds the bundle in service recorded (None: no bundle, or none recorded)."""
        current = self.store.current_dir()
        if current is None:
            return None
        try:
            value = read_manifest(current).metrics.get("post_train_seconds")
        except (OSError, ValueError):
            return None
        return float(value) if value is not None else None

    def _priority(self) -> tuple[list[str], list[str], Callable[[], None]]:
        """(command prefix, what is applied, preexec_fn): nice 19, SCHED_IDLE, I/O idle, RLIMIT_DATA."""
        nr = _IOPRIO_SET.get(platform.machine())
        libc = ctypes.CDLL(None, use_errno=True) if nr is not None else None
        prefix: list[str] = []
        applied = ["nice 19", f"memory {self.memory_bytes // (1024 * 1024)} MB (RLIMIT_DATA)"]
        sched_idle = hasattr(os, "SCHED_IDLE")
        if sched_idle:
            applied.append("SCHED_IDLE")
        if libc is not None:
            applied.append("I/O idle (ioprio_set)")
        elif shutil.which("ionice"):
            prefix = ["ionice", "-c3"]
            applied.append("I/O idle (ionice -c3)")
        limit = self.memory_bytes

        if not self.lowest_priority:  # only the memory limit
            prefix, applied = [], applied[1:2]

        def preexec() -> None:  # runs in the child between fork and exec: syscalls only
            if not self.lowest_priority:
                resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
                return
            os.nice(19 - os.nice(0))
            if sched_idle:
                with contextlib.suppress(OSError):
                    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            if libc is not None and nr is not None:
                libc.syscall(nr, _IOPRIO_WHO_PROCESS, 0, _IOPRIO_CLASS_IDLE << _IOPRIO_CLASS_SHIFT)
            resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

        return prefix, applied, preexec

    def _wait(self, proc: subprocess.Popen[bytes], log: Path, t0: float) -> tuple[int, int, bool]:
        """Wait for the child (streaming new log lines to on_line); kill its group past budget + margin.
        Returns (wait status, peak RSS KiB, timed out)."""
        deadline = t0 + self.budget + self.margin
        timed_out = False
        pos, partial = 0, b""
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            pos, partial = self._stream(log, pos, partial)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                if partial:
                    self.on_line(partial.decode(errors="replace"))
                return status, int(usage.ru_maxrss), timed_out
            if not timed_out and time.monotonic() > deadline:
                timed_out = True
                logger.warning(
                    "training: past its budget of %.0fs + %.0fs; stopping it", self.budget, self.margin
                )
                _kill_group(proc.pid, signal.SIGTERM)
                deadline = time.monotonic() + TERM_GRACE_SECONDS
            elif timed_out and time.monotonic() > deadline:
                _kill_group(proc.pid, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(POLL_SECONDS)

    def _stream(self, log: Path, pos: int, partial: bytes) -> tuple[int, bytes]:
        try:
            with open(log, "rb") as f:
                f.seek(pos)
                data = f.read()
        except OSError:
            return pos, partial
        if not data:
            return pos, partial
        lines = (partial + data).split(b"\n")
        for line in lines[:-1]:
            if line.strip():
                self.on_line(line.decode(errors="replace").rstrip())
        return pos + len(data), lines[-1]

    def _classify(self, status: int, timed_out: bool, out: Path, log: Path) -> TrainOutcome:
        code = os.waitstatus_to_exitcode(status)
        last = last_line(log)
        where = f"(log {log})"
        current = self.store.current_name() or "no model"
        if timed_out:
            return TrainOutcome(
                "timeout",
                f"training timed out: stopped after its budget of {self.budget:.0f}s + {self.margin:.0f}s; "
                f"{current} stays in service; raise learning.train.budget_seconds {where}",
            )
        tail = tail_text(log)
        if code != 0 and (_OOM.search(tail) or code == -signal.SIGKILL):
            return TrainOutcome(
                "out of memory",
                f"training ran out of memory (limit {self.memory_bytes // (1024 * 1024)} MB): {last}; "
                f"{current} stays in service; raise learning.train.memory_mb or lower history_days {where}",
            )
        if code == 2:
            kind = "not enough data" if "not enough data" in last else "bad input"
            return TrainOutcome(
                kind, f"training refused its input: {last}; {current} stays in service {where}"
            )
        if code != 0:
            how = f"signal {-code}" if code < 0 else f"exit {code}"
            return TrainOutcome(
                "crashed", f"training crashed ({how}): {last}; {current} stays in service {where}"
            )
        try:
            manifest = read_manifest(out)
        except (OSError, ValueError) as e:
            return TrainOutcome(
                "crashed",
                f"training exited 0 but wrote no readable bundle in {out} ({e.__class__.__name__}); "
                f"{current} stays in service {where}",
            )
        if self.promote is not None:
            return self.promote(out, manifest)
        try:
            info = self.store.install(out, source="train")
        except StoreError as e:
            return TrainOutcome("refused", f"the new bundle was refused: {e}", manifest=manifest)
        return TrainOutcome(
            "installed", f"installed {info.name}: {info.summary()}", info=info, manifest=manifest
        )

    def _prune_logs(self) -> None:
        logs = sorted(self.work.glob("train-*.log"))
        for old in logs[:-LOGS_KEPT]:
            old.unlink(missing_ok=True)


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def tail_text(log: Path, size: int = 8192) -> str:
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - size))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def last_line(log: Path) -> str:
    """The log's last non-empty line, one line, at most 300 characters ('no output' when empty)."""
    lines = [ln.strip() for ln in tail_text(log).splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"
