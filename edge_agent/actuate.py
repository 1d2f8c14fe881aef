"""The per-device runtime bundle (spec, config, tracker, policy, last decision), built from config + manifest."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from edge_agent.config import AgentConfig
from edge_agent.devices import DeviceTracker
from edge_agent.manifest import Manifest
from edge_agent.policy import DevicePolicy

logger = logging.getLogger(__name__)


@dataclass
class DeviceRuntime:
    name: str
    index: int  # row in the model's `devices` output
    cfg_index: int  # entry in config.devices
    tracker: DeviceTracker
    policy: DevicePolicy
    last: dict[str, Any] | None = field(default=None)  # last decision payload
    last_target: float | None = None  # last value we commanded


def build_devices(config: AgentConfig, manifest: Manifest) -> list[DeviceRuntime]:
    """One runtime per configured device that the bundle decides; others get one warning line."""
    specs = {d.name: (i, d) for i, d in enumerate(manifest.devices)}
    out = []
    for j, dc in enumerate(config.devices):
        if dc.name not in specs:
            logger.warning(
                "config devices[%d].name: %r is not decided by bundle %s (it has %s); device ignored",
                j,
                dc.name,
                manifest.version,
                sorted(specs),
            )
            continue
        i, spec = specs[dc.name]
        if spec.kind == "level" and dc.values is not None and len(dc.values) != spec.levels:
            logger.warning(
                "config devices[%d].values: %d values for %d levels of %r; extra levels are clamped",
                j,
                len(dc.values),
                spec.levels,
                dc.name,
            )
        out.append(DeviceRuntime(dc.name, i, j, DeviceTracker(spec, dc), DevicePolicy(spec, dc)))
    return out
