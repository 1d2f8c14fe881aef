"""The agent's own process priority: niceness, CPU affinity, and the inference thread count setting.

The cheap levers before any model tier (DESIGN.md, stack-probe §4): one intra-op thread for onnxruntime, the
competing heavy work (retraining) at nice 19, and optionally the agent's own niceness/affinity. Applying a
setting never stops the agent: a refusal (e.g. lowering the niceness without CAP_SYS_NICE, an affinity naming
a CPU that does not exist) is one warning line and the setting is left as it was.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import psutil
from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)


class ProcessPrioritySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nice: int | None = Field(
        default=None,
        ge=-20,
        le=19,
        description="Niceness to set for the agent process (-20..19; lower needs CAP_SYS_NICE); null = leave",
    )
    cpu_affinity: list[int] | None = Field(
        default=None, description="CPUs the agent may run on, e.g. [1]; null = leave as started"
    )
    inference_threads: int = Field(
        default=1,
        ge=1,
        le=64,
        description="onnxruntime intra-op threads; 1 is fastest at batch 1 on a busy hub",
    )


def apply_process_priority(
    nice: int | None, cpu_affinity: list[int] | None, *, pid: int | None = None
) -> dict[str, Any]:
    """Set niceness and CPU affinity of `pid` (default: this process).

    Returns {"nice": value set or None, "cpu_affinity": CPUs set or None, "current_nice": ...,
    "current_cpu_affinity": ...}. Each failure is one warning and leaves that setting unchanged.
    """
    applied: dict[str, Any] = {"nice": None, "cpu_affinity": None}
    try:
        proc = psutil.Process(pid if pid is not None else os.getpid())
    except (psutil.Error, ValueError) as e:
        logger.warning("process priority: cannot find process %s (%s); nothing applied", pid, e)
        applied.update(current_nice=None, current_cpu_affinity=None)
        return applied

    if nice is not None:
        try:
            if isinstance(nice, bool) or not isinstance(nice, int) or not -20 <= nice <= 19:
                raise ValueError(f"niceness must be an integer in -20..19, got {nice!r}")
            proc.nice(nice)
            applied["nice"] = proc.nice()
            logger.info("process priority: niceness set to %s", applied["nice"])
        except (psutil.Error, OSError, ValueError) as e:
            logger.warning(
                "process priority: could not set niceness %r (%s); keeping %s", nice, e, _safe(proc.nice)
            )

    if cpu_affinity is not None:
        try:
            cpus = _check_affinity(cpu_affinity)
            proc.cpu_affinity(cpus)
            applied["cpu_affinity"] = sorted(proc.cpu_affinity())
            logger.info("process priority: CPU affinity set to %s", applied["cpu_affinity"])
        except (psutil.Error, OSError, ValueError, AttributeError, TypeError) as e:
            logger.warning(
                "process priority: could not set CPU affinity %r (%s); keeping %s",
                cpu_affinity,
                e,
                _safe(proc.cpu_affinity),
            )

    applied["current_nice"] = _safe(proc.nice)
    applied["current_cpu_affinity"] = _safe(proc.cpu_affinity)
    return applied


def _check_affinity(cpu_affinity: list[int]) -> list[int]:
    if not isinstance(cpu_affinity, list | tuple) or not cpu_affinity:
        raise ValueError("cpu_affinity must be a non-empty list of CPU numbers")
    if any(isinstance(c, bool) or not isinstance(c, int) for c in cpu_affinity):
        raise ValueError("cpu_affinity must hold integers")
    allowed = (
        set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    )
    unknown = sorted(set(cpu_affinity) - allowed)
    if unknown:
        raise ValueError(f"CPUs {unknown} not available (allowed: {sorted(allowed)})")
    return sorted(set(cpu_affinity))


def _safe(getter: Any) -> Any:
    try:
        value = getter()
    except (psutil.Error, OSError, AttributeError):
        return None
    return sorted(value) if isinstance(value, list) else value
