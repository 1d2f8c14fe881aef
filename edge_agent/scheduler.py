"""Scheduler: the agent's periodic maintenance jobs on APScheduler 3 (retention; later retrain, discovery).

Every job runs with `max_instances=1` (never two at once), `coalesce=True` (missed runs fold into one) and a
`misfire_grace_time` (a job due while the hub was off or busy still runs). Jobs run on real time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

logger = logging.getLogger(__name__)

JOB_DEFAULTS = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 3600}


class Scheduler:
    """A thin owner of one BackgroundScheduler."""

    def __init__(self) -> None:
        self._sched = BackgroundScheduler(job_defaults=JOB_DEFAULTS, daemon=True)

    def every(self, seconds: float, fn: Callable[[], None], job_id: str, *, run_now: bool = False) -> None:
        """Run `fn` every `seconds` (and once at start if `run_now`)."""
        kwargs = {}
        if run_now:
            from datetime import datetime

            kwargs["next_run_time"] = datetime.now()
        self._sched.add_job(fn, "interval", seconds=seconds, id=job_id, replace_existing=True, **kwargs)

    def cron(self, trigger: Any, fn: Callable[[], None], job_id: str, **options: Any) -> None:
        """Run `fn` on an APScheduler trigger (e.g. a CronTrigger in the home's zone); `options` override the
        job defaults (misfire_grace_time, coalesce)."""
        self._sched.add_job(fn, trigger, id=job_id, replace_existing=True, **options)

    def jobs(self) -> list[str]:
        return [j.id for j in self._sched.get_jobs()]

    def start(self) -> None:
        self._sched.start()

    def stop(self) -> None:
        if self._sched.running:
            self._sched.shutdown(wait=False)
