"""Test helpers: a home's config, and a recorder database written through the real Recorder (tables + catalog).

`generated_log` simulates a small home minute by minute: a person present on a daily schedule (with noise)
switches the living-room lamp on when it is dark and they are there, and off when they leave or daylight
returns, with a human lag of 1-4 minutes; the lamp adds 300 lx to the room's illuminance (its footprint).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from edge_agent.catalog import CATALOG_KEY, build_catalog
from edge_agent.config import AgentConfig, load_config
from edge_agent.recorder import Recorder

T_START = 1_717_192_800.0  # 2024-06-01 00:00 Europe/Brussels (22:00 UTC the day before)


def home_config(tmp: Path, **over: Any) -> Path:
    data: dict[str, Any] = {
        "state_dir": str(tmp / "state"),
        "timezone": "Europe/Brussels",
        "broker": {"host": "127.0.0.1", "port": 1},
        "channels": [
            {"topic": "zigbee2mqtt/living_motion", "channel": "living.motion", "field": "occupancy"},
            {"topic": "zigbee2mqtt/living_motion", "channel": "living.illuminance", "field": "illuminance"},
            {"topic": "zigbee2mqtt/living_climate", "channel": "living.temperature", "field": "temperature"},
            {"topic": "zigbee2mqtt/attic_air", "channel": "attic.co2", "field": "co2"},
        ],
        "devices": [
            {"name": "living.light", "state_topic": "zigbee2mqtt/living_light"},
            {
                "name": "hall.fan",
                "state_topic": "zigbee2mqtt/hall_fan",
                "field": "fan_mode",
                "values": ["off", "low", "high"],
            },
        ],
    }
    data.update(over)
    path = tmp / "agent.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def write_db(
    cfg: AgentConfig,
    readings: list[tuple[float, str, float]],
    changes: list[tuple[float, str, float, str, bool]] = (),  # type: ignore[assignment]
    switches: list[tuple[float, str, bool]] = (),  # type: ignore[assignment]
    catalog: bool = True,
) -> str:
    """Write the rows through the agent's Recorder into cfg's database; returns its URL."""
    rec = Recorder(cfg.database_url, queue_size=len(readings) + len(changes) + 1000, batch_rows=20_000)
    try:
        if catalog:
            rec.set_state(CATALOG_KEY, build_catalog(cfg, None), T_START)
        for ts, ch, v in readings:
            rec.add("readings", {"ts": ts, "channel": ch, "value": v})
        prev: dict[str, float | None] = {}
        for ts, dev, v, src, paused in changes:
            rec.add(
                "device_changes",
                {
                    "ts": ts,
                    "device": dev,
                    "value": v,
                    "previous": prev.get(dev),
                    "source": src,
                    "learning_paused": paused,
                },
            )
            prev[dev] = v
        for ts, name, on in switches:
            rec.add("switches", {"ts": ts, "name": name, "value": on})
        assert rec.flush(60.0)
    finally:
        rec.close()
    return cfg.database_url


def generated_log(cfg_path: Path, days: int, seed: int = 0, step: float = 60.0) -> tuple[str, dict[str, int]]:
    """Simulate `days` of the home (module docstring) into the config's database; returns (url, counts)."""
    cfg = load_config(cfg_path)
    rng = np.random.default_rng(seed)
    n = int(days * 86400 / step)
    readings: list[tuple[float, str, float]] = []
    changes: list[tuple[float, str, float, str, bool]] = [(T_START, "living.light", 0.0, "initial", False)]
    light, pending = 0.0, None
    home_from = [17.5 + rng.normal(0, 0.7) for _ in range(days + 1)]
    home_until = [23.0 + rng.normal(0, 0.5) for _ in range(days + 1)]
    morning = [(6.5 + rng.normal(0, 0.3), 7.8 + rng.normal(0, 0.3)) for _ in range(days + 1)]
    person = 0
    for i in range(n):
        t = T_START + i * step
        day, hour = divmod((t - T_START) / 3600.0, 24.0)
        d = int(day)
        present = home_from[d] <= hour < home_until[d] or morning[d][0] <= hour < morning[d][1]
        daylight = max(0.0, math.sin(math.pi * (hour - 5.5) / 16.0)) * 800.0 if 5.5 <= hour <= 21.5 else 0.0
        want = 1.0 if present and daylight < 60.0 else 0.0
        if want != light and pending is None:
            pending = (i + int(rng.integers(1, 5)), want)
        if pending is not None and i >= pending[0]:
            if pending[1] != light:
                light = pending[1]
                changes.append((t + float(rng.uniform(0, step)), "living.light", light, "person", False))
                person += 1
            pending = None
        motion = 1.0 if present and rng.random() < 0.5 else 0.0
        lux = daylight + 300.0 * light + float(rng.normal(0, 5))
        readings.append((t, "living.motion", motion))
        readings.append((t, "living.illuminance", max(0.0, lux)))
        if i % 5 == 0:
            readings.append((t, "living.temperature", 21.0 + 2 * math.sin(hour / 24 * 2 * math.pi)))
    url = write_db(cfg, readings, changes)
    return url, {"person_changes": person, "rows": n}
