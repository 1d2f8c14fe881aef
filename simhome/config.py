"""Build a complete agent config for the simulated home from its topology and a model bundle.

Used by the demo, the lifecycle run and the integration tests: every sensor field of `topology()` becomes a
channel rule (with a bundle: only channels the bundle knows; with none, a fresh install: every channel, with
its kind), every device gets its state/command topics, payload values and (with no bundle) its kind and unit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_agent.config import AgentConfig, parse_config
from edge_agent.manifest import read_manifest
from simhome.layout import Topology, topology


def simhome_config_dict(
    bundle: Path | None,
    *,
    host: str = "127.0.0.1",
    port: int = 1883,
    state_dir: Path,
    agent_id: str = "demo",
    mode: str = "auto",
    topo: Topology | None = None,
    echo_window_seconds: float = 120.0,
    timezone: str = "Europe/Brussels",
    **overrides: Any,
) -> dict[str, Any]:
    """The config as a plain mapping (YAML-ready); `overrides` replace top-level keys.

    Times are on the simulation's clock: at speed 300 the driver's 20 ms tick is 6 sim-seconds, so the echo
    window is wide (a person's change back to another value is still an override)."""
    topo = topo or topology()
    known = None if bundle is None else {c.name for c in read_manifest(bundle).channels}
    channels: list[dict[str, Any]] = [
        {"topic": s.topic, "channel": s.channel, "field": s.field, "invert": s.invert}
        for s in topo.sensors
        if known is None or s.channel in known
    ]
    if bundle is None:  # a fresh install: no bundle to say what a channel is
        for rule, s in zip(channels, topo.sensors, strict=True):
            rule["kind"] = s.kind
    devices = []
    for d in topo.devices:
        dev: dict[str, Any] = {
            "name": d.name,
            "state_topic": d.state_topic,
            "command_topic": d.command_topic,
            "field": d.field,
            "echo_window_seconds": echo_window_seconds,
        }
        if d.value_map:
            dev["values"] = [k for k, _ in sorted(d.value_map.items(), key=lambda kv: kv[1])]
        if d.min_value is not None:
            dev["min_value"] = d.min_value
        if d.max_value is not None:
            dev["max_value"] = d.max_value
        if bundle is None:
            dev["kind"] = d.kind
            if d.unit:
                dev["unit"] = d.unit
        devices.append(dev)
    data: dict[str, Any] = {
        "agent_id": agent_id,
        "mode": mode,
        **({} if bundle is None else {"bundle": str(bundle)}),
        "state_dir": str(state_dir),
        "timezone": timezone,
        "broker": {"host": host, "port": port, "reconnect_min_seconds": 0.2, "reconnect_max_seconds": 2.0},
        "channels": channels,
        "devices": devices,
    }
    data.update(overrides)
    return data


def simhome_config(bundle: Path | None, **kw: Any) -> AgentConfig:
    """Validated `AgentConfig` for the simulated home (see `simhome_config_dict`)."""
    return parse_config(simhome_config_dict(bundle, **kw), "<simhome>")
