"""The `zigbee2mqtt:` section of the config: where Zigbee2MQTT publishes, and whether the daemon follows it.

With `follow: true` the daemon reads the retained `<base_topic>/bridge/devices` (renames, removed devices: one
clear line each, listed in stats; never guessed) and `<base_topic>/<friendly_name>/availability` of every
configured Zigbee2MQTT device (an offline sensor's channels are masked at once). `edge_agent.z2m_follow`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Zigbee2MqttSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_topic: str = Field(
        default="zigbee2mqtt", description="Zigbee2MQTT's base topic (its configuration.yaml mqtt.base_topic)"
    )
    follow: bool = Field(
        default=True,
        description="Follow bridge/devices (renames, removals) and per-device availability of the configured "
        "Zigbee2MQTT devices; false = ignore both",
    )
    max_bridge_payload_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="Largest bridge/devices payload accepted (it lists every device with its exposes: "
        "~5 KB per device)",
    )

    @field_validator("base_topic")
    @classmethod
    def _plain_topic(cls, v: str) -> str:
        v = v.strip("/")
        if not v or "+" in v or "#" in v or "\x00" in v:
            raise ValueError(
                f"{v!r} is not a topic prefix; give Zigbee2MQTT's base topic, e.g. 'zigbee2mqtt'"
            )
        return v
