"""Agent counters and measurements for the stats topic: message rate, latency percentiles, CPU, RSS."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass

import numpy as np
import psutil


@dataclass
class Counters:
    messages: int = 0  # sensor + state messages handled
    readings: int = 0
    invalid: int = 0
    unknown_topic: int = 0
    decisions: int = 0
    commands: int = 0
    overrides: int = 0
    skipped_stale: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class LatencyStats:
    """Decision latencies (ms) of the last `n` decisions."""

    def __init__(self, n: int = 2000) -> None:
        self._v: deque[float] = deque(maxlen=n)

    def add(self, ms: float) -> None:
        self._v.append(ms)

    def percentiles(self) -> tuple[float | None, float | None]:
        if not self._v:
            return None, None
        a = np.fromiter(self._v, dtype=np.float64)
        p50, p99 = np.percentile(a, [50, 99])
        return round(float(p50), 3), round(float(p99), 3)


class RateMeter:
    """Messages per real second between two `rate()` calls."""

    def __init__(self) -> None:
        self._t = time.monotonic()
        self._n = 0

    def rate(self, total: int) -> float:
        now = time.monotonic()
        dt = max(1e-6, now - self._t)
        r = (total - self._n) / dt
        self._t, self._n = now, total
        return round(r, 2)


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
