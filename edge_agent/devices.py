"""Devices: absolute command payloads, reported state, and echo-aware override detection (pure).

A state report that matches a command we sent within `echo_window_seconds` is our echo. The first report
(retained or first seen) is the initial state, and a report repeating the known value (Zigbee2MQTT's
`cache_state` re-sends every attribute) is no news. Any other change is a person's manual override: the
device is held for `override_hold_seconds` and the change is returned so the agent records it as a label.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from edge_agent.config import DeviceConfig
from edge_agent.ingest import PayloadError, to_number
from edge_agent.manifest import DeviceSpec
from edge_agent.policy import clamp_value

EventKind = Literal["initial", "echo", "repeat", "override"]


@dataclass(frozen=True, slots=True)
class StateEvent:
    kind: EventKind
    value: float
    previous: float | None


class DeviceTracker:
    """One device: its reported state, our recent commands, and the override hold."""

    def __init__(self, spec: DeviceSpec, cfg: DeviceConfig) -> None:
        self.spec = spec
        self.cfg = cfg
        self.name = cfg.name
        self.command_topic = cfg.command_topic or f"{cfg.state_topic}/set"
        if cfg.values is not None:
            self.values: list[Any] | None = list(cfg.values)
        elif spec.kind == "binary":
            self.values = ["OFF", "ON"]
        else:
            self.values = None
        self.reported: float | None = None
        self.reported_at: float = -math.inf
        self.held_until: float = -math.inf
        self._recent: deque[tuple[float, float]] = deque(maxlen=16)  # (value, clock time) of our commands

    # ---- commands -------------------------------------------------------------------------------------
    def command_payload(self, value: float) -> dict[str, Any]:
        """Absolute payload for `value`, clamped again here (last line of defence)."""
        v = clamp_value(self.spec, self.cfg, value)
        if self.spec.kind == "setpoint":
            out: Any = round(v, 3)
        elif self.values is not None:
            idx = int(v)
            if not 0 <= idx < len(self.values):
                raise ValueError(f"{self.name}: level {idx} has no payload value in devices[].values")
            out = self.values[idx]
        else:
            out = int(v)
        return {**self.cfg.template, self.cfg.field: out}

    def command_bytes(self, value: float) -> bytes:
        return json.dumps(self.command_payload(value), separators=(",", ":")).encode()

    def note_command(self, value: float, now: float) -> None:
        self._recent.append((clamp_value(self.spec, self.cfg, value), now))

    # ---- state reports --------------------------------------------------------------------------------
    def parse_state(self, payload: bytes) -> float | None:
        """The device's value in a state message, or None if the message lacks our field."""
        try:
            obj = json.loads(payload)
        except ValueError:
            raise PayloadError("state payload is not JSON") from None
        if not isinstance(obj, dict):
            raise PayloadError("state payload is not a JSON object")
        if self.cfg.field not in obj or obj[self.cfg.field] is None:
            return None
        raw = obj[self.cfg.field]
        if self.values is not None and self.spec.kind != "setpoint":
            for i, v in enumerate(self.values):
                if raw == v or (isinstance(raw, str) and isinstance(v, str) and raw.lower() == v.lower()):
                    return float(i)
        value = to_number(raw)
        if not math.isfinite(value):
            raise PayloadError(f"{self.name}: state value {raw!r} is not finite")
        return value

    def on_state(self, value: float, now: float) -> StateEvent:
        """Classify a reported value: initial, echo of our command, repeat, or a person's override."""
        prev = self.reported
        self.reported = value
        self.reported_at = now
        if prev is None:
            return StateEvent("initial", value, None)
        for i, (v, t) in enumerate(self._recent):
            if abs(v - value) < 1e-6 and 0 <= now - t <= self.cfg.echo_window_seconds:
                del self._recent[i]
                return StateEvent("echo", value, prev)
        if abs(value - prev) < 1e-6:
            return StateEvent("repeat", value, prev)
        self.held_until = now + self.cfg.override_hold_seconds
        return StateEvent("override", value, prev)

    def held(self, now: float) -> bool:
        return now < self.held_until

    def state(self) -> dict[str, Any]:
        """Persistable state (the hold survives a restart)."""
        return {"held_until": self.held_until if math.isfinite(self.held_until) else None}

    def restore(self, data: dict[str, Any]) -> None:
        h = data.get("held_until")
        if isinstance(h, int | float):
            self.held_until = float(h)
