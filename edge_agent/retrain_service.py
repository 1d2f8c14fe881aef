"""The running daemon's side of retraining: the nightly schedule, the MQTT buttons, one worker thread.

- Schedule: `learning.retrain.cron` in the home's `timezone` on the agent's APScheduler (max_instances=1,
  coalesce, misfire_grace_seconds). The in-memory scheduler forgets a run missed while the hub was off, so at
  start a scheduled time within the grace that this state directory already existed for, and that no retrain
  has followed, is run once (trigger `missed`).
- `edge-agent/<id>/retrain/set` (any payload) -> retrain now; `edge-agent/<id>/rollback/set` (`PRESS` or empty
  -> the version before the one in service, else a version name) -> rollback. `offer()` is what the decider
  calls per message: a dict lookup and a queue put, never the work itself.
- The work (Retrainer.run: the training child at the lowest priority; BundleStore.rollback: a test inference)
  runs on the `retrain` worker thread; a promoted or rolled-back version is then picked up by `pickup`
  (the agent's bundle watcher: loaded off the decider thread, swapped between two decisions).
- `status()` is the stats topic's `last_retrain` (refreshed from `<state_dir>/retrain/last.json` by `refresh`,
  so a retrain run from the CLI shows up too).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from edge_agent.bundlestore import BundleStore, StoreError
from edge_agent.config import AgentConfig
from edge_agent.retrain import Retrainer, read_last, retrain_dir

logger = logging.getLogger(__name__)

PRESS = {"", "press", "previous"}
MAX_PAYLOAD = 256
SINCE = "schedule.json"


def retrain_topics(cfg: AgentConfig) -> dict[str, str]:
    base = f"edge-agent/{cfg.agent_id}"
    return {f"{base}/retrain/set": "retrain", f"{base}/rollback/set": "rollback"}


def parse_button(payload: bytes) -> str:
    """A button's payload -> its argument: PRESS, a version name, a JSON string or {"version": NAME}."""
    text = payload.decode("utf-8", errors="replace").strip()
    if text[:1] in ('"', "{"):
        try:
            obj = json.loads(text)
        except ValueError:
            return text
        if isinstance(obj, str):
            return obj.strip()
        if isinstance(obj, dict):
            return str(obj.get("version") or "").strip()
    return text


def previous_version(store: BundleStore) -> str | None:
    """The version to roll back to: the parent of the one in service, else the one installed before it."""
    current = store.current_name()
    versions = [v for v in store.versions() if v.problem is None]
    names = [v.name for v in versions]
    cur = next((v for v in versions if v.name == current), None)
    if cur is not None and cur.parent in names and cur.parent != current:
        return cur.parent
    if current in names:
        i = names.index(current)
        return names[i - 1] if i > 0 else None
    return names[-1] if names else None


def missed_run(
    cron: str, tz: str, grace: float, now: float, since: float | None, last_at: float | None
) -> float | None:
    """The scheduled time (epoch s) of a run missed within `grace` before `now`, after `since` (the state
    directory's first scheduled start) and not followed by a retrain (`last_at`); else None."""
    if since is None:
        return None
    trig = CronTrigger.from_crontab(cron, timezone=tz)
    start = datetime.fromtimestamp(now - grace).astimezone(trig.timezone)
    end = datetime.fromtimestamp(now).astimezone(trig.timezone)
    found, prev = None, None
    while True:
        t = trig.get_next_fire_time(prev, start if prev is None else prev + timedelta(seconds=1))
        if t is None or t > end:
            break
        found, prev = t, t
    if found is None:
        return None
    at = found.timestamp()
    if at <= since or (last_at is not None and last_at >= at):
        return None
    return at


class RetrainService:
    """Owned by the Agent: `offer(topic, payload)`, `schedule(scheduler)`, `start()`, `stop()`, `status()`."""

    def __init__(
        self,
        cfg: AgentConfig,
        *,
        pickup: Callable[[], None],
        clock: Callable[[], float] = time.time,
        retrainer: Retrainer | None = None,
    ) -> None:
        self.cfg = cfg
        self.topics = retrain_topics(cfg)
        self.pickup = pickup
        self.clock = clock
        self._child: int | None = None
        self.retrainer = Retrainer(cfg, clock=clock)
        self.use(retrainer or self.retrainer)
        self.store = BundleStore(cfg.bundle_store, threads=cfg.process.inference_threads)
        self._jobs: queue.Queue[tuple[str, str]] = queue.Queue(maxsize=4)
        self._status: dict[str, Any] | None = read_last(cfg)
        self._thread = threading.Thread(target=self._work, name="retrain", daemon=True)
        self._stop = threading.Event()
        self.done = threading.Event()  # set after each job (tests wait on it)
        self.results: list[Any] = []  # outcomes of the jobs run (RetrainOutcome or a rollback line)

    def use(self, retrainer: Retrainer) -> None:
        """Run retrains with `retrainer` (tests and benches give one with another trainer command)."""
        retrainer.on_status = self._set_status
        retrainer.on_start = self._started
        self.retrainer = retrainer

    # ---- the decider's side: cheap ----------------------------------------------------------------------
    def offer(self, topic: str, payload: bytes) -> bool:
        """True if the message is one of ours (then queued for the worker); never blocks."""
        what = self.topics.get(topic)
        if what is None:
            return False
        if len(payload) > MAX_PAYLOAD:
            logger.warning(
                "%s: payload of %d bytes ignored; send PRESS or a version name", topic, len(payload)
            )
            return True
        self.submit(what, parse_button(payload), "mqtt")
        return True

    def submit(self, what: str, arg: str = "", trigger: str = "manual") -> bool:
        try:
            self._jobs.put_nowait((what, f"{trigger}\t{arg}"))
        except queue.Full:
            logger.warning("retrain: %s ignored, %d requests already waiting", what, self._jobs.qsize())
            return False
        return True

    def status(self) -> dict[str, Any] | None:
        return self._status

    # ---- lifecycle ---------------------------------------------------------------------------------------
    def schedule(self, add_cron: Callable[..., None]) -> None:
        """Register the nightly job (`add_cron(trigger, fn, job_id, misfire_grace_time=, coalesce=)`) and run
        a missed one now."""
        r = self.cfg.learning.retrain
        if not r.enabled:
            return
        trig = CronTrigger.from_crontab(r.cron, timezone=self.cfg.timezone)
        add_cron(
            trig,
            lambda: self.submit("retrain", "", "schedule"),
            "retrain",
            misfire_grace_time=int(r.misfire_grace_seconds),
            coalesce=r.coalesce,
        )
        now = self.clock()
        since = self._since(now)
        last = self._status.get("at") if isinstance(self._status, dict) else None
        missed = missed_run(r.cron, self.cfg.timezone, r.misfire_grace_seconds, now, since, last)
        if missed is not None:
            logger.info(
                "retrain: the run due at %s was missed (hub off?); running it now", time.ctime(missed)
            )
            self.submit("retrain", "", "missed")

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker; a training child still running is stopped (its process group, SIGTERM)."""
        self._stop.set()
        child = self._child
        if child is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child, signal.SIGTERM)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def refresh(self) -> None:
        """Re-read the last status (a retrain from the CLI); call off the decider thread."""
        self._status = read_last(self.cfg)

    # ---- the worker ------------------------------------------------------------------------------------
    def _started(self, pid: int) -> None:
        self._child = pid

    def _set_status(self, status: dict[str, Any]) -> None:
        self._status = status

    def _since(self, now: float) -> float | None:
        path = retrain_dir(self.cfg) / SINCE
        try:
            return float(json.loads(path.read_text(encoding="utf-8"))["since"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"since": now}), encoding="utf-8")
        except OSError as e:
            logger.warning("retrain: cannot write %s (%s)", path, e)
        return None

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                what, packed = self._jobs.get(timeout=0.5)
            except queue.Empty:
                continue
            trigger, arg = packed.split("\t", 1)
            try:
                if what == "retrain":
                    result: Any = self.retrainer.run(trigger)
                    self._child = None
                    if result.outcome == "promoted":
                        self.pickup()
                else:
                    result = self._rollback(arg)
                self.results.append(result)
            except Exception:  # thread boundary: the daemon goes on deciding
                logger.exception("retrain worker: unexpected error in %s (the model in service stays)", what)
            finally:
                self.done.set()

    def _rollback(self, arg: str) -> str:
        target = None if arg.lower() in PRESS else arg
        if target is None:
            target = previous_version(self.store)
            if target is None:
                logger.warning(
                    "rollback: no earlier version in %s; the one in service stays", self.store.root
                )
                return "rollback: no earlier version"
        try:
            info = self.store.rollback(target)
        except StoreError as e:
            logger.warning("rollback: %s", e)
            return f"rollback refused: {e}"
        self.pickup()
        logger.info("rollback: %s is in service", info.name)
        return f"rollback: {info.name}"
