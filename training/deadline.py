"""The training loop's deadline: how many optimizer steps still fit before it (pure, clock injected).

The training job (edge_agent.trainjob) gives the trainer an absolute deadline, epoch seconds, = its start +
`learning.train.budget_seconds` - a reserve for what runs after the loop (thresholds, distillation, export,
quantization, the held-out evaluation). The loop measures its own pace (seconds per optimizer step, seconds
per validation pass) and `LoopDeadline.fit` shrinks the planned steps so the last epoch's validation ends
before the deadline; the schedule is then rebuilt for the new length (training.train). A plan cut on a slow
pace grows back, never past the plan the loop started with (`cap`): the first pace is measured over a few
steps, and on a shared hub those can run at a third of the loop's later speed (measured in the retrain proof:
plans cut from 1,716 to 554 steps that then ended with 1,514 s of the deadline unused).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

DEADLINE_ENV = "EDGE_AGENT_TRAIN_DEADLINE"  # epoch seconds the training loop must end by (set by trainjob)
PROBE_STEPS = 10  # steps timed before the first plan
VAL_COST = 0.5  # a validation window costs about this share of a training window before it is measured
SAFETY = 0.05  # share of the time left kept free of planned steps (pace noise on a shared machine)
MIN_STEPS = 1


def deadline_from_env(environ: dict[str, str] | None = None) -> float | None:
    """The deadline the training job set (`EDGE_AGENT_TRAIN_DEADLINE`, epoch seconds), or None."""
    text = (os.environ if environ is None else environ).get(DEADLINE_ENV, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(
            f"{DEADLINE_ENV}={text!r} is not a number of epoch seconds; unset it or give e.g. 1735700000"
        ) from None
    return value if math.isfinite(value) else None


class LoopDeadline:
    """Steps that fit before `deadline` (epoch seconds; None = no deadline) at the loop's measured pace."""

    def __init__(self, deadline: float | None, clock: Callable[[], float] = time.time) -> None:
        self.deadline = deadline
        self.clock = clock
        self.replans = 0

    def left(self) -> float:
        return math.inf if self.deadline is None else self.deadline - self.clock()

    def passed(self) -> bool:
        return self.left() <= 0

    def fit(
        self,
        step: int,
        total: int,
        step_seconds: float,
        steps_per_epoch: int,
        val_seconds: float | None,
        val_windows: int,
        batch: int,
        cap: int | None = None,
    ) -> int:
        """The new total of steps (<= `cap`, default `total`; > `step` unless past the deadline) so that the
        remaining steps and one validation pass per epoch they span end before the deadline. `val_seconds`: a
        measured validation pass, None = estimated from the step pace (VAL_COST x val_windows / batch steps).
        `cap` > `total`: the plan the loop started with, which a plan cut earlier may grow back to."""
        cap = total if cap is None else max(cap, total)
        if self.deadline is None or step >= cap:
            return total
        left = self.left() * (1.0 - SAFETY)
        if left <= 0:
            return step
        val = (
            val_seconds if val_seconds is not None else VAL_COST * val_windows / max(batch, 1) * step_seconds
        )
        per_step = max(step_seconds, 1e-9) + val / max(steps_per_epoch, 1)  # validation spread over an epoch
        fit = int(left / per_step)
        new = min(cap, step + max(fit, MIN_STEPS))
        if new != total:
            self.replans += 1
        return new
