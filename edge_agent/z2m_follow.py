"""The running daemon following Zigbee2MQTT (pure): bridge/devices changes and per-device availability.

The config names Zigbee2MQTT devices through topics `<base>/<friendly_name>` (channel rules, device state
topics). This module reads:

* `<base>/<friendly_name>/availability` of each configured name: JSON `{"state": "online"|"offline"}` or the
  legacy plain `online`/`offline`. Offline: the device's channels are unavailable at once (not after their
  stale time); back online they stay masked until the sensor reports again (the controller's job).
* the retained `<base>/bridge/devices`: a configured name missing from the list is unavailable too, with one
  clear line: renamed (the same IEEE address now has another name: the config's topics must follow) or
  removed. Devices the config does not use are listed (`unconfigured` in stats), never guessed at run time.

`handle(topic, payload)` returns the channels whose availability changed: `[(channel, available), ...]`.
Bad payloads raise `PayloadError` (the controller counts and logs them).
"""

from __future__ import annotations

import json
import logging

from edge_agent.config import AgentConfig
from edge_agent.ingest import PayloadError, safe_topic
from edge_agent.z2m_exposes import Z2mError, parse_bridge_devices

logger = logging.getLogger(__name__)

MAX_LISTED = 50  # names listed in stats per category


class Zigbee2MqttFollower:
    def __init__(self, cfg: AgentConfig) -> None:
        z = cfg.zigbee2mqtt
        self.enabled = z.follow
        self.max_bytes = z.max_bridge_payload_bytes
        prefix = z.base_topic + "/"
        self.bridge_topic = f"{z.base_topic}/bridge/devices"
        self.channels_of: dict[str, list[str]] = {}  # friendly name -> its channels
        self.devices_of: dict[str, list[str]] = {}  # friendly name -> its devices (state topics)
        for r in cfg.channels:
            name = self._name(r.topic, prefix)
            if name is not None:
                self.channels_of.setdefault(name, []).append(r.channel)
        for d in cfg.devices:
            name = self._name(d.state_topic, prefix)
            if name is not None:
                self.devices_of.setdefault(name, []).append(d.name)
        names = set(self.channels_of) | set(self.devices_of)
        self.availability = {f"{prefix}{n}/availability": n for n in sorted(names)} if self.enabled else {}
        self.offline: set[str] = set()
        self.missing: dict[str, str] = {}  # configured name -> "removed" | "renamed to 'x'"
        self.unconfigured: list[str] = []
        self._listed = False  # a device list was read
        self._ieee_of: dict[str, str] = {}  # configured friendly name -> its IEEE address, once seen
        self._down: set[str] = set()  # channels unavailable now

    @staticmethod
    def _name(topic: str, prefix: str) -> str | None:
        if not topic.startswith(prefix):
            return None
        name = topic[len(prefix) :]
        return None if not name or name.startswith("bridge/") else name

    def topics(self) -> set[str]:
        if not self.enabled or not (self.channels_of or self.devices_of):
            return set()
        return {self.bridge_topic, *self.availability}

    def payload_limits(self) -> dict[str, int]:
        """Topics allowed a larger payload than max_payload_bytes (the device list)."""
        return {self.bridge_topic: self.max_bytes} if self.topics() else {}

    def knows(self, topic: str) -> bool:
        return self.enabled and (topic == self.bridge_topic or topic in self.availability)

    def handle(self, topic: str, payload: bytes) -> list[tuple[str, bool]]:
        if topic == self.bridge_topic:
            self._devices(payload)
        else:
            self._availability(self.availability[topic], payload)
        return self._changes()

    # ---- availability ----------------------------------------------------------------------------------
    def _availability(self, name: str, payload: bytes) -> None:
        text = payload.decode("utf-8", "replace").strip()
        state: object = text
        if text.startswith("{"):
            try:
                state = json.loads(text).get("state")
            except (ValueError, AttributeError):
                raise PayloadError(
                    f'availability of {safe_topic(name)!r} is not JSON {{"state": ...}}'
                ) from None
        if state not in ("online", "offline"):
            raise PayloadError(
                f"availability of {safe_topic(name)!r}: {safe_topic(text, 40)!r} is neither online nor offline"
            )
        if state == "offline" and name not in self.offline:
            self.offline.add(name)
            logger.warning(
                "zigbee2mqtt: %s is offline: its channels %s are masked until it is back and reports again",
                safe_topic(name),
                ", ".join(self.channels_of.get(name, [])) or "(none)",
            )
        elif state == "online" and name in self.offline:
            self.offline.discard(name)
            logger.info("zigbee2mqtt: %s is online again (its channels come back with its next report)", name)

    # ---- the device list -------------------------------------------------------------------------------
    def _devices(self, payload: bytes) -> None:
        try:
            devices = parse_bridge_devices(payload, self.max_bytes)
        except Z2mError as e:
            raise PayloadError(str(e)) from None
        now: dict[str, str] = {}
        for d in devices:
            if d.get("type") == "Coordinator":
                continue
            ieee, name = d.get("ieee_address"), d.get("friendly_name")
            if isinstance(ieee, str) and isinstance(name, str):
                now[ieee] = name
        names = set(now.values())
        configured = set(self.channels_of) | set(self.devices_of)
        for ieee, name in now.items():
            if name in configured:
                self._ieee_of[name] = ieee
        missing: dict[str, str] = {}
        for name in sorted(configured - names):
            known = self._ieee_of.get(name)
            new = now.get(known) if known is not None else None
            missing[name] = (
                f"renamed to {new!r}" if new else "removed" if known is not None else "not in the list"
            )
        for name, why in missing.items():
            if self.missing.get(name) != why:
                what = ", ".join(self.channels_of.get(name, []) + self.devices_of.get(name, []))
                if why.startswith("renamed"):
                    fix = f"put the new name in the config's topics of {what} and restart"
                else:
                    fix = "pair it again, or remove its channels and devices from the config"
                logger.warning(
                    "zigbee2mqtt: configured device %r is %s in bridge/devices: %s unavailable (not guessed); %s",
                    name,
                    why,
                    what,
                    fix,
                )
        for name in set(self.missing) - set(missing):
            logger.info("zigbee2mqtt: %r is in bridge/devices again", name)
        self.missing = missing
        unconf = sorted(names - configured)
        added = set(unconf) - set(self.unconfigured)
        if added and self._listed:
            logger.info(
                "zigbee2mqtt: device(s) not in the config (listed in stats, not used): %s",
                ", ".join(sorted(added)),
            )
        self.unconfigured = unconf
        self._listed = True

    def _changes(self) -> list[tuple[str, bool]]:
        down = {c for n in self.offline | set(self.missing) for c in self.channels_of.get(n, [])}
        out = [(c, False) for c in sorted(down - self._down)] + [(c, True) for c in sorted(self._down - down)]
        self._down = down
        return out

    def stats(self) -> dict[str, object]:
        return {
            "offline": sorted(self.offline)[:MAX_LISTED],
            "missing": dict(sorted(self.missing.items())[:MAX_LISTED]),
            "unconfigured": self.unconfigured[:MAX_LISTED],
            "unavailable_channels": sorted(self._down)[:MAX_LISTED],
        }


def status_lines(z: object) -> list[str]:
    """`edge-agent status` lines for the stats key `zigbee2mqtt` (nothing when all is well)."""
    if not isinstance(z, dict):
        return []
    out = []
    if z.get("offline"):
        out.append(f"zigbee2mqtt: offline (channels masked): {', '.join(map(str, z['offline']))}")
    missing = z.get("missing")
    if isinstance(missing, dict) and missing:
        shown = "; ".join(f"{k} {v}" for k, v in missing.items())
        out.append(f"zigbee2mqtt: configured but not in bridge/devices (fix the config's topics): {shown}")
    if z.get("unconfigured"):
        out.append(
            f"zigbee2mqtt: devices not in the config (not used): {', '.join(map(str, z['unconfigured']))}"
        )
    return out
