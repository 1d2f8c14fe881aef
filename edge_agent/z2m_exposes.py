"""Zigbee2MQTT's device list, read safely (pure): the `bridge/devices` payload, flattened exposes, names.

Shared by the auto-configuration (`edge_agent.zigbee2mqtt`, `edge_agent.z2m_devices`) and the daemon's
follower (`edge_agent.z2m_follow`). Access bits of an expose: 1 published in the state, 2 settable, 4 gettable.
"""

from __future__ import annotations

import re
from typing import Any

from edge_agent.ingest import PayloadError, parse_json_object

PUBLISHED, SETTABLE = 1, 2
FEATURE_GROUPS = ("light", "switch", "fan", "climate", "cover", "lock")
_IEEE = re.compile(r"0x[0-9a-fA-F]{16}")
Flat = list[tuple[str | None, dict[str, Any]]]  # (feature group or None, expose)


class Z2mError(ValueError):
    """A bridge/devices payload that cannot be read; `str()` says what and the fix."""


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


def access(e: dict[str, Any]) -> int:
    a = e.get("access")
    return a if isinstance(a, int) and not isinstance(a, bool) else 0


class Names:
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
