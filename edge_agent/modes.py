"""Modes set at run time (from Home Assistant's selects, `mosquitto_pub`, or `edge-agent mode`): pure.

Commands: `edge-agent/<id>/mode/set` (the global mode) and `edge-agent/<id>/mode/<device>/set` (one
device), payload one of off | observe | shadow | suggest | auto (plain text, or JSON {"mode": "..."}). The
state is published retained on `edge-agent/<id>/mode` and `edge-agent/<id>/mode/<device>` (what was set: a
device's effective mode is still capped by the global mode and its readiness, shown in stats), and persisted
in agent_state['modes'] (the pattern of `edge_agent.switches`), so it survives a restart.

The config file stays the source of the defaults: a saved setting remembers the config value it replaced,
and when the config file has been edited since (another value there), the file wins and the saved setting is
dropped with one line saying so.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from edge_agent.config import MODE_ORDER, AgentConfig, DeviceConfig
from edge_agent.effects import Effects, Publication, StateRecord
from edge_agent.ingest import PayloadError
from edge_agent.switches import command_word

logger = logging.getLogger(__name__)

MODES: tuple[str, ...] = tuple(MODE_ORDER)  # off, observe, shadow, suggest, auto
STATE_KEY = "modes"
GLOBAL = ""  # key of the global setting in the saved state


def parse_mode(payload: bytes) -> str:
    """A mode command's payload -> the mode (PayloadError naming the accepted values otherwise)."""
    word, text = command_word(payload, "mode", "mode", f"one of {', '.join(MODES)}")
    if word not in MODE_ORDER:
        raise PayloadError(f"mode {text[:40]!r} is not one of {', '.join(MODES)}")
    return word


def restrict(a: str, b: str) -> str:
    """The more restrictive of two modes."""
    return a if MODE_ORDER[a] <= MODE_ORDER[b] else b


class RuntimeModes:
    """The global and per-device modes as set at run time over the config's, with their topics."""

    def __init__(self, cfg: AgentConfig, saved: Any = None) -> None:
        self.cfg = cfg
        self.base = f"edge-agent/{cfg.agent_id}/mode"
        self._config_value = {GLOBAL: cfg.mode, **{d.name: d.mode for d in cfg.devices}}
        self.set: dict[str, str] = {}  # "" (global) or device name -> mode set at run time
        self._restore(saved)
        self.command_topics: dict[str, str] = {f"{self.base}/set": GLOBAL}
        self.command_topics.update({f"{self.base}/{d.name}/set": d.name for d in cfg.devices})

    def _restore(self, saved: Any) -> None:
        entries = saved.get("set") if isinstance(saved, dict) else None
        if not isinstance(entries, dict):
            return
        for key, v in entries.items():
            if key not in self._config_value or not isinstance(v, dict) or v.get("mode") not in MODE_ORDER:
                continue  # a device no longer configured, or an unreadable entry: nothing to restore
            if v.get("config") != self._config_value[key]:
                logger.info(
                    "mode of %s: the config file now says %s (it said %s when %s was set at run time); the "
                    "config file wins",
                    key or "the agent",
                    self._config_value[key] or "the global mode",
                    v.get("config") or "the global mode",
                    v["mode"],
                )
                continue
            self.set[key] = str(v["mode"])

    # ---- the modes in effect ---------------------------------------------------------------------------
    @property
    def global_mode(self) -> str:
        return self.set.get(GLOBAL, self.cfg.mode)

    def own_mode(self, device: DeviceConfig) -> str:
        """What the device is set to (run time, else its config entry, else the global mode)."""
        return self.set.get(device.name) or device.mode or self.global_mode

    def device_mode(self, device: DeviceConfig) -> str:
        """Effective mode before readiness: the more restrictive of the device's own and the global one."""
        return restrict(self.own_mode(device), self.global_mode)

    # ---- commands --------------------------------------------------------------------------------------
    def state_topic(self, key: str) -> str:
        return self.base if key == GLOBAL else f"{self.base}/{key}"

    def command(self, key: str, payload: bytes, now: float, fx: Effects) -> None:
        """A mode command (PayloadError if not a mode): persisted (urgent) when it changes anything, the state
        published (retained) in any case so the client that set it sees it."""
        mode = parse_mode(payload)
        if self.set.get(key) != mode:
            self.set[key] = mode
            logger.info("mode of %s set to %s", key or "the agent", mode)
            fx.records.append(StateRecord(STATE_KEY, self.saved(), now, urgent=True))
        fx.publications.append(Publication(self.state_topic(key), mode.encode()))

    def saved(self) -> dict[str, Any]:
        return {"set": {k: {"mode": v, "config": self._config_value[k]} for k, v in self.set.items()}}

    def publications(self, devices: Iterable[DeviceConfig] | None = None) -> list[Publication]:
        """The retained states (every connect): the global mode and each device's own."""
        devs = self.cfg.devices if devices is None else devices
        out = [Publication(self.state_topic(GLOBAL), self.global_mode.encode())]
        out += [Publication(self.state_topic(d.name), self.own_mode(d).encode()) for d in devs]
        return out
