"""In-memory form of a resampled sensor log: what every loader returns and every trainer consumes.

Arrays are float32 on a fixed step; NaN marks a missing value (never silently zero-filled).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge_agent.manifest import ChannelKind, DeviceKind


@dataclass(frozen=True)
class ChannelInfo:
    name: str
    unit: str = ""
    kind: ChannelKind = "generic"


@dataclass(frozen=True)
class DeviceInfo:
    name: str
    kind: DeviceKind = "binary"
    unit: str = ""
    levels: int = 2


@dataclass
class SensorLog:
    name: str
    step_seconds: float
    t0: float  # epoch seconds (UTC) of row 0
    values: np.ndarray  # float32 [N, C] raw physical units, NaN = missing
    labels: np.ndarray  # float32 [N, D] device states (0/1, level index, setpoint value), NaN = unknown
    channels: list[ChannelInfo]
    devices: list[DeviceInfo]
    utc_offset_seconds: np.ndarray | None = None  # int32 [N] local-time offset per row (DST), None = UTC
    stats: dict[str, int] = field(default_factory=dict)  # duplicates, out_of_order, gaps, masked_rows, ...
    timezone: str | None = None  # IANA zone local time was taken in (sidecar / --timezone / dataset's own)

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def times(self) -> np.ndarray:
        """float64 [N] epoch seconds (UTC) of each row."""
        return self.t0 + np.arange(len(self), dtype=np.float64) * self.step_seconds
