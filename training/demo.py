"""`build-demo-bundle`: train on a fixed-seed simulated home and write `simhome/demo_bundle/`.

The runtime's demo and tests use this bundle (they never need torch). The history comes from
`training.simexplore` (devices driven by an exploring behaviour policy, labels = the person's preference),
not from `simhome.write_history` (labels = the state in effect): trained on the latter, the model learned
that lamp light in the illuminance means "keep the lamp on" and never switched a light on in closed loop.
After training, the int8 tier drives the simulated home for two winter and two summer days
(`training.closedloop`) and the agreement with the person's preference is written into the manifest metrics
(`closed_loop_<season>_agreement*`). Then every tier's event test (`training.tierevents`): the result is in each
tier's `event_check`, and a tier that fails it is not offered on the runtime's ladder.
`python -m training evaluate simhome/demo_bundle` regenerates the same history (dataset
`simexplore:days=365,seed=7,start=2023-01-02` in training.json) and evaluates every tier on its test split.

Reproducible: fixed seed and start date, seeded single-process training, fixed version and creation time
(only the measured latencies in the manifest differ between builds).
"""

from __future__ import annotations

import logging
from pathlib import Path

import simhome
from edge_agent.manifest import Manifest, write_manifest
from training.closedloop import closed_loop
from training.pipeline import DataSpec, simexplore_name, train_bundle
from training.tierevents import event_report, mark_ladder, summary
from training.train import TrainConfig

logger = logging.getLogger(__name__)

DEMO_DAYS = 365
DEMO_SEED = 7
DEMO_START = "2023-01-02"  # a Monday; a year: every season's daylight, the summer fan, the winter heating
DEMO_SPLIT = "0.8,0.9"
DEMO_CREATED = "2024-01-01T00:00:00+00:00"
CLOSED_LOOP_HOURS = 48.0
CLOSED_LOOP_STARTS = {"winter": "2023-01-16T06:00", "summer": "2023-06-19T06:00"}
CLOSED_LOOP_SEED = 101  # another household day plan than the training history's


def default_out() -> Path:
    return Path(simhome.__file__).parent / "demo_bundle"


def demo_config(seed: int, budget_seconds: float | None, progress: bool) -> TrainConfig:
    """Home-sized settings: 19 channels, 5 devices; 30k windows an epoch keeps the build to a few minutes.

    Humidity keeps its level here (the person's fan preference reads felt temperature = T + 0.1 (RH - 50)).
    """
    return TrainConfig(
        window=64,
        epochs=16,
        patience=3,
        max_windows_per_epoch=30_000,
        batch=256,
        seed=seed,
        level_free_kinds=("co2",),
        budget_seconds=budget_seconds,
        progress=progress,
    )


def build_demo_bundle(
    out: Path,
    days: int = DEMO_DAYS,
    seed: int = DEMO_SEED,
    budget_seconds: float | None = None,
    progress: bool = True,
) -> Manifest:
    """Generate `days` of explored simulated history (seed), train, check in closed loop, write `out`."""
    data = DataSpec(dataset=simexplore_name(days, seed, DEMO_START), split=DEMO_SPLIT)
    man = train_bundle(
        data,
        out,
        demo_config(seed, budget_seconds, progress),
        version=f"demo-simhome-{days}d-s{seed}",
        created=DEMO_CREATED,
    )
    loop: dict[str, float] = {}
    for season, start in CLOSED_LOOP_STARTS.items():
        res = closed_loop(out, man, "int8", hours=CLOSED_LOOP_HOURS, seed=CLOSED_LOOP_SEED, start=start)
        loop |= {k.replace("closed_loop_", f"closed_loop_{season}_"): round(v, 4) for k, v in res.items()}
    logger.info("closed loop: %s", loop)
    man = man.model_copy(update={"metrics": man.metrics | loop})
    write_manifest(out, man)
    return event_ladder(out, man)


def event_ladder(out: Path, man: Manifest) -> Manifest:
    """Every tier's event test in closed loop (`training.tierevents`), recorded in the manifest: a tier that
    fails it is not offered on the runtime's ladder."""
    report = event_report(out, man)
    logger.info("%s", summary(report))
    return mark_ladder(out, report)
