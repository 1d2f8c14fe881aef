"""A rich progress bar for the training loop: step count, loss, windows/s, epoch and ETA (budget-aware)."""

from __future__ import annotations

import sys
import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class TrainProgress:
    """Context manager; `step(loss=, windows=, epoch=)` after every optimizer step."""

    def __init__(self, total_steps: int, budget_seconds: float | None, enabled: bool = True) -> None:
        self.total = total_steps
        self.budget = budget_seconds
        self.enabled = enabled
        self.t0 = time.monotonic()
        self.done = 0
        self._progress = Progress(
            TextColumn("[bold]train[/] ep {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TextColumn("{task.fields[rate]:.0f} win/s"),
            TimeElapsedColumn(),
            TextColumn("ETA {task.fields[eta]}"),
            console=Console(file=sys.stderr),
            disable=not enabled,
            transient=False,
        )
        self._task = None

    def __enter__(self) -> TrainProgress:
        self._progress.__enter__()
        self._task = self._progress.add_task(
            "train", total=self.total, epoch=0, loss=float("nan"), rate=0.0, eta="?"
        )
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.__exit__(et, ev, tb)

    def step(self, *, loss: float, windows: int, epoch: int) -> None:
        self.done += 1
        el = time.monotonic() - self.t0
        left = (self.total - self.done) * el / self.done
        if self.budget is not None:
            left = min(left, max(self.budget - el, 0.0))
        eta = f"{int(left) // 60}:{int(left) % 60:02d}"
        self._progress.update(
            self._task, advance=1, epoch=epoch, loss=loss, rate=windows / max(el, 1e-9), eta=eta
        )
