"""Zigbee2MQTT auto-configuration (pure): a `bridge/devices` payload -> proposed channel rules and devices.

Zigbee2MQTT 2.x lists every device with `definition.exposes`: generic exposes (`binary`, `numeric`, `enum`,
...) and feature groups (`light`, `switch`, `fan`, `climate`, `cover`, `lock`) whose `features` are exposes
too. Each expose has `property` (the JSON field of the state and `/set` payloads), `access` bits (1 published
in the state, 2 settable, 4 gettable), and per type `value_on`/`value_off`, `value_min`/`value_max`/
`value_step`, `values`, `unit`, optionally `endpoint` and `category` (`config` | `diagnostic`).

* Sensor channels: readable exposes of known sensor properties (occupancy, presence, illuminance,
  temperature, humidity, co2, contact, power, pressure, voc, ...). A binary channel is 1 when the payload is
  the expose's `value_on` (a contact's `value_on` is `false`: true means closed, so the rule inverts and the
  channel is 1 = open). Diagnostic exposes (linkquality, battery, update, ...) are left out unless asked.
* Devices (commands): one per Zigbee2MQTT device (the config allows one device per state topic): a light or
  switch's `state` (binary, its value_off/value_on), a fan's mode (level, its ordinal values), a climate's
  heating setpoint (setpoint, value_min/value_max/value_step, unit), a cover's position. Brightness and
  colour are noted, not decided; a lock is never proposed (listed: add it by hand if meant).
* Names from room-like friendly names: 'living motion' / 'living_motion' -> room 'living', channel
  'living.motion'. An unnamed device (its IEEE address as name) is proposed under room 'unnamed' with a note.
* The coordinator, unsupported devices (no definition) and action-only devices (a wall remote: button
  presses, no state) are listed as not used, with the reason.

`render_yaml` writes the proposal as a commented YAML config that `edge_agent.config.parse_config` loads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from edge_agent.catalog import guess_kind
from edge_agent.ingest import PayloadError, to_number
from edge_agent.z2m_devices import device_entry
from edge_agent.z2m_exposes import (
    PUBLISHED,
    SETTABLE,
    Names,
    Z2mError,
    access,
    iter_exposes,
    parse_bridge_devices,
    room_and_rest,
    slug,
)

__all__ = ["Z2mError", "parse_bridge_devices", "propose", "render_yaml", "room_and_rest", "slug"]

# property -> (channel name leaf, kind). Kinds are edge_agent.kinds names.
SENSOR_PROPERTIES: dict[str, tuple[str, str]] = {
    "occupancy": ("motion", "motion"),
    "presence": ("presence", "motion"),
    "illuminance": ("illuminance", "illuminance"),
    "illuminance_lux": ("illuminance", "illuminance"),
    "illuminance_above_threshold": ("illuminance_above_threshold", "generic"),
    "temperature": ("temperature", "temperature"),
    "local_temperature": ("temperature", "temperature"),
    "humidity": ("humidity", "humidity"),
    "co2": ("co2", "co2"),
    "contact": ("contact", "contact"),
    "power": ("power", "power"),
    "pressure": ("pressure", "pressure"),
    "voc": ("voc", "voc"),
    "voc_index": ("voc_index", "generic"),
    "pm25": ("pm25", "pm25"),
    "pm10": ("pm10", "pm10"),
    "formaldehyd": ("formaldehyde", "generic"),
    "water_leak": ("leak", "generic"),
    "smoke": ("smoke", "generic"),
    "vibration": ("vibration", "generic"),
    "soil_moisture": ("soil_moisture", "generic"),
}
# left out by default: the radio, the battery, firmware, counters and the electrical details of a plug
DIAGNOSTIC_PROPERTIES = frozenset(
    {
        "linkquality",
        "battery",
        "battery_low",
        "voltage",
        "current",
        "energy",
        "update",
        "update_available",
        "device_temperature",
        "power_outage_count",
        "tamper",
    }
)
_CONTACT_WORDS = ("door", "window", "gate", "garage")


@dataclass
class Proposed:
    """One proposed config entry (a `channels` rule or a `devices` entry) and the comment above it."""

    entry: dict[str, Any]
    comment: str


@dataclass
class Proposal:
    channels: list[Proposed] = field(default_factory=list)
    devices: list[Proposed] = field(default_factory=list)
    not_used: list[str] = field(default_factory=list)  # "<friendly name>: why"
    left_out: list[str] = field(default_factory=list)  # "<friendly name>: exposes not proposed"
    device_count: int = 0

    def config(self) -> dict[str, Any]:
        return {"channels": [c.entry for c in self.channels], "devices": [d.entry for d in self.devices]}


def _binary_invert(e: dict[str, Any]) -> bool | None:
    """False: the payload's true-ish value is value_on; True: it is value_off (contact); None: unreadable."""
    try:
        on = to_number(e.get("value_on", True))
        off = to_number(e.get("value_off", False))
    except PayloadError:
        return None
    if {on, off} != {0.0, 1.0}:
        return None
    return on == 0.0


def _label(dev: dict[str, Any]) -> str:
    d = dev.get("definition") or {}
    what = " ".join(str(d.get(k)) for k in ("vendor", "model") if d.get(k))
    desc = d.get("description")
    return f"{what}, {desc}" if what and desc else what or str(desc or "")


def propose(
    devices: list[dict[str, Any]], base_topic: str = "zigbee2mqtt", include_diagnostic: bool = False
) -> Proposal:
    """The proposal for a bridge/devices list (see the module docstring)."""
    out = Proposal(device_count=len(devices))
    channel_names, device_names = Names(), Names()
    usable: list[tuple[dict[str, Any], list[tuple[str | None, dict[str, Any]]]]] = []
    for dev in devices:
        name = str(dev.get("friendly_name") or dev.get("ieee_address") or "?")
        definition = dev.get("definition")
        if dev.get("type") == "Coordinator":
            out.not_used.append(f"{name}: the coordinator (the Zigbee radio itself)")
        elif set(name) & {"+", "#", "\x00"}:
            out.not_used.append(f"{name}: its friendly name holds an MQTT wildcard; rename it in Zigbee2MQTT")
        elif dev.get("disabled"):
            out.not_used.append(f"{name}: disabled in Zigbee2MQTT")
        elif not isinstance(definition, dict):
            why = "interview not completed" if dev.get("interview_completed") is False else "not supported"
            out.not_used.append(f"{name}: no definition ({why}); nothing to read or set")
        else:
            usable.append((dev, iter_exposes(definition.get("exposes") or [])))
    # dedicated sensors first: they get the plain names ('living.temperature'); an actuator's own sensors
    # (a radiator valve's temperature, a plug's power) are qualified by the device ('living.thermostat_...')
    usable.sort(key=lambda d: any(g is not None and g != "lock" for g, _ in d[1]))
    for dev, flat in usable:
        _propose_device(dev, flat, base_topic, include_diagnostic, channel_names, device_names, out)
    return out


def _propose_device(
    dev: dict[str, Any],
    flat: list[tuple[str | None, dict[str, Any]]],
    base: str,
    include_diagnostic: bool,
    channel_names: Names,
    device_names: Names,
    out: Proposal,
) -> None:
    name = str(dev.get("friendly_name"))
    topic = f"{base}/{name}"
    room, rest = room_and_rest(name)
    label = _label(dev)
    unnamed = (
        " (unnamed: rename it in Zigbee2MQTT to a room-like name, e.g. 'kitchen motion')"
        if room == "unnamed"
        else ""
    )
    actuator = any(g is not None and g != "lock" for g, _ in flat)
    props = {str(e.get("property")) for _, e in flat}
    used, left = 0, []
    for group, e in flat:
        prop = e.get("property")
        if not isinstance(prop, str) or not access(e) & PUBLISHED or prop == "action":
            continue
        if group is not None and access(e) & SETTABLE:
            continue  # a controllable feature: handled as the device below
        if prop in DIAGNOSTIC_PROPERTIES or e.get("category") in ("diagnostic", "config"):
            if e.get("category") == "config":
                continue
            if not include_diagnostic or e.get("type") not in ("numeric", "binary"):
                left.append(prop)
                continue
        if prop == "illuminance" and "illuminance_lux" in props:
            continue  # Zigbee2MQTT 1.x: the raw value next to the lux one
        leaf, kind = SENSOR_PROPERTIES.get(prop, (slug(prop), "generic"))
        if prop not in SENSOR_PROPERTIES and prop not in DIAGNOSTIC_PROPERTIES:
            left.append(prop)  # an unknown reading (an enum state, a counter): listed, not guessed
            continue
        rule: dict[str, Any] = {"topic": topic, "channel": "", "field": prop}
        if e.get("type") == "binary":
            invert = _binary_invert(e)
            if invert is None:
                left.append(prop)
                continue
            if invert:
                rule["invert"] = True
        elif e.get("type") != "numeric":
            left.append(prop)
            continue
        if kind == "contact":
            leaf = next((w for w in _CONTACT_WORDS if w in rest.split("_")), "contact")
        qualified = f"{room}.{rest or (dev.get('type') or 'device').lower()}_{leaf}"
        cands = (qualified,) if actuator else (f"{room}.{leaf}", qualified)
        rule["channel"] = channel_names.pick(*cands)
        if guess_kind(rule["channel"]) != kind:
            rule["kind"] = kind  # the name alone would not say it (edge_agent.catalog.guess_kind)
        unit = f" ({e['unit']})" if e.get("unit") else ""
        note = " — true means closed: inverted, 1 = open" if kind == "contact" and rule.get("invert") else ""
        out.channels.append(Proposed(rule, f"{name}: {prop}{unit}{note}{unnamed}"))
        used += 1
    entry, comment, why_not = device_entry(dev, flat, topic, room, rest, device_names)
    if entry is not None:
        out.devices.append(Proposed(entry, f"{name} ({label}){comment}{unnamed}"))
        used += 1
    if why_not:
        out.not_used.append(f"{name}: {why_not}")
    if left:
        out.left_out.append(f"{name}: {', '.join(sorted(set(left)))}")
    if not used and not why_not:
        actions = next((e for g, e in flat if e.get("property") == "action"), None)
        if actions is not None:
            raw = actions.get("values")
            vals: list[Any] = raw if isinstance(raw, list) else []
            shown = ", ".join(map(str, vals[:6])) + (", ..." if len(vals) > 6 else "")
            out.not_used.append(f"{name}: only actions ({shown}): button presses, no state to read or set")
        else:
            out.not_used.append(f"{name}: no sensor reading or controllable state the agent uses")


def _yaml_scalar(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False)  # JSON scalars and flow lists are valid YAML


def _comment(text: str) -> str:
    """One comment line: line breaks and other control characters of names and descriptions removed."""
    return "".join(c if c.isprintable() else " " for c in text)


def _entry_lines(p: Proposed) -> list[str]:
    lines = [f"  # {_comment(p.comment)}"]
    for i, (k, v) in enumerate(p.entry.items()):
        lines.append(f"  {'- ' if i == 0 else '  '}{k}: {_yaml_scalar(v)}")
    return lines


def render_yaml(
    p: Proposal, *, broker_host: str, broker_port: int, source: str, base_topic: str = "zigbee2mqtt"
) -> str:
    """The proposal as a commented YAML config (loads with edge_agent.config.parse_config)."""
    lines = [
        f"# edge-agent config proposed by `edge-agent discover` from {source} ({p.device_count} devices).",
        "# Review it before use: names come from the friendly names (room first); rename freely, keep the topics.",
        "# With no model yet the agent observes (records everything, sends nothing): `edge-agent run --config FILE`.",
        "broker:",
        f"  host: {_yaml_scalar(broker_host)}",
        f"  port: {broker_port}",
    ]
    if base_topic != "zigbee2mqtt":
        lines += ["zigbee2mqtt:", f"  base_topic: {_yaml_scalar(base_topic)}"]
    lines.append("channels:" if p.channels else "channels: []")
    for c in p.channels:
        lines += _entry_lines(c)
    lines.append("devices:" if p.devices else "devices: []")
    for d in p.devices:
        lines += _entry_lines(d)
    if p.not_used:
        lines.append("# Not used:")
        lines += [f"#   {_comment(t)}" for t in p.not_used]
    if p.left_out:
        lines.append(
            "# Left out (diagnostics, counters, unknown readings; --include-diagnostic adds the diagnostics):"
        )
        lines += [f"#   {_comment(t)}" for t in p.left_out]
    return "\n".join(lines) + "\n"
