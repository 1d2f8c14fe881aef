"""The home's catalog: every configured channel (kind, unit, room) and device (kind, levels, room), with or
without a bundle. The agent writes it into `agent_state['catalog']` at start, so the log is self-describing:
`export-history` and training's `db:` dataset read kinds, rooms, the time zone and the learning settings
from the database alone.

A channel's kind: its rule's `kind`, else the bundle's, else guessed from the last part of its name
('kitchen.motion' -> motion), else generic. A room: the name's first part ('kitchen' of 'kitchen.motion'),
or a device's `room`.
"""

from __future__ import annotations

from typing import Any

from edge_agent.config import AgentConfig
from edge_agent.devices import spec_from_config
from edge_agent.kinds import KINDS, kind_spec
from edge_agent.manifest import Manifest

CATALOG_KEY = "catalog"
# last name part -> kind, for a channel no rule and no bundle types
NAME_KINDS: dict[str, str] = {
    "occupancy": "motion",
    "presence": "motion",
    "pir": "motion",
    "door": "contact",
    "window": "contact",
    "lux": "illuminance",
    "illuminance_lux": "illuminance",
    "light_level": "illuminance",
    "temp": "temperature",
    "rh": "humidity",
    "carbon_dioxide": "co2",
    "energy": "power",
}


def room_of(name: str) -> str:
    return name.split(".", 1)[0]


def guess_kind(channel: str) -> str:
    last = channel.rsplit(".", 1)[-1].lower()
    if last in KINDS and last not in ("calendar", "device_state"):
        return last
    return NAME_KINDS.get(last, "generic")


def channel_kinds(cfg: AgentConfig, manifest: Manifest | None) -> dict[str, str]:
    """Every configured channel -> its kind (rule, bundle, name, generic), in config order."""
    known = {c.name: c.kind for c in manifest.channels} if manifest is not None else {}
    out: dict[str, str] = {}
    for r in cfg.channels:
        if r.channel not in out:
            out[r.channel] = r.kind or known.get(r.channel) or guess_kind(r.channel)
    return out


def build_catalog(cfg: AgentConfig, manifest: Manifest | None) -> dict[str, Any]:
    units = {c.name: c.unit for c in manifest.channels} if manifest is not None else {}
    specs = {d.name: d for d in manifest.devices} if manifest is not None else {}
    channels = {
        name: {
            "kind": kind,
            "unit": units.get(name) or kind_spec(kind).unit,
            "room": room_of(name),
        }
        for name, kind in channel_kinds(cfg, manifest).items()
    }
    devices = {}
    for d in cfg.devices:
        spec = specs.get(d.name) or spec_from_config(d)
        devices[d.name] = {
            "kind": d.kind or spec.kind,
            "levels": spec.levels,
            "unit": spec.unit or d.unit,
            "min_value": d.min_value,
            "max_value": d.max_value,
            "room": d.room or room_of(d.name),
        }
    return {
        "timezone": cfg.timezone,
        "channels": channels,
        "devices": devices,
        "learning": cfg.learning.model_dump(mode="json"),
    }
