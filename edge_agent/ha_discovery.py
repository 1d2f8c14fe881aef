"""Home Assistant MQTT discovery: the agent as one HA device, its entities in one retained message (pure).

`homeassistant/device/<node_id>/config` (retained, QoS1) holds `origin`, `device`, the availability of the
agent's LWT topic (shared by every component) and a `components` map, each component with `platform`,
`unique_id`, `default_entity_id` (`<platform>.<node_id>_<key>`; never the deprecated `object_id`) and the
keys of its platform only: HA refuses the whole device for one bad component. Entities:

* select `mode` (global) and `mode_<device>` per configured device: off | observe | shadow | suggest | auto,
  commands on `edge-agent/<id>/mode[/<device>]/set`, state on `.../mode[/<device>]` (edge_agent.modes);
* switches `pause_control`, `pause_learning` (edge_agent.switches);
* per device: sensor `decision_<device>` (state: the decided value; attributes: the decision payload with the
  top channels and their weights), sensor `labels_<device>` (labels collected, from stats), sensor
  `shadow_<device>` (the shadow score's precision, its counts as attributes: edge_agent.shadow_score), event
  `suggestion_<device>` and buttons `accept_<device>` / `reject_<device>` (edge_agent.suggest);
* sensors from the stats topic: tier, decisions per minute, decision latency (p50), CPU, model version (with
  the last training as attributes) and the last training's outcome;
* buttons `retrain` (`retrain/set`) and `rollback` (`rollback/set`): the retrain loop handles those.

A state is at most 255 characters in HA: every text state is cut in its template; details go to attribute
topics. Re-announced on every connect and when `homeassistant/status` says `online`. A device removed from
the config keeps its components as `{"platform": ...}` only (HA's way to remove a component of a device), and
an empty retained payload clears any per-entity config topic a previous setup may have left.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from edge_agent import __version__
from edge_agent.effects import Publication, StateRecord, dumps
from edge_agent.ha_settings import HomeAssistantSettings
from edge_agent.modes import MODES
from edge_agent.suggest import EVENT_TYPES

STATE_KEY = "ha_components"  # agent_state: every component ever announced -> its platform
MAX_STATE = 255  # Home Assistant's limit on an entity state


def slug(name: str) -> str:
    """A device name as a component key / entity id part: lower case, [a-z0-9_] only."""
    return re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "x"


def _cut(expr: str) -> str:
    """A template rendering `expr` as text of at most MAX_STATE characters."""
    return "{{ (" + expr + ") | string | truncate(" + str(MAX_STATE) + ", True, '', 0) }}"


def _stat(key: str) -> str:
    return "{{ value_json.get(" + json.dumps(key) + ") }}"


class Discovery:
    """Builds the device payload for a config and remembers the components announced before (removals)."""

    def __init__(
        self,
        agent_id: str,
        devices: list[str],
        settings: HomeAssistantSettings,
        saved: Any = None,
        stats_seconds: float = 5.0,
    ):
        self.settings = settings
        # a daemon that hangs with its TCP link up stays `online`: the stats sensors expire instead
        self.expire_after = int(max(60.0, 6 * stats_seconds))
        self.agent_id = agent_id
        self.devices = list(devices)
        self.base = f"edge-agent/{agent_id}"
        self.node_id = settings.node_id or f"edge_agent_{slug(agent_id)}"
        self.topic = f"{settings.discovery_prefix}/device/{self.node_id}/config"
        self.known: dict[str, str] = (
            {str(k): str(v) for k, v in saved.items()} if isinstance(saved, Mapping) else {}
        )

    # ---- components ------------------------------------------------------------------------------------
    def _c(self, platform: str, key: str, name: str, **keys: Any) -> tuple[str, dict[str, Any]]:
        comp = {
            "platform": platform,
            "unique_id": f"{self.node_id}_{key}",
            "default_entity_id": f"{platform}.{self.node_id}_{key}",
            "name": name,
            **keys,
        }
        return key, comp

    def components(self) -> dict[str, dict[str, Any]]:
        b, stats = self.base, f"{self.base}/stats"
        last = "(value_json.get('last_retrain') or {})"
        out = [
            self._c(
                "select",
                "mode",
                "Mode",
                command_topic=f"{b}/mode/set",
                state_topic=f"{b}/mode",
                options=list(MODES),
                icon="mdi:robot",
            ),
            self._c(
                "switch",
                "pause_control",
                "Pause control",
                command_topic=f"{b}/pause_control/set",
                state_topic=f"{b}/pause_control",
                payload_on="ON",
                payload_off="OFF",
                icon="mdi:pause-octagon",
            ),
            self._c(
                "switch",
                "pause_learning",
                "Pause learning",
                command_topic=f"{b}/pause_learning/set",
                state_topic=f"{b}/pause_learning",
                payload_on="ON",
                payload_off="OFF",
                icon="mdi:school",
            ),
            self._c(
                "sensor",
                "tier",
                "Model tier",
                expire_after=self.expire_after,
                state_topic=stats,
                value_template=_cut("value_json.get('tier')"),
                entity_category="diagnostic",
                icon="mdi:stairs-down",
            ),
            self._c(
                "sensor",
                "decisions_per_min",
                "Decisions per minute",
                expire_after=self.expire_after,
                state_topic=stats,
                value_template=_stat("decisions_per_min"),
                unit_of_measurement="decisions/min",
                state_class="measurement",
                entity_category="diagnostic",
            ),
            self._c(
                "sensor",
                "latency",
                "Decision latency",
                expire_after=self.expire_after,
                state_topic=stats,
                value_template=_stat("latency_ms_p50"),
                unit_of_measurement="ms",
                device_class="duration",
                state_class="measurement",
                suggested_display_precision=2,
                entity_category="diagnostic",
            ),
            self._c(
                "sensor",
                "cpu",
                "CPU",
                expire_after=self.expire_after,
                state_topic=stats,
                value_template=_stat("cpu_percent"),
                unit_of_measurement="%",
                state_class="measurement",
                entity_category="diagnostic",
                icon="mdi:cpu-64-bit",
            ),
            self._c(
                "sensor",
                "model_version",
                "Model version",
                state_topic=stats,
                value_template=_cut("value_json.get('model_version')"),
                json_attributes_topic=stats,
                json_attributes_template="{{ {'last_retrain': value_json.get('last_retrain')} | tojson }}",
                icon="mdi:brain",
            ),
            self._c(
                "sensor",
                "last_training",
                "Last training",
                state_topic=stats,
                value_template=_cut(f"{last}.get('outcome', 'none')"),
                json_attributes_topic=stats,
                json_attributes_template="{{ " + last + " | tojson }}",
                icon="mdi:school-outline",
            ),
            self._c(
                "button", "retrain", "Retrain now", command_topic=f"{b}/retrain/set", payload_press="PRESS"
            ),
            self._c(
                "button",
                "rollback",
                "Roll back model",
                command_topic=f"{b}/rollback/set",
                payload_press="PRESS",
            ),
        ]
        for d in self.devices:
            s, dn = slug(d), json.dumps(d)
            out += [
                self._c(
                    "select",
                    f"mode_{s}",
                    f"{d} mode",
                    command_topic=f"{b}/mode/{d}/set",
                    state_topic=f"{b}/mode/{d}",
                    options=list(MODES),
                ),
                self._c(
                    "sensor",
                    f"decision_{s}",
                    f"{d} decision",
                    state_topic=f"{b}/decision/{d}",
                    value_template=_cut("value_json.get('value')"),
                    json_attributes_topic=f"{b}/decision/{d}",
                    icon="mdi:head-lightbulb",
                ),
                self._c(
                    "sensor",
                    f"labels_{s}",
                    f"{d} labels collected",
                    state_topic=stats,
                    value_template="{{ (value_json.get('devices') or {}).get("
                    + dn
                    + ", {}).get('labels_collected') }}",
                    entity_category="diagnostic",
                    icon="mdi:tag-multiple",
                ),
                self._c(
                    "sensor",
                    f"shadow_{s}",
                    f"{d} shadow precision",
                    state_topic=stats,
                    value_template="{% set s = (value_json.get('shadow_score') or {}).get("
                    + dn
                    + ") %}{{ (s.precision * 100) | round(1) if s and s.precision is not none else none }}",
                    json_attributes_topic=stats,
                    json_attributes_template="{{ ((value_json.get('shadow_score') or {}).get("
                    + dn
                    + ") or {}) | tojson }}",
                    unit_of_measurement="%",
                    state_class="measurement",
                    entity_category="diagnostic",
                    icon="mdi:account-eye",
                ),
                self._c(
                    "event",
                    f"suggestion_{s}",
                    f"{d} suggestion",
                    state_topic=f"{b}/suggest/{d}",
                    event_types=list(EVENT_TYPES),
                    icon="mdi:lightbulb-question",
                ),
                self._c(
                    "button",
                    f"accept_{s}",
                    f"Accept {d} suggestion",
                    command_topic=f"{b}/suggest/{d}/accept",
                    payload_press="PRESS",
                    icon="mdi:check",
                ),
                self._c(
                    "button",
                    f"reject_{s}",
                    f"Reject {d} suggestion",
                    command_topic=f"{b}/suggest/{d}/reject",
                    payload_press="PRESS",
                    icon="mdi:close",
                ),
            ]
        return dict(out)

    # ---- the device payload ----------------------------------------------------------------------------
    def payload(self) -> dict[str, Any]:
        known = self.known
        comps: dict[str, dict[str, Any]] = {
            k: {"platform": p} for k, p in known.items()
        }  # removed ones stay as platform-only: HA removes them
        comps.update(self.components())
        origin: dict[str, Any] = {"name": "edge-agent", "sw_version": __version__}
        if self.settings.support_url:
            origin["support_url"] = self.settings.support_url
        return {
            "device": {
                "identifiers": [self.node_id],
                "name": self.settings.device_name or f"edge-agent {self.agent_id}",
                "manufacturer": "edge-agent",
                "model": "edge-agent home controller",
                "sw_version": __version__,
            },
            "origin": origin,
            "availability": [
                {
                    "topic": f"{self.base}/availability",
                    "payload_available": "online",
                    "payload_not_available": "offline",
                }
            ],
            "components": comps,
            "qos": 1,
        }

    def removed(self) -> dict[str, str]:
        """Components announced before that the config no longer has -> their platform."""
        current, known = self.components(), self.known  # `known` is replaced, never mutated: thread-safe
        return {k: p for k, p in known.items() if k not in current}

    def announce(self, now: float) -> tuple[list[Publication], StateRecord]:
        """The retained device config, an empty retained payload on each removed component's per-entity
        topic, and the state to save (every component announced so far)."""
        pubs = [Publication(self.topic, dumps(self.payload()).encode())]
        prefix = self.settings.discovery_prefix
        for key, platform in self.removed().items():
            pubs.append(Publication(f"{prefix}/{platform}/{self.node_id}/{key}/config", b""))
        self.known = {**self.known, **{k: str(c["platform"]) for k, c in self.components().items()}}
        return pubs, StateRecord(STATE_KEY, dict(self.known), now, urgent=False)

    def is_online(self, payload: bytes) -> bool:
        """HA's birth message (`online`) on the status topic."""
        return payload.strip().lower() == b"online"
