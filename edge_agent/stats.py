"""Agent counters and measurements for the stats topic: message rate, latency percentiles (the one
percentile definition: nearest rank), CPU, RSS."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import psutil


@dataclass
class Counters:
    messages: int = 0  # sensor + state messages handled
    readings: int = 0
    invalid: int = 0
    unknown_topic: int = 0
    decisions: int = 0
    commands: int = 0
    commands_disconnected: int = 0  # decided while the broker link was down: not sent, never late
    overrides: int = 0
    skipped_stale: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


class LatencyStats:
    """Decision latencies (ms) of the last `n` decisions."""

    def __init__(self, n: int = 2000) -> None:
        self._v: deque[float] = deque(maxlen=n)

    def add(self, ms: float) -> None:
        self._v.append(ms)

    def percentiles(self) -> tuple[float | None, float | None]:
        if not self._v:
            return None, None
        v = list(self._v)
        return round(percentile(v, 50.0), 3), round(percentile(v, 99.0), 3)


class RateMeter:
    """Messages per real second over the last `span` seconds, from samples of a running total.

    Reading the rate does not reset it: any number of readers (stats topic, live view) see the same figure."""

    def __init__(self, span: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.span = span
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque()

    def note(self, total: int) -> None:
        now = self._clock()
        self._samples.append((now, total))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.span:
            self._samples.popleft()

    def rate(self, total: int | None = None) -> float:
        """The rate over the kept span (noting `total` first when given)."""
        if total is not None:
            self.note(total)
        if len(self._samples) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return round((n1 - n0) / max(1e-6, t1 - t0), 2)


_PROC = psutil.Process()


def rss_mb() -> float:
    return round(_PROC.memory_info().rss / 2**20, 1)


def release_free_memory() -> None:
    """Give the heap freed during start-up (imports, model optimization) back to the OS (glibc only)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass
