"""The generic sensor-log format: a wide CSV plus a JSON/YAML sidecar that declares each column's role.

CSV: a header row; one timestamp column (ISO 8601 with a UTC offset, or naive local time interpreted in the
sidecar's `timezone`); one column per sensor channel and one per device state; empty cell = missing.

Sidecar (`<csv>.sidecar.json` or `.yaml` next to the CSV, or given explicitly), e.g.::

    {"timestamp_column": "time", "timezone": "Europe/Brussels", "step_seconds": 60,
     "columns": {"kitchen.motion": {"role": "channel", "kind": "motion"},
                 "kitchen.temperature": {"role": "channel", "kind": "temperature", "unit": "°C"},
                 "kitchen.light": {"role": "device", "device_kind": "binary"}}}

Descriptive keys (`description`, `title`, `label`, `notes`, `comment`, `source`, `license`, `name`, and a
column's `unit` text) are accepted and ignored by the loader; any other unknown key, and any role other
than channel/device/ignore, is still an error naming that key.

Device (label) columns are never forward-filled: a label holds only on the rows that carry it (an empty
label cell is unknown, left out of training and scoring); only channel inputs are carried.

A column may set its own `ffill_limit_seconds` (e.g. a channel's kind stale limit, 0 for a label column that
must never be carried, Infinity for a device's state input): then the runtime's stale mask and the loader's
masking agree.

Shared by the simulated home (which writes it, inside the runtime package) and `training/` (which reads
it), so it lives here and imports nothing heavy.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge_agent.manifest import ChannelKind, DeviceKind

DESCRIPTIVE_KEYS = frozenset(
    {"description", "title", "label", "notes", "note", "comment", "source", "license", "name", "url"}
)


def _drop_descriptive(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if k not in DESCRIPTIVE_KEYS}
    return data


class ColumnSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _descriptive(cls, data: Any) -> Any:
        data = _drop_descriptive(data)
        if isinstance(data, dict) and data.get("unit") is None and "unit" in data:
            data = {**data, "unit": ""}  # "unit": null = no unit
        return data

    role: Literal["channel", "device", "ignore"] = Field(description="Sensor channel, device label, or skip")
    unit: str = Field(default="", description="Physical unit")
    kind: ChannelKind = Field(default="generic", description="channel: physical kind")
    device_kind: DeviceKind = Field(default="binary", description="device: binary, level or setpoint")
    levels: int = Field(default=2, ge=2, description="device (level): number of levels")
    ffill_limit_seconds: float | None = Field(
        default=None,
        ge=0,
        description="This column's forward-fill limit (None = the sidecar's; 0 = never carried; Infinity / "
        ".inf = until the next value, e.g. a device's state input)",
    )


class Sidecar(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _descriptive(cls, data: Any) -> Any:
        return _drop_descriptive(data)

    timestamp_column: str = Field(default="time", description="Name of the timestamp column")
    timezone: str | None = Field(
        default=None, description="IANA zone for naive timestamps (e.g. 'Europe/Brussels'); None = UTC"
    )
    step_seconds: float = Field(default=60.0, gt=0, description="Resampling step")
    ffill_limit_seconds: float = Field(
        default=300.0, ge=0, description="A reading is carried forward at most this long; beyond = missing"
    )
    columns: dict[str, ColumnSpec] = Field(description="Column name -> role; columns not listed are an error")

    def channel_columns(self) -> list[str]:
        return [n for n, c in self.columns.items() if c.role == "channel"]

    def device_columns(self) -> list[str]:
        return [n for n, c in self.columns.items() if c.role == "device"]

    def ffill_limit(self, column: str) -> float:
        """Seconds a value of `column` is carried forward (its own limit, else the sidecar's)."""
        spec = self.columns.get(column)
        own = None if spec is None else spec.ffill_limit_seconds
        return self.ffill_limit_seconds if own is None else own
