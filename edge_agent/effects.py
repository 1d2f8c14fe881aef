"""What the controller asks the outside world to do: typed effects (commands, records, decisions to publish).

The `Controller` is pure: it takes messages, ticks and clock values and returns `Effects`. The runtime
carries them out — commands through the MQTT link, records into the recorder, decisions to the publisher —
and tests read them directly. Every record is a frozen dataclass naming its table; `row()` is the column map.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar


def finite_or_none(obj: Any) -> Any:
    """A copy of `obj` (dicts, lists, tuples, numbers incl. numpy scalars) with NaN/inf replaced by None."""
    if isinstance(obj, bool | int | str) or obj is None:
        return obj
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_or_none(v) for v in obj]
    return obj


def dumps(obj: Any) -> str:
    """Compact JSON that never contains the invalid tokens NaN / Infinity (they become null)."""
    return json.dumps(finite_or_none(obj), separators=(",", ":"), allow_nan=False, default=str)


@dataclass(frozen=True, slots=True)
class Record:
    """A row for the recorder; subclasses set TABLE."""

    TABLE: ClassVar[str] = ""
    URGENT: ClassVar[bool] = False  # committed at once (labels, holds, model versions)

    def row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ReadingRecord(Record):
    TABLE: ClassVar[str] = "readings"
    ts: float  # start of the step, epoch seconds
    channel: str
    value: float


@dataclass(frozen=True, slots=True)
class DecisionRecord(Record):
    TABLE: ClassVar[str] = "decisions"
    ts: float
    device: str
    output: float  # raw model output
    target: float  # value after the policy
    confidence: float
    sent: bool
    reason: str
    mode: str
    tier: str
    trigger: str
    model_version: str
    latency_ms: float
    attention: str  # JSON [[channel, weight], ...] top channels


@dataclass(frozen=True, slots=True)
class OverrideRecord(Record):
    """A person's manual change: the preference label, with what the agent had decided."""

    TABLE: ClassVar[str] = "overrides"
    URGENT: ClassVar[bool] = True
    ts: float
    device: str
    value: float
    previous: float | None
    agent_target: float | None
    agent_output: float | None
    decision_ts: float | None
    model_version: str | None
    hold_until: float | None


@dataclass(frozen=True, slots=True)
class DeviceChangeRecord(Record):
    """A change of a device's reported state, attributed: who changed it, and whether it may be a label.

    source: 'initial' (first report), 'agent' (echo of our command), 'person', or 'automation:<name>'.
    learning_paused: the pause-learning switch was on (or a quiet span ran): never a label."""

    TABLE: ClassVar[str] = "device_changes"
    URGENT: ClassVar[bool] = True
    ts: float
    device: str
    value: float
    previous: float | None
    source: str
    learning_paused: bool


@dataclass(frozen=True, slots=True)
class SwitchRecord(Record):
    """A pause switch flipped (pause_learning / pause_control), by MQTT or the CLI."""

    TABLE: ClassVar[str] = "switches"
    URGENT: ClassVar[bool] = True
    ts: float
    name: str
    value: bool


@dataclass(frozen=True, slots=True)
class CommandRecord(Record):
    TABLE: ClassVar[str] = "commands"
    ts: float
    device: str
    topic: str
    payload: str
    value: float
    status: str  # sent | queued | queued-offline | dropped-disconnected | expired | dropped-queue-full


@dataclass(frozen=True, slots=True)
class TierChangeRecord(Record):
    TABLE: ClassVar[str] = "tier_changes"
    ts: float
    old: str
    new: str
    reason: str
    signal: str
    value: float | None


@dataclass(frozen=True, slots=True)
class ModelVersionRecord(Record):
    TABLE: ClassVar[str] = "model_versions"
    URGENT: ClassVar[bool] = True
    version: str
    loaded_at: float
    path: str
    manifest: str


@dataclass(frozen=True, slots=True)
class StateRecord(Record):
    """agent_state[key] = JSON(value); `urgent` commits at once (a person's hold must survive a crash)."""

    TABLE: ClassVar[str] = "agent_state"
    key: str
    value: Any
    updated: float
    urgent: bool = False

    def row(self) -> dict[str, Any]:
        return {"key": self.key, "value": dumps(self.value), "updated": self.updated}


@dataclass(frozen=True, slots=True)
class Command:
    """A device command to send (QoS1, never retained, dropped if not sent within the expiry)."""

    device: str
    topic: str
    payload: bytes
    value: float
    created: float  # agent clock


@dataclass(frozen=True, slots=True)
class Decision:
    """One device's decision as published on `edge-agent/<id>/decision/<device>` (and shown live)."""

    time: float
    device: str
    value: float
    output: float
    confidence: float
    tier: str
    mode: str
    sent: bool
    reason: str
    trigger: str
    top: list[tuple[str, float]]
    held: bool
    held_until: float | None
    model_version: str
    suggested: bool = False  # suggest mode: nothing sent, offered to a person (`reason` says why, briefly)

    def payload(self) -> dict[str, Any]:
        d = asdict(self)
        d["top"] = [[c, w] for c, w in self.top]
        return finite_or_none(d)


@dataclass(frozen=True, slots=True)
class Publication:
    """A state the agent publishes about itself (e.g. a pause switch, retained)."""

    topic: str
    payload: bytes
    retain: bool = True


@dataclass
class Effects:
    """Everything one controller call wants done, in order."""

    commands: list[Command] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    publications: list[Publication] = field(default_factory=list)
    # work left for after the commands are sent (the decisions' explanations): `finish()` runs it
    later: list[Callable[[], None]] = field(default_factory=list)

    def extend(self, other: Effects) -> Effects:
        self.commands += other.commands
        self.records += other.records
        self.decisions += other.decisions
        self.publications += other.publications
        self.later += other.later
        return self

    def finish(self) -> Effects:
        """Run the deferred work (it appends decisions and records); idempotent."""
        later, self.later = self.later, []
        for fn in later:
            fn()
        return self

    def of(self, kind: type[Record]) -> list[Any]:
        """The records of one type (tests and the demo read effects this way)."""
        return [r for r in self.records if isinstance(r, kind)]
