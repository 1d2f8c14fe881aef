"""Settings of the agent's Home Assistant side: MQTT discovery (`homeassistant:`) and suggest mode (`suggest:`).

Kept apart from edge_agent.ha_discovery and edge_agent.suggest so that edge_agent.config can hold them without
importing the modules that use the config.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator


class SuggestSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expiry_seconds: float = Field(
        default=300.0,
        gt=0,
        description="A suggestion not accepted within this long is ignored (recorded); a later accept sends "
        "nothing",
    )
    quiet_after_reject_seconds: float = Field(
        default=1800.0,
        ge=0,
        description="After a person rejects a suggestion, the same value is not suggested again for that "
        "device this long",
    )


class HomeAssistantSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    discovery: bool = Field(default=True, description="Announce the agent to Home Assistant (MQTT discovery)")
    discovery_prefix: str = Field(default="homeassistant", description="HA's MQTT discovery prefix")
    status_topic: str = Field(
        default="homeassistant/status", description="HA's birth topic: `online` there re-announces the agent"
    )
    node_id: str | None = Field(
        default=None,
        description="Id of the agent's HA device in the discovery topic (letters, digits, _ and -); None = "
        "edge_agent_<agent_id>",
    )
    device_name: str | None = Field(
        default=None, description="Name of the HA device; None = 'edge-agent <id>'"
    )
    support_url: str | None = Field(
        default=None, description="URL shown as the origin's support page in HA (http:// or https://)"
    )

    @field_validator("discovery_prefix", "status_topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        if not v or any(c in v for c in "+#\x00"):
            raise ValueError(f"{v!r} must be one exact topic (no '+' or '#')")
        return v

    @field_validator("node_id")
    @classmethod
    def _node_id(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z0-9_-]+", v):
            raise ValueError(f"{v!r} may hold only letters, digits, '_' and '-'")
        return v

    @field_validator("support_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"https?://[^\s/]+", v):
            raise ValueError(f"{v!r} is not an http(s) URL")
        return v
