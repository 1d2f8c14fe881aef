"""`build-demo-bundle`: train on a fixed-seed simulated-home history and write `edge_agent/demo_bundle/`.

The runtime's demo and tests use this bundle (they never need torch). Reproducible: the history is generated
from a fixed seed and start date, training is seeded and single-process, version and creation time are fixed
(only the measured latencies in the manifest differ between builds).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import edge_agent
from edge_agent.manifest import Manifest
from edge_agent.simhome import write_history
from training.pipeline import DataSpec, train_bundle
from training.train import TrainConfig

logger = logging.getLogger(__name__)

DEMO_DAYS = 90
DEMO_SEED = 7
DEMO_START = "2023-01-02"  # a Monday in winter: the first 90 days cover winter into spring (daylight shifts)
DEMO_SPLIT = "0.8,0.9"
DEMO_CREATED = "2024-01-01T00:00:00+00:00"


def default_out() -> Path:
    return Path(edge_agent.__file__).parent / "demo_bundle"


def demo_config(seed: int, budget_seconds: float | None, progress: bool) -> TrainConfig:
    """Home-sized settings: 19 channels, 5 devices; ~40k windows an epoch keeps the build to a few minutes."""
    return TrainConfig(window=64, epochs=10, patience=3, max_windows_per_epoch=40_000, seed=seed,
                       budget_seconds=budget_seconds, progress=progress)


def build_demo_bundle(out: Path, days: int = DEMO_DAYS, seed: int = DEMO_SEED, budget_seconds: float | None = None,
                      progress: bool = True) -> Manifest:
    """Generate `days` of simulated history (seed), train, and write the bundle to `out`."""
    with tempfile.TemporaryDirectory(prefix="edge-agent-demo-") as tmp:
        csv = write_history(Path(tmp) / "simhome.csv", days, seed=seed, start=DEMO_START)
        logger.info("simulated %s days of history -> %s", days, csv)
        data = DataSpec(dataset=str(csv), split=DEMO_SPLIT)
        man = train_bundle(data, out, demo_config(seed, budget_seconds, progress),
                           version=f"demo-simhome-{days}d-s{seed}", created=DEMO_CREATED)
    return man
