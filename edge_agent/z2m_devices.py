"""Zigbee2MQTT auto-configuration of the controllable devices (pure): one `devices` entry per Zigbee2MQTT device.

A light or switch: its `state` feature (binary, value_off/value_on), brightness and colour noted, not decided;
a fan: its mode as a level device (the ordinal values: off, low, medium, high or off, 1..9; others noted); a
climate: its heating setpoint (setpoint: value_min/value_max/value_step, unit); a cover: its position (%). A
lock is never proposed. One device per state topic: a second gang of a switch is noted, not proposed.
"""

from __future__ import annotations

from typing import Any

from edge_agent.z2m_exposes import SETTABLE, Flat, Names, access

FAN_LEVEL_ORDER = ("off", "low", "medium", "high")


def feature(flat: Flat, group: str, *props: str) -> dict[str, Any] | None:
    for g, e in flat:
        if g == group and access(e) & SETTABLE and (e.get("name") in props or e.get("property") in props):
            return e
    return None


def device_entry(
    dev: dict[str, Any],
    flat: Flat,
    topic: str,
    room: str,
    rest: str,
    names: Names,
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
        e for g, e in flat if g in ("light", "switch") and e.get("name") == "state" and access(e) & SETTABLE
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
        bri = feature(flat, "light", "brightness")
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
        mode = feature(flat, "fan", "mode", "fan_mode")
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
        fst = feature(flat, "fan", "state")
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
        sp = feature(flat, "climate", "occupied_heating_setpoint", "current_heating_setpoint")
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
        pos = feature(flat, "cover", "position")
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
