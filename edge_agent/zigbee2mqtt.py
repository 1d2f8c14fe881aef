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
import re
from dataclasses import dataclass, field
from typing import Any

from edge_agent.catalog import guess_kind
from edge_agent.ingest import PayloadError, parse_json_object, to_number

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
    "pressure": ("pressure", "generic"),
    "voc": ("voc", "generic"),
    "voc_index": ("voc", "generic"),
    "pm25": ("pm25", "generic"),
    "pm10": ("pm10", "generic"),
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
PUBLISHED, SETTABLE = 1, 2
FEATURE_GROUPS = ("light", "switch", "fan", "climate", "cover", "lock")
FAN_LEVEL_ORDER = ("off", "low", "medium", "high")
_IEEE = re.compile(r"0x[0-9a-fA-F]{16}")
_CONTACT_WORDS = ("door", "window", "gate", "garage")


class Z2mError(ValueError):
    """A bridge/devices payload that cannot be read; `str()` says what and the fix."""


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


def parse_bridge_devices(payload: bytes | str, max_bytes: int = 16 * 1024 * 1024) -> list[dict[str, Any]]:
    """The device list of a `bridge/devices` payload (a JSON array of objects); Z2mError otherwise."""
    data = payload.encode() if isinstance(payload, str) else payload
    try:
        obj = parse_json_object(b'{"devices":' + data + b"}", max_bytes + 16)
    except PayloadError as e:
        raise Z2mError(f"bridge/devices: {e}") from None
    devices = obj.get("devices")
    if not isinstance(devices, list) or not all(isinstance(d, dict) for d in devices):
        raise Z2mError(
            "bridge/devices: not a JSON array of device objects (is it Zigbee2MQTT 1.17 or later?)"
        )
    return devices


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def room_and_rest(friendly_name: str) -> tuple[str, str]:
    """'Living Room/Motion' -> ('living', 'room_motion'); 'hall_door' -> ('hall', 'door')."""
    tokens = [t for t in slug(friendly_name).split("_") if t]
    if not tokens or _IEEE.fullmatch(friendly_name):
        return "unnamed", slug(friendly_name)[-6:] or "device"
    return tokens[0], "_".join(tokens[1:])


def iter_exposes(exposes: list[Any]) -> list[tuple[str | None, dict[str, Any]]]:
    """Flattened exposes with the feature group each belongs to (None for a generic expose)."""
    out: list[tuple[str | None, dict[str, Any]]] = []
    for e in exposes:
        if not isinstance(e, dict):
            continue
        kind = e.get("type")
        if kind in FEATURE_GROUPS and isinstance(e.get("features"), list):
            out += [(str(kind), f) for f in e["features"] if isinstance(f, dict)]
        else:
            out.append((None, e))
    return out


def _access(e: dict[str, Any]) -> int:
    a = e.get("access")
    return a if isinstance(a, int) and not isinstance(a, bool) else 0


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


class _Names:
    def __init__(self) -> None:
        self.taken: set[str] = set()

    def pick(self, *candidates: str) -> str:
        for c in candidates:
            if c not in self.taken:
                self.taken.add(c)
                return c
        base, n = candidates[-1], 2
        while f"{base}_{n}" in self.taken:
            n += 1
        self.taken.add(f"{base}_{n}")
        return f"{base}_{n}"


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
    channel_names, device_names = _Names(), _Names()
    usable: list[tuple[dict[str, Any], list[tuple[str | None, dict[str, Any]]]]] = []
    for dev in devices:
        name = str(dev.get("friendly_name") or dev.get("ieee_address") or "?")
        definition = dev.get("definition")
        if dev.get("type") == "Coordinator":
            out.not_used.append(f"{name}: the coordinator (the Zigbee radio itself)")
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
    channel_names: _Names,
    device_names: _Names,
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
        if not isinstance(prop, str) or not _access(e) & PUBLISHED or prop == "action":
            continue
        if group is not None and _access(e) & SETTABLE:
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
    entry, comment, why_not = _device_entry(dev, flat, topic, room, rest, device_names)
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


def _feature(flat: list[tuple[str | None, dict[str, Any]]], group: str, *props: str) -> dict[str, Any] | None:
    for g, e in flat:
        if g == group and _access(e) & SETTABLE and (e.get("name") in props or e.get("property") in props):
            return e
    return None


def _device_entry(
    dev: dict[str, Any],
    flat: list[tuple[str | None, dict[str, Any]]],
    topic: str,
    room: str,
    rest: str,
    names: _Names,
) -> tuple[dict[str, Any] | None, str, str]:
    """(entry or None, comment, why not used)."""
    groups = [g for g, _ in flat if g is not None]
    if not groups:
        return None, "", ""
    if "lock" in groups and not set(groups) - {"lock"}:
        return (
            None,
            "",
            "a lock: never proposed (the agent must not lock or unlock doors by itself; add it by hand)",
        )
    states = [
        e for g, e in flat if g in ("light", "switch") and e.get("name") == "state" and _access(e) & SETTABLE
    ]
    extra = (
        f"; also {', '.join(str(e.get('property')) for e in states[1:])} (one device per state topic)"
        if len(states) > 1
        else ""
    )
    if states:
        st = states[0]
        kind = "light" if any(g == "light" for g, e in flat if e is st) else "switch"
        leaf = "light" if kind == "light" else (rest or "switch")
        entry: dict[str, Any] = {
            "name": names.pick(f"{room}.{leaf}", f"{room}.{rest or leaf}_{leaf}"),
            "state_topic": topic,
        }
        if st.get("property") != "state":
            entry["field"] = st.get("property")
        values = [st.get("value_off", "OFF"), st.get("value_on", "ON")]
        if values != ["OFF", "ON"]:
            entry["values"] = values
        notes = []
        bri = _feature(flat, "light", "brightness")
        if bri is not None:
            lo, hi = bri.get("value_min", 0), bri.get("value_max", 254)
            notes.append(
                f"dimmable: brightness {lo}..{hi} is settable too (to set it instead of on/off: field: brightness, "
                f"kind: setpoint, min_value: {lo}, max_value: {hi}, setpoint_step: 1)"
            )
        if any(e.get("name") in ("color_xy", "color_hs", "color_temp") for g, e in flat if g == "light"):
            notes.append("colour and colour temperature are left to the person")
        return entry, (": " + "; ".join(notes) if notes else "") + extra, ""
    if "fan" in groups:
        mode = _feature(flat, "fan", "mode", "fan_mode")
        if mode is not None and isinstance(mode.get("values"), list):
            vals = [str(v) for v in mode["values"]]
            words = [v for v in FAN_LEVEL_ORDER if v in vals]
            numbers = sorted((v for v in vals if v.isdigit()), key=int)
            off = ["off"] if "off" in vals else []
            levels = words if len(words) > len(off) else (off + numbers if numbers else vals)
            others = [v for v in vals if v not in levels]
            entry = {
                "name": names.pick(f"{room}.fan", f"{room}.{rest}_fan"),
                "state_topic": topic,
                "field": mode.get("property"),
                "values": levels,
            }
            note = f": modes {', '.join(others)} are not levels; left to the person" if others else ""
            return entry, note, ""
        fst = _feature(flat, "fan", "state")
        if fst is not None:
            entry = {
                "name": names.pick(f"{room}.fan", f"{room}.{rest}_fan"),
                "state_topic": topic,
                "field": fst.get("property"),
            }
            values = [fst.get("value_off", "OFF"), fst.get("value_on", "ON")]
            if values != ["OFF", "ON"]:
                entry["values"] = values
            return entry, "", ""
    if "climate" in groups:
        sp = _feature(flat, "climate", "occupied_heating_setpoint", "current_heating_setpoint")
        if sp is not None:
            entry = {
                "name": names.pick(f"{room}.heating", f"{room}.{rest}_heating"),
                "state_topic": topic,
                "field": sp.get("property"),
                "kind": "setpoint",
            }
            if sp.get("unit"):
                entry["unit"] = sp["unit"]
            for src, dst in (
                ("value_min", "min_value"),
                ("value_max", "max_value"),
                ("value_step", "setpoint_step"),
            ):
                if isinstance(sp.get(src), int | float) and not isinstance(sp.get(src), bool):
                    entry[dst] = sp[src]
            return entry, ": narrow min_value/max_value to what the room should ever get", ""
    if "cover" in groups:
        pos = _feature(flat, "cover", "position")
        if pos is not None:
            entry = {
                "name": names.pick(f"{room}.{rest or 'cover'}", f"{room}.{rest}_cover"),
                "state_topic": topic,
                "field": pos.get("property"),
                "kind": "setpoint",
                "unit": "%",
                "min_value": pos.get("value_min", 0),
                "max_value": pos.get("value_max", 100),
                "setpoint_step": 1,
            }
            return entry, "", ""
    return None, "", f"{'/'.join(sorted(set(groups)))} with no feature the agent can set"


def _yaml_scalar(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False)  # JSON scalars and flow lists are valid YAML


def _entry_lines(p: Proposed, first: str) -> list[str]:
    lines = [f"  # {p.comment}"]
    for i, (k, v) in enumerate(p.entry.items()):
        lines.append(f"  {'- ' if i == 0 else '  '}{k}: {_yaml_scalar(v)}")
    return lines


def render_yaml(p: Proposal, *, broker_host: str, broker_port: int, source: str) -> str:
    """The proposal as a commented YAML config (loads with edge_agent.config.parse_config)."""
    lines = [
        f"# edge-agent config proposed by `edge-agent discover` from {source} ({p.device_count} devices).",
        "# Review it before use: names come from the friendly names (room first); rename freely, keep the topics.",
        "# With no model yet the agent observes (records everything, sends nothing): `edge-agent run --config FILE`.",
        "broker:",
        f"  host: {_yaml_scalar(broker_host)}",
        f"  port: {broker_port}",
        "channels:" if p.channels else "channels: []",
    ]
    for c in p.channels:
        lines += _entry_lines(c, "topic")
    lines.append("devices:" if p.devices else "devices: []")
    for d in p.devices:
        lines += _entry_lines(d, "name")
    if p.not_used:
        lines.append("# Not used:")
        lines += [f"#   {t}" for t in p.not_used]
    if p.left_out:
        lines.append(
            "# Left out (diagnostics, counters, unknown readings; --include-diagnostic adds the diagnostics):"
        )
        lines += [f"#   {t}" for t in p.left_out]
    return "\n".join(lines) + "\n"
