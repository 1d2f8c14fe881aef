"""Devices: absolute command payloads, reported state, echo-aware override detection, and the per-device
runtime bundle (tracker + policy + last decision) built from config and manifest (pure).

A state report that matches a command we sent within `echo_window_seconds` is our echo. The first report
(retained or first seen) is the initial state, and a report repeating the known value (Zigbee2MQTT's
`cache_state` re-sends every attribute) is no news. Any other change is a person's manual override: the
device is held for `override_hold_seconds` and the change is returned so the agent records it as a label.
"""

from __future__ import annotations

import json
import logging
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from edge_agent.config import AgentConfig, ConfigError, DeviceConfig
from edge_agent.effects import Decision
from edge_agent.ingest import PayloadError, parse_json_object, to_number
from edge_agent.manifest import DeviceSpec, Manifest
from edge_agent.policy import HARD_SETPOINT_DEFAULT, HARD_SETPOINT_LIMITS, DevicePolicy, clamp_value

logger = logging.getLogger(__name__)

MAX_CACHED_PAYLOADS = 64  # command payloads kept per device (`DeviceTracker.command_bytes`)

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
        self._payloads: dict[float, bytes] = {}  # value -> command bytes (`command_bytes`)

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
        """`command_payload` as JSON bytes, built once per value (a binary or level device has a few; a
        setpoint's cache is bounded): no JSON on the event path after the first command of each value."""
        out = self._payloads.get(value)
        if out is None:
            if len(self._payloads) >= MAX_CACHED_PAYLOADS:
                self._payloads.clear()
            out = json.dumps(self.command_payload(value), separators=(",", ":")).encode()
            self._payloads[value] = out
        return out

    def note_command(self, value: float, now: float) -> None:
        self._recent.append((clamp_value(self.spec, self.cfg, value), now))

    # ---- state reports --------------------------------------------------------------------------------
    def parse_state(self, payload: bytes, max_bytes: int = 65536) -> float | None:
        """The device's value in a state message, or None if the message lacks our field.

        An impossible value (not finite, a fan level the device does not have, a light at -5, a setpoint of
        1e308 or `true`) is invalid input — a PayloadError — never a person's preference."""
        try:
            obj = parse_json_object(payload, max_bytes)  # size, UTF-8, depth, huge integers: PayloadError
        except PayloadError as e:
            raise PayloadError(f"{self.name}: state {e}") from None
        if self.cfg.field not in obj or obj[self.cfg.field] is None:
            return None
        raw = obj[self.cfg.field]
        if self.values is not None and self.spec.kind != "setpoint":
            for i, v in enumerate(self.values):
                if raw == v or (isinstance(raw, str) and isinstance(v, str) and raw.lower() == v.lower()):
                    return float(i)
        if self.spec.kind == "setpoint" and isinstance(raw, bool):
            raise PayloadError(f"{self.name}: setpoint {raw!r} is not a number")
        try:
            value = to_number(raw)
        except OverflowError:
            raise PayloadError(f"{self.name}: state value is out of range") from None
        self._check_range(value, raw)
        return value

    def _check_range(self, value: float, raw: Any) -> None:
        shown = repr(raw)[:40]
        if not math.isfinite(value):
            raise PayloadError(f"{self.name}: state value {shown} is not finite")
        if self.spec.kind == "setpoint":
            lo, hi = HARD_SETPOINT_LIMITS.get(self.spec.unit, HARD_SETPOINT_DEFAULT)
            if not lo <= value <= hi:
                raise PayloadError(f"{self.name}: setpoint {value:g} outside {lo:g}..{hi:g} {self.spec.unit}")
            return
        top = 1 if self.spec.kind == "binary" else self.spec.levels - 1
        if value != int(value) or not 0 <= value <= top:
            raise PayloadError(f"{self.name}: state {shown} is not one of the device's values 0..{top}")

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


@dataclass
class DeviceRuntime:
    """One decided device: where its output is, its config entry, tracker, policy and last decision."""

    name: str
    index: int | None  # row in the model's `devices` output; None = no bundle decides it (observe)
    cfg_index: int  # entry in config.devices
    tracker: DeviceTracker
    policy: DevicePolicy
    last: Decision | None = field(default=None)  # last decision
    last_target: float | None = None  # last value we commanded

    def carry_over(self, old: DeviceRuntime) -> None:
        """Keep what a person and the agent did (reported state, hold, recent commands, dwell, rate limit)
        when the bundle is swapped: only the model changed."""
        t, o = self.tracker, old.tracker
        t.reported, t.reported_at, t.held_until = o.reported, o.reported_at, o.held_until
        t._recent = o._recent
        self.policy.last_change = old.policy.last_change
        self.policy._sent = old.policy._sent
        self.last, self.last_target = old.last, old.last_target


def build_devices(config: AgentConfig, manifest: Manifest | None) -> list[DeviceRuntime]:
    """One runtime per configured device. A device the bundle does not decide (or every device, with no
    bundle) is observed: its state is tracked and recorded, nothing is decided for it."""
    specs = {d.name: (i, d) for i, d in enumerate(manifest.devices)} if manifest is not None else {}
    out = []
    for j, dc in enumerate(config.devices):
        if dc.name not in specs:
            if manifest is not None:
                logger.warning(
                    "config devices[%d].name: %r is not decided by bundle %s (it has %s); it is observed "
                    "(recorded for the next training)",
                    j,
                    dc.name,
                    manifest.version,
                    sorted(specs),
                )
            spec = spec_from_config(dc)
            out.append(DeviceRuntime(dc.name, None, j, DeviceTracker(spec, dc), DevicePolicy(spec, dc)))
            continue
        i, spec = specs[dc.name]
        assert manifest is not None
        if spec.kind == "level" and dc.values is not None and len(dc.values) < spec.levels:
            raise ConfigError(
                f"devices[{j}].values: {len(dc.values)} values for the {spec.levels} levels of {dc.name!r} in "
                f"bundle {manifest.version}: give one payload value per level (e.g. off, low, medium, high)"
            )
        if spec.kind == "level" and dc.values is not None and len(dc.values) > spec.levels:
            logger.warning(
                "config devices[%d].values: %d values for %d levels of %r; the extra values are never sent",
                j,
                len(dc.values),
                spec.levels,
                dc.name,
            )
        out.append(DeviceRuntime(dc.name, i, j, DeviceTracker(spec, dc), DevicePolicy(spec, dc)))
    return out


def spec_from_config(dc: DeviceConfig) -> DeviceSpec:
    """The device as its config entry describes it, for a device no bundle decides yet (observe)."""
    kind = dc.own_kind()
    levels = len(dc.values) if kind == "level" and dc.values is not None else 2
    return DeviceSpec(
        name=dc.name,
        kind=kind,  # type: ignore[arg-type]
        unit=dc.unit,
        levels=max(2, levels),
        min_value=dc.min_value if kind == "setpoint" else None,
        max_value=dc.max_value if kind == "setpoint" else None,
    )
