"""Training progress: a rich bar on a terminal (steps, loss, windows/s, epoch, ETA), else one line per epoch.

When stderr is not a terminal (a log file, a pipe, the service's journal) a bar would be noise or nothing:
`epoch_line` prints `epoch 3/15 step 1200/6000 train 0.4123 val full 0.3012 coarse 0.3340 41s` instead.
`enabled=False` (--no-progress) prints neither.
"""

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
        self.lines = enabled and not sys.stderr.isatty()  # no terminal: one line per epoch, no bar
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
            disable=not enabled or self.lines,
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

    def epoch_line(
        self, epoch: int, epochs: int, train_loss: float, val_full: float, val_coarse: float
    ) -> None:
        """One line on stderr after an epoch's validation, when there is no bar (not a terminal)."""
        if not self.lines:
            return
        el = time.monotonic() - self.t0
        print(
            f"epoch {epoch}/{epochs} step {self.done}/{self.total} train {train_loss:.4f} "
            f"val full {val_full:.4f} coarse {val_coarse:.4f} {el:.0f}s",
            file=sys.stderr,
            flush=True,
        )
