"""The shadow score from the agent's database: rows in, per-device figures out (edge_agent.shadow_score).

`compute(cfg, now)` reads the last `learning.shadow_score.days` of `decisions` and `device_changes` from the
agent's own database (read-only; WAL lets the running recorder write meanwhile). `ShadowScoreJob` is the
running agent's periodic job: its latest result is the stats topic's `shadow_score`; a database error is one
rate-limited line and the previous result stays. `edge-agent shadow-score` prints the same figures.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from edge_agent.config import AgentConfig
from edge_agent.ingest import LogLimiter
from edge_agent.recorder import decisions, device_changes, side_engine
from edge_agent.shadow_score import (
    DeviceShadowScore,
    ShadowDecision,
    StateChange,
    score_shadow,
)

logger = logging.getLogger(__name__)


def tolerances(cfg: AgentConfig) -> dict[str, float]:
    """Per configured device, how close a person's value must be to agree: half a step for setpoints."""
    return {d.name: d.setpoint_step / 2 for d in cfg.devices if d.own_kind() == "setpoint"}


def read_rows(engine: Engine, since: float) -> tuple[list[ShadowDecision], list[StateChange]]:
    """The decisions and device changes with ts >= since, oldest first."""
    d, c = decisions.c, device_changes.c
    with engine.connect() as conn:
        dec = [
            ShadowDecision(float(r.ts), r.device, float(r.target), r.mode, r.reason)
            for r in conn.execute(
                select(d.ts, d.device, d.target, d.mode, d.reason).where(d.ts >= since).order_by(d.ts)
            )
        ]
        chg = [
            StateChange(float(r.ts), r.device, float(r.value), r.source, bool(r.learning_paused))
            for r in conn.execute(
                select(c.ts, c.device, c.value, c.source, c.learning_paused)
                .where(c.ts >= since)
                .order_by(c.ts)
            )
        ]
    return dec, chg


def compute(cfg: AgentConfig, now: float, days: float | None = None) -> dict[str, DeviceShadowScore]:
    """Per device with shadow decisions in the last `days` (default: the config's): its shadow score.
    Raises SQLAlchemyError when the database cannot be read."""
    s = cfg.learning.shadow_score
    since = now - (days if days is not None else s.days) * 86400.0
    engine = side_engine(cfg.database_url)
    try:
        dec, chg = read_rows(engine, since)
    finally:
        engine.dispose()
    return score_shadow(dec, chg, horizon_s=s.horizon_seconds, tolerance=tolerances(cfg))


class ShadowScoreJob:
    """The running agent's shadow score: `run()` on the scheduler, `status()` for the stats topic."""

    def __init__(self, cfg: AgentConfig, clock: Callable[[], float]) -> None:
        self.cfg = cfg
        self.clock = clock
        self._latest: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._limiter = LogLimiter(3600.0)
        self.errors = 0

    def run(self) -> None:
        try:
            scores = compute(self.cfg, self.clock())
        except SQLAlchemyError as e:
            self.errors += 1
            self._limiter.log(
                logger,
                logging.WARNING,
                "read",
                time.monotonic(),
                "shadow score: cannot read the database (%s); the previous figures stay",
                str(e).splitlines()[0][:200],
            )
            return
        with self._lock:
            self._latest = {dev: s.as_dict() for dev, s in scores.items()} or None

    def status(self) -> dict[str, Any] | None:
        with self._lock:
            return self._latest
