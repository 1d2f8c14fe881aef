"""onnxruntime sessions and latency measurement, set up exactly as the runtime runs them (1 intra-op thread):
the session options are the runtime's own (`edge_agent.inference.session_options`).

Shared by export (latency written into the manifest), evaluation (per-tier latency vs torch eager in the
same run) and `bench/bench_inference.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge_agent.inference import open_session

WARMUP = 50  # runs discarded before timing (allocator, caches)


def make_session(path: Path | str, threads: int = 1) -> ort.InferenceSession:
    """The daemon's session on `path` (`edge_agent.inference.open_session`: its SessionOptions, 1 intra-op
    thread, contract inputs/outputs checked; BundleError naming the file otherwise)."""
    return open_session(path, threads)


def run_session(
    sess: ort.InferenceSession, x: np.ndarray, mask: np.ndarray, channel_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(devices [B, D], confidence [B, D], attention [B, D, C]) for x [B, C, T], mask [B, C], ids [B, C]."""
    out = sess.run(
        ["devices", "confidence", "attention"],
        {
            "x": np.ascontiguousarray(x, dtype=np.float32),
            "mask": np.ascontiguousarray(mask, dtype=np.float32),
            "channel_ids": np.ascontiguousarray(channel_ids, dtype=np.int64),
        },
    )
    return out[0], out[1], out[2]


def run_batched(
    sess: ort.InferenceSession,
    x: np.ndarray,
    mask: np.ndarray,
    channel_ids: np.ndarray,
    batch: int = 512,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`run_session` over a large batch in chunks (bounded memory)."""
    parts = [
        run_session(sess, x[i : i + batch], mask[i : i + batch], channel_ids[i : i + batch])
        for i in range(0, len(x), batch)
    ]
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(3))  # type: ignore[return-value]


def time_calls(fn: Callable[[int], object], n: int, warmup: int = WARMUP) -> dict[str, float]:
    """p50/p99/mean wall time in microseconds of `fn(i)` over n timed calls after `warmup` calls."""
    for i in range(warmup):
        fn(i)
    times = np.empty(n, dtype=np.float64)
    for i in range(n):
        t0 = time.perf_counter_ns()
        fn(i)
        times[i] = (time.perf_counter_ns() - t0) / 1000.0
    return {
        "p50": float(np.percentile(times, 50)),
        "p99": float(np.percentile(times, 99)),
        "mean": float(times.mean()),
    }


def ort_latency(
    sess: ort.InferenceSession, x: np.ndarray, mask: np.ndarray, channel_ids: np.ndarray, n: int = 1000
) -> dict[str, float]:
    """Batch-1 latency (us) cycling through the given pool of windows x [N, C, T]."""
    feeds = [
        {
            "x": x[i : i + 1].astype(np.float32),
            "mask": mask[i : i + 1].astype(np.float32),
            "channel_ids": channel_ids[i : i + 1].astype(np.int64),
        }
        for i in range(len(x))
    ]
    names = ["devices", "confidence", "attention"]
    return time_calls(lambda i: sess.run(names, feeds[i % len(feeds)]), n)
