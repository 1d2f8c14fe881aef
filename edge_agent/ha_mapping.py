"""Home Assistant entities -> the agent's channels and devices, and HA state values -> the agent's values (pure).

Mapping (`propose_mapping`): a channel rule on `<base>/<friendly name>` field `f` <- `sensor.` /
`binary_sensor.<slug(friendly name)>_<f>` (Zigbee2MQTT's Home Assistant entity ids, field aliases tried); a
device <- `light.` / `switch.` / `fan.` / `climate.` / `cover.<slug(friendly name)>`; explicit entries win.
Values (`state_value`): `on`/`off` -> 1/0; units converted to the kind's unit (°F/K -> °C, kW/mW -> W,
klx -> lx); a fan's `percentage` or preset -> its level; a climate's `temperature` attribute -> the setpoint;
a cover's `current_position`. None = not usable (counted by the caller).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from edge_agent.catalog import channel_kinds
from edge_agent.config import AgentConfig, DeviceConfig
from edge_agent.devices import spec_from_config
from edge_agent.ingest import BOOLEAN_KINDS
from edge_agent.kinds import kind_spec
from edge_agent.z2m_exposes import slug

# unit -> (target unit, factor, offset): value * factor + offset
UNIT_CONVERSIONS: dict[str, tuple[str, float, float]] = {
    "°F": ("°C", 5.0 / 9.0, -32.0 * 5.0 / 9.0),
    "K": ("°C", 1.0, -273.15),
    "kW": ("W", 1000.0, 0.0),
    "mW": ("W", 0.001, 0.0),
    "klx": ("lx", 1000.0, 0.0),
    "lux": ("lx", 1.0, 0.0),
}


@dataclass(frozen=True)
class Target:
    name: str
    role: str  # channel | device
    kind: str  # channel kind, or device kind (binary | level | setpoint)
    unit: str = ""
    levels: int = 2
    values: tuple[str, ...] = ()  # a level device's payload values (fan modes)


def targets_of(cfg: AgentConfig) -> dict[str, Target]:
    kinds = channel_kinds(cfg, None)
    out = {n: Target(n, "channel", k, kind_spec(k).unit) for n, k in kinds.items()}
    for d in cfg.devices:
        spec = spec_from_config(d)
        vals = tuple(str(v) for v in d.values) if d.values else ()
        out[d.name] = Target(d.name, "device", spec.kind, d.unit, spec.levels, vals)
    return out


def _device_domains(d: DeviceConfig) -> tuple[str, ...]:
    kind = d.own_kind()
    if kind == "setpoint":
        return ("cover",) if "position" in d.field else ("climate",)
    if kind == "level":
        return ("fan",)
    return (
        ("light", "switch", "fan")
        if d.field in ("state", "fan_state") or d.field.startswith("state_")
        else ("switch",)
    )


def propose_mapping(cfg: AgentConfig, explicit: dict[str, str] | None = None) -> dict[str, str]:
    """entity_id -> target name (channel or device), from Zigbee2MQTT friendly names; `explicit` wins."""
    prefix = cfg.zigbee2mqtt.base_topic + "/"
    out: dict[str, str] = {}
    for r in cfg.channels:
        if not r.topic.startswith(prefix) or not r.field:
            continue
        base = slug(r.topic[len(prefix) :])
        for f in [r.field, *cfg.field_aliases.get(r.field, [])]:
            for domain in ("binary_sensor", "sensor"):
                out.setdefault(f"{domain}.{base}_{slug(f)}", r.channel)
    for d in cfg.devices:
        if d.state_topic.startswith(prefix):
            base = slug(d.state_topic[len(prefix) :])
            for domain in _device_domains(d):
                out.setdefault(f"{domain}.{base}", d.name)
    if explicit:
        taken = set(explicit.values())
        out = {e: t for e, t in out.items() if t not in taken}  # an explicit entity replaces the proposal
        out.update(explicit)
    return out


def convert(value: float, unit: str | None, want: str) -> float | None:
    """`value` in `unit` -> in `want` (None: a unit that cannot be converted)."""
    unit = (unit or "").strip()
    if not want or not unit or unit == want:
        return value
    conv = UNIT_CONVERSIONS.get(unit)
    if conv is None or conv[0] != want:
        return None
    return value * conv[1] + conv[2]


def state_value(t: Target, domain: str, state: str, attrs: dict[str, Any], temp_unit: str) -> float | None:
    """One HA state -> the target's value (None: not usable)."""
    s = state.strip().lower()
    if t.role == "channel":
        if s in ("on", "off") and (t.kind in BOOLEAN_KINDS or domain == "binary_sensor"):
            return 1.0 if s == "on" else 0.0
        try:
            v = float(state)
        except ValueError:
            return None
        return convert(v, attrs.get("unit_of_measurement"), t.unit) if math.isfinite(v) else None
    if t.kind == "binary":
        return 1.0 if s == "on" else 0.0 if s == "off" else None
    if t.kind == "level":
        if s == "off":
            return 0.0
        lowered = [v.lower() for v in t.values]
        for key in (s, str(attrs.get("preset_mode") or "").lower()):
            if key in lowered:
                return float(lowered.index(key))
        pct = attrs.get("percentage")
        if isinstance(pct, int | float) and s == "on":
            return float(min(max(round(pct / 100.0 * (t.levels - 1)), 1), t.levels - 1))
        return None
    raw = attrs.get("current_position") if domain == "cover" else attrs.get("temperature")
    if not isinstance(raw, int | float) or isinstance(raw, bool) or not math.isfinite(raw):
        return None
    return convert(float(raw), temp_unit if domain == "climate" else "%", t.unit or "")
