"""The agent's configuration: one YAML file validated by pydantic (`extra="forbid"`, a description on every field).

Owns the schema (broker, channel parsing rules, devices, recorder, modes), loading with errors that name the
dotted key and the fix (`ConfigError`), secrets read from files, and the redacted dump for `check-config`.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from edge_agent.calendar_features import load_zone, system_zone_name
from edge_agent.config_error import ConfigError
from edge_agent.config_secrets import check_tls_files, credential_path
from edge_agent.governor import GovernorSettings
from edge_agent.ha_settings import HomeAssistantSettings, SuggestSettings
from edge_agent.learning_config import LearningSettings
from edge_agent.procprio import ProcessPrioritySettings
from edge_agent.recorder_config import RecorderSettings
from edge_agent.z2m_config import Zigbee2MqttSettings

Mode = Literal["off", "observe", "shadow", "suggest", "auto"]
# Restrictiveness order: the effective mode of a device is the more restrictive of its own and the global one.
# observe: record only (no model needed); shadow: decide and record; suggest: publish; auto: command.
MODE_ORDER: dict[str, int] = {"off": 0, "observe": 1, "shadow": 2, "suggest": 3, "auto": 4}

# Zigbee2MQTT renamed fields between firmware/versions: a missing field is looked up under these aliases.
DEFAULT_FIELD_ALIASES: dict[str, list[str]] = {
    "illuminance": ["illuminance_lux"],
    "illuminance_lux": ["illuminance"],
    "occupancy": ["presence"],
    "presence": ["occupancy"],
    "temperature": ["local_temperature"],
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TlsSettings(_Strict):
    ca_file: Path | None = Field(default=None, description="CA certificate (PEM) used to verify the broker")
    cert_file: Path | None = Field(default=None, description="Client certificate (PEM) for mutual TLS")
    key_file: Path | None = Field(default=None, description="Client private key (PEM) for mutual TLS")
    tls_insecure: bool = Field(
        default=False,
        description="Do not check that the broker's certificate names broker.host (a warning is logged); "
        "only for a broker whose certificate cannot be fixed yet",
    )


def _topic_name(v: str, what: str) -> str:
    """A topic the agent publishes or matches exactly: no wildcard, not empty, no NUL."""
    if not v:
        raise ValueError(f"{what} is empty; give the full topic, e.g. 'zigbee2mqtt/kitchen_light'")
    if "+" in v or "#" in v:
        raise ValueError(
            f"{what} {v!r} holds an MQTT wildcard ('+' or '#'); give one exact topic per entry "
            "(wildcards belong in broker.extra_subscriptions)"
        )
    if "\x00" in v:
        raise ValueError(f"{what} holds a NUL character")
    return v


class BrokerSettings(_Strict):
    host: str = Field(default="127.0.0.1", description="MQTT broker host name or address")
    port: int = Field(default=1883, ge=1, le=65535, description="MQTT broker TCP port (8883 for TLS)")
    protocol: Literal["5", "3.1.1"] = Field(default="5", description="MQTT protocol version")
    username: str | None = Field(default=None, description="User name; None = anonymous")
    password_file: Path | None = Field(
        default=None,
        description="File holding the password; never put it inline. Under systemd (LoadCredential=) write "
        "the credential's name ('mqtt-password') or '${CREDENTIALS_DIRECTORY}/mqtt-password': a relative "
        "name is looked up in $CREDENTIALS_DIRECTORY when that is set, else next to the config file",
    )
    password: SecretStr | None = Field(default=None, description="Filled from password_file; do not set")
    tls: TlsSettings | None = Field(default=None, description="TLS settings; None = plain TCP")
    keepalive_seconds: int = Field(default=30, ge=5, le=3600, description="MQTT keepalive (real seconds)")
    session_expiry_seconds: int = Field(
        default=300, ge=0, description="MQTT 5 session expiry: the broker keeps our QoS1 session this long"
    )
    reconnect_min_seconds: float = Field(default=1.0, gt=0, description="First reconnect delay (doubles)")
    reconnect_max_seconds: float = Field(default=30.0, gt=0, description="Longest reconnect delay")
    subscribe_qos: Literal[0, 1] = Field(default=1, description="QoS of the sensor and state subscriptions")
    max_inflight: int = Field(
        default=20, ge=1, le=1000, description="Back-pressure: most un-acknowledged QoS1 publishes at once"
    )
    extra_subscriptions: list[str] = Field(
        default_factory=list, description="Extra topic filters to subscribe (unmatched topics are counted)"
    )


class ChannelRule(_Strict):
    topic: str = Field(description="MQTT topic carrying this channel, e.g. 'zigbee2mqtt/kitchen_motion'")
    channel: str = Field(description="Channel name in the model bundle, e.g. 'kitchen.motion'")
    format: Literal["json", "plain"] = Field(
        default="json", description="json: a field of a JSON object (Zigbee2MQTT/Tasmota); plain: the payload"
    )
    field: str | None = Field(
        default=None,
        description="json: field name or dotted path (Tasmota 'AM2301.Temperature'); aliases are tried too",
    )
    invert: bool = Field(default=False, description="Use 1 - value (Zigbee2MQTT 'contact' true = closed)")
    scale: float = Field(default=1.0, description="Multiply the value by this (unit conversion)")
    offset: float = Field(default=0.0, description="Add this after scaling")
    kind: str | None = Field(default=None, description="Channel kind if the bundle does not list the channel")
    stale_after_seconds: float | None = Field(
        default=None, gt=0, description="Mask the channel after this long without a report; None = by kind"
    )

    @field_validator("topic")
    @classmethod
    def _exact_topic(cls, v: str) -> str:
        return _topic_name(v, "channel topic")

    @model_validator(mode="after")
    def _field_needed(self) -> ChannelRule:
        if self.format == "json" and not self.field:
            raise ValueError("a json rule needs 'field' (e.g. field: occupancy); or set format: plain")
        return self


class DeviceConfig(_Strict):
    name: str = Field(description="Device name in the model bundle, e.g. 'living.light'")
    state_topic: str = Field(description="Topic where the device reports its state, e.g. 'zigbee2mqtt/x'")
    command_topic: str | None = Field(default=None, description="Command topic; None = state_topic + '/set'")
    field: str = Field(default="state", description="JSON field of the state and command payloads")
    values: list[str | float] | None = Field(
        default=None,
        description="binary: [off, on] payload values (default ['OFF','ON']); level: one value per level "
        "(e.g. ['off','low','medium','high']); setpoint: unused (numeric)",
    )
    kind: Literal["binary", "level", "setpoint"] | None = Field(
        default=None,
        description="binary | level | setpoint; None = the bundle's, else level when `values` has more than "
        "two entries, setpoint when min_value/max_value are set without values, else binary",
    )
    unit: str = Field(default="", description="Unit of a setpoint device, e.g. '°C'")
    template: dict[str, Any] = Field(
        default_factory=dict, description="Extra fixed fields merged into every command (e.g. transition)"
    )
    mode: Mode | None = Field(
        default=None, description="off | observe | shadow | suggest | auto; None = the global mode"
    )
    room: str | None = Field(
        default=None,
        description="Room whose motion/occupancy channels say someone is there; None = the name's first "
        "part ('living' for 'living.light')",
    )
    min_value: float | None = Field(default=None, description="Clamp: lowest command value (setpoint/level)")
    max_value: float | None = Field(default=None, description="Clamp: highest command value (setpoint/level)")
    setpoint_step: float = Field(default=0.5, gt=0, description="setpoint: commands are rounded to this step")
    hysteresis: float = Field(
        default=0.1,
        ge=0,
        description="binary: probability margin around the threshold; level: extra level margin beyond 0.5; "
        "setpoint: extra margin (unit) beyond half a step",
    )
    min_dwell_seconds: float = Field(
        default=60.0, ge=0, description="No new command this soon after a change"
    )
    max_commands_per_hour: int = Field(default=12, ge=0, description="Rate limit of commands for this device")
    override_hold_seconds: float = Field(
        default=3600.0, ge=0, description="After a manual change, leave the device alone this long"
    )
    echo_window_seconds: float = Field(
        default=10.0, gt=0, description="A state report matching a command sent this recently is its echo"
    )
    required_channels: list[str] = Field(
        default_factory=list, description="Channels that must be live for a command (else: no command)"
    )

    @field_validator("name")
    @classmethod
    def _name_fits_topics(cls, v: str) -> str:
        """The name is part of the agent's topics (decision/<name>, mode/<name>/set, suggest/<name>/accept)."""
        if not v or any(c in v for c in "+#/\x00"):
            raise ValueError(
                f"device name {v!r} may not be empty or hold '/', '+', '#' (it is part of topics)"
            )
        return v

    @field_validator("state_topic")
    @classmethod
    def _exact_state_topic(cls, v: str) -> str:
        return _topic_name(v, "state topic")

    @field_validator("command_topic")
    @classmethod
    def _exact_command_topic(cls, v: str | None) -> str | None:
        return v if v is None else _topic_name(v, "command topic")

    @model_validator(mode="after")
    def _clamp_order(self) -> DeviceConfig:
        if self.min_value is not None and self.max_value is not None and self.min_value > self.max_value:
            raise ValueError(
                f"min_value ({self.min_value:g}) is above max_value ({self.max_value:g}); swap them"
            )
        return self

    def own_kind(self) -> str:
        """The kind this entry says (without a bundle)."""
        if self.kind is not None:
            return self.kind
        if self.values is not None:
            return "level" if len(self.values) > 2 else "binary"
        return "setpoint" if self.min_value is not None or self.max_value is not None else "binary"

    @property
    def effective_command_topic(self) -> str:
        return self.command_topic or f"{self.state_topic}/set"


class AgentConfig(_Strict):
    agent_id: str = Field(default_factory=lambda: _default_agent_id(), description="Agent id used in topics")
    mode: Mode = Field(
        default="shadow",
        description="Global mode: off | observe | shadow | suggest | auto (with no model: observe)",
    )
    bundle: Path | None = Field(
        default=None,
        description="Model bundle directory (manifest.json + ONNX tiers); None = the store's current bundle "
        "(<state_dir>/bundles/current), and with none there the agent observes",
    )
    state_dir: Path = Field(
        default=Path("/var/lib/edge-agent"), description="Directory for the database/state"
    )
    broker: BrokerSettings = Field(default_factory=BrokerSettings, description="MQTT broker connection")
    channels: list[ChannelRule] = Field(default_factory=list, description="Sensor topic -> channel rules")
    field_aliases: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_FIELD_ALIASES.items()},
        description="JSON field -> alternative names tried when it is missing (firmware drift)",
    )
    devices: list[DeviceConfig] = Field(default_factory=list, description="Devices the agent may command")
    decision_tick_seconds: float = Field(
        default=60.0, ge=0.1, description="Periodic decision interval (at least 0.1 s)"
    )
    stats_interval_seconds: float = Field(default=5.0, gt=0, description="Stats publish interval (real s)")
    command_expiry_seconds: float = Field(
        default=5.0, gt=0, description="A command not sent within this time is dropped, never sent late"
    )
    queue_size: int = Field(default=10_000, ge=10, description="Bounded queue between MQTT and the decider")
    max_payload_bytes: int = Field(default=65536, ge=64, description="Larger payloads are rejected")
    publish_decisions: bool = Field(default=True, description="Publish each decision on the decision topic")
    inline_events: bool = Field(
        default=True,
        description="Decide a sensor event on the MQTT thread that received it while the decider is idle (no "
        "thread hand-off before the command); false: every message goes through the decider's queue",
    )
    recorder: RecorderSettings = Field(default_factory=RecorderSettings, description="Database writer")
    governor: GovernorSettings = Field(default_factory=GovernorSettings, description="Tier governor")
    process: ProcessPrioritySettings = Field(
        default_factory=ProcessPrioritySettings, description="Niceness, CPU affinity, inference threads"
    )
    timezone: str = Field(
        default_factory=system_zone_name,
        description="The home's IANA time zone (e.g. 'Europe/Brussels'): calendar inputs are computed in it; "
        "default: the system's",
    )
    learning: LearningSettings = Field(
        default_factory=LearningSettings, description="Labels, other automations, readiness, training"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level")
    zigbee2mqtt: Zigbee2MqttSettings = Field(
        default_factory=Zigbee2MqttSettings,
        description="Zigbee2MQTT's base topic; following its device list and device availability",
    )
    homeassistant: HomeAssistantSettings = Field(
        default_factory=HomeAssistantSettings, description="Home Assistant MQTT discovery"
    )
    suggest: SuggestSettings = Field(
        default_factory=SuggestSettings, description="Suggest mode: how long a suggestion may be accepted"
    )

    @model_validator(mode="after")
    def _unique_devices(self) -> AgentConfig:
        seen: set[str] = set()
        for d in self.devices:
            if d.name in seen:
                raise ValueError(f"device {d.name!r} is listed twice; keep one entry per device")
            seen.add(d.name)
        load_zone(self.timezone)  # ValueError names the zone and the fix
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.agent_id):
            raise ValueError("agent_id may only hold letters, digits, '_', '.', '-' (it is part of topics)")
        return self

    @model_validator(mode="after")
    def _topics_do_not_collide(self) -> AgentConfig:
        """A device's state topic is read by one device only; a command topic is never a sensor's topic
        (the agent would read its own commands as readings)."""
        sensor = {r.topic: i for i, r in enumerate(self.channels)}
        state: dict[str, int] = {}
        for i, d in enumerate(self.devices):
            if d.state_topic in state:
                j = state[d.state_topic]
                raise ValueError(
                    f"devices[{i}].state_topic: {d.state_topic!r} is also the state topic of devices[{j}] "
                    f"({self.devices[j].name!r}); one device per state topic"
                )
            state[d.state_topic] = i
            cmd = d.effective_command_topic
            if cmd in sensor:
                key, how = (
                    ("command_topic", "") if d.command_topic else ("state_topic", " (state_topic + '/set')")
                )
                raise ValueError(
                    f"devices[{i}].{key}: command topic {cmd!r}{how} is the topic of channels[{sensor[cmd]}]; "
                    "a command topic must not be a sensor topic (set devices[].command_topic)"
                )
        return self

    @model_validator(mode="after")
    def _automation_devices_known(self) -> AgentConfig:
        names = {d.name for d in self.devices}
        for i, a in enumerate(self.learning.automations):
            for j, dev in enumerate(a.devices):
                if dev not in names:
                    raise ValueError(
                        f"learning.automations[{i}].devices[{j}]: {dev!r} is not a configured device "
                        f"(devices: {sorted(names)}); fix the name"
                    )
        return self

    @property
    def bundle_store(self) -> Path:
        """Where trained and imported bundles live: <state_dir>/bundles/<version>/, `current` -> in service."""
        return self.state_dir / "bundles"

    def bundle_path(self) -> Path | None:
        """The bundle to serve: `bundle` if set, else the store's `current` if there is one, else None."""
        if self.bundle is not None:
            return self.bundle
        current = self.bundle_store / "current"
        return current if (current / "manifest.json").is_file() else None

    @property
    def database_url(self) -> str:
        return self.recorder.database_url or f"sqlite:///{self.state_dir / 'edge-agent.db'}"

    def device_mode(self, device: DeviceConfig) -> str:
        """Effective mode: the more restrictive of the device's and the global mode."""
        own = device.mode or self.mode
        return own if MODE_ORDER[own] <= MODE_ORDER[self.mode] else self.mode

    def topics(self) -> dict[str, str]:
        base = f"edge-agent/{self.agent_id}"
        return {
            "availability": f"{base}/availability",
            "stats": f"{base}/stats",
            "decision": f"{base}/decision",
            "pause_learning": f"{base}/pause_learning",  # state (retained); commands on .../set
            "pause_control": f"{base}/pause_control",
        }


def _default_agent_id() -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname().split(".")[0]) or "hub"
    return name.lower()


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line per problem: `source: key.path: what (fix)`."""
    lines = []
    for e in err.errors():
        key = _dotted(tuple(p for p in e["loc"] if p not in ("function-after",)))
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; `edge-agent check-config` lists the valid keys)"
        elif e["type"] == "missing":
            msg = "required key is missing: add it"
        msg = msg.removeprefix("Value error, ")
        if not key and re.match(r"[A-Za-z_][\w.\[\]]*: ", msg):  # a model check naming its own key
            lines.append(f"{source}: {msg}")
        else:
            lines.append(f"{source}: {key or '<top>'}: {msg}")
    return "\n".join(lines)


def parse_config(
    data: dict[str, Any],
    source: str = "<config>",
    base_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> AgentConfig:
    """Validate a config mapping; read secrets; resolve relative paths against `base_dir`.

    `broker.password_file` may name a systemd credential: `${CREDENTIALS_DIRECTORY}/x` is expanded, and a
    relative name is taken from `$CREDENTIALS_DIRECTORY` when it is set (`env`, default `os.environ`).
    """
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: the file must hold a YAML mapping (key: value), not {type(data).__name__}"
        )
    broker = data.get("broker")
    if isinstance(broker, dict) and "password" in broker:
        raise ConfigError(f"{source}: broker.password: do not put secrets inline; use broker.password_file")
    try:
        cfg = AgentConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source)) from None
    env = os.environ if env is None else env
    credentials = env.get("CREDENTIALS_DIRECTORY") or None
    if cfg.broker.password_file is not None:
        cfg.broker.password_file = credential_path(str(cfg.broker.password_file), credentials, source)
    if base_dir is not None:
        cfg = _resolve_paths(cfg, base_dir)
    if cfg.broker.password_file is not None:
        try:
            secret = cfg.broker.password_file.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError(
                f"{source}: broker.password_file: cannot read {cfg.broker.password_file} ({e.strerror}); "
                "fix the path or the file's permissions (under systemd: the LoadCredential= source)"
            ) from None
        if not secret:
            raise ConfigError(
                f"{source}: broker.password_file: {cfg.broker.password_file} is empty; write the broker "
                "password into it (one line)"
            )
        cfg.broker.password = SecretStr(secret)
    if cfg.broker.tls is not None:
        check_tls_files(cfg.broker.tls, source)
    return cfg


def _resolve_paths(cfg: AgentConfig, base: Path) -> AgentConfig:
    def fix(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else (base / p)

    cfg.bundle = fix(cfg.bundle)
    cfg.state_dir = fix(cfg.state_dir) or cfg.state_dir
    cfg.broker.password_file = fix(cfg.broker.password_file)
    if cfg.broker.tls is not None:
        t = cfg.broker.tls
        t.ca_file, t.cert_file, t.key_file = fix(t.ca_file), fix(t.cert_file), fix(t.key_file)
    return cfg


def load_config(path: str | Path) -> AgentConfig:
    """Read and validate a YAML config file (raises ConfigError with the key and the fix)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file ({e.strerror}); check the path") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ConfigError(
            f"{path}:{where}: not valid YAML ({getattr(e, 'problem', e)}); fix the syntax"
        ) from None
    return parse_config(data if data is not None else {}, str(path), base_dir=path.parent)


def redacted_dump(cfg: AgentConfig) -> dict[str, Any]:
    """The resolved config as plain data, secrets replaced by '***'."""
    data = cfg.model_dump(mode="json")
    if data["broker"].get("password") is not None:
        data["broker"]["password"] = "***"
    data["database_url"] = re.sub(r"//([^:/@]+):([^@]+)@", r"//\1:***@", cfg.database_url)
    if cfg.recorder.database_url:
        data["recorder"]["database_url"] = data["database_url"]
    return data
