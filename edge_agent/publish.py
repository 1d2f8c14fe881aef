"""Published state: the one place that publishes what the agent is and does (availability, decisions, stats).

Topics under `edge-agent/<agent_id>/`: `availability` (`online` retained on every connect; the LWT and a
clean stop say `offline`), `decision/<device>` (JSON, retained: the last decision per device), `stats`
(JSON, retained, every few seconds; `edge-agent status` reads it). Home Assistant discovery hooks in here.
Commands to devices are not state: they go through `MqttLink.send_command`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from edge_agent.effects import dumps
from edge_agent.mqtt import MqttLink

logger = logging.getLogger(__name__)


def _json(obj: Any) -> bytes:
    return dumps(obj).encode()  # NaN/inf become null: always valid JSON


class Publisher:
    """Publishes the agent's state on its topics."""

    def __init__(self, link: MqttLink, agent_id: str) -> None:
        self.link = link
        self.base = f"edge-agent/{agent_id}"
        self.availability_topic = f"{self.base}/availability"
        self.stats_topic = f"{self.base}/stats"
        self.announce_hooks: list[Callable[[], None]] = []  # e.g. Home Assistant discovery, on every connect

    def decision_topic(self, device: str) -> str:
        return f"{self.base}/decision/{device}"

    def announce(self) -> None:
        """On every (re)connect: `online` (retained), then the announce hooks."""
        self.link.publish(self.availability_topic, b"online", qos=1, retain=True)
        for hook in self.announce_hooks:
            hook()

    def decision(self, device: str, payload: dict[str, Any]) -> bool:
        return self.link.publish(self.decision_topic(device), _json(payload), qos=0, retain=True)

    def stats(self, payload: dict[str, Any]) -> bool:
        return self.link.publish(self.stats_topic, _json(payload), qos=0, retain=True)

    def offline_message(self) -> tuple[str, bytes]:
        """What a clean stop publishes (retained QoS1) before disconnecting."""
        return self.availability_topic, b"offline"
