"""The one table of channel kinds: physical bounds, stale limit, fast/event, binary rounding, pooling.

Every rule that depends on what a sensor *is* derives from this table: ingest's bounds and 0/1 rounding,
the window's per-step pooling (event kinds keep the max within a step, others the last value) and stale
limits, the decider's fast (event-triggering) set, and the kind embedding index of the model (`KIND_NAMES`
order: append new kinds at the end so trained bundles keep their meaning). A new sensor kind is one row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator


@dataclass(frozen=True, slots=True)
class KindSpec:
    """What the runtime and training know about one kind of channel."""

    bounds: tuple[float, float]  # physical range (inclusive); outside = sensor fault, not a reading
    stale_seconds: float  # default mask-after-silence limit (a rule's stale_after_seconds overrides it)
    fast: bool = False  # a change triggers a decision at once (not only the periodic tick)
    event: bool = False  # within one time step keep the max (a motion blip is not lost), and round to 0/1
    unit: str = ""  # the usual unit, for generated configs and sidecars


INF = float("inf")

# Order matters: it is the model's kind-embedding index. Append only.
KINDS: dict[str, KindSpec] = {
    "temperature": KindSpec((-50.0, 80.0), 1800.0, unit="°C"),
    "humidity": KindSpec((0.0, 100.0), 1800.0, unit="%"),
    "humidity_ratio": KindSpec((0.0, 1.0), 1800.0, unit="kg/kg"),
    "illuminance": KindSpec((0.0, 200_000.0), 3600.0, unit="lx"),
    "co2": KindSpec((0.0, 10_000.0), 1800.0, unit="ppm"),
    # event sensors report on change only, so they get long limits
    "motion": KindSpec((0.0, 1.0), 6 * 3600.0, fast=True, event=True),
    "contact": KindSpec((0.0, 1.0), 24 * 3600.0, fast=True, event=True),
    "power": KindSpec((0.0, 50_000.0), 1800.0, unit="W"),
    "calendar": KindSpec((-1.0, 1.0), INF),  # computed from the clock, never stale
    "generic": KindSpec((-1e9, 1e9), 3600.0),
    # a decided device's own reported state as a model input (0/1, level index, setpoint): known until it
    # changes, so never stale; it lets a model learn transitions instead of mirroring the device's footprint
    "device_state": KindSpec((-1e6, 1e6), INF),
    # electrical and environmental channels (a whole-house meter, a plug, an air-quality sensor)
    "voltage": KindSpec((0.0, 1000.0), 1800.0, unit="V"),
    "current": KindSpec((0.0, 500.0), 1800.0, unit="A"),
    "energy": KindSpec((0.0, 1e9), 3600.0, unit="kWh"),  # a meter's running total
    "power_factor": KindSpec((-1.0, 1.0), 1800.0),
    "frequency": KindSpec((0.0, 1000.0), 1800.0, unit="Hz"),
    "reactive_power": KindSpec((-50_000.0, 50_000.0), 1800.0, unit="var"),
    "pm25": KindSpec((0.0, 2000.0), 1800.0, unit="µg/m³"),
    "pm10": KindSpec((0.0, 2000.0), 1800.0, unit="µg/m³"),
    "voc": KindSpec((0.0, 100_000.0), 1800.0, unit="ppb"),
    "noise": KindSpec((0.0, 200.0), 1800.0, unit="dB"),
    "pressure": KindSpec((300.0, 1200.0), 3600.0, unit="hPa"),
}

STATE_SUFFIX = ".state"  # channel name of a device's state input: '<device>.state'


def state_channel(device: str) -> str:
    return device + STATE_SUFFIX


KIND_NAMES: tuple[str, ...] = tuple(KINDS)
FAST_KINDS: frozenset[str] = frozenset(k for k, s in KINDS.items() if s.fast)
EVENT_KINDS: frozenset[str] = frozenset(k for k, s in KINDS.items() if s.event)


def kind_spec(kind: str) -> KindSpec:
    """The row of `kind` (unknown kinds are treated as generic)."""
    return KINDS.get(kind, KINDS["generic"])


def stale_limit(kind: str, override: float | None = None) -> float:
    """Seconds without a report after which a channel of `kind` is masked (`override` from config wins)."""
    return override if override else kind_spec(kind).stale_seconds


def _known_kind(v: str) -> str:
    if v not in KINDS:
        raise ValueError(f"unknown channel kind {v!r}; known kinds: {', '.join(KIND_NAMES)}")
    return v


ChannelKind = Annotated[str, AfterValidator(_known_kind)]
