"""A validator for Home Assistant device-discovery payloads, after HA's documented schema (tests only).

Home Assistant refuses a whole device payload when one component fails its platform's schema, and logs an
error for a state it cannot take (over 255 characters, an option a select does not have, a non-numeric value
for a measurement, an event type not declared). Checked here, per component: the platform's required keys,
only keys the platform allows (the entity options common to all MQTT entities + the platform's own, from the
HA MQTT docs and homeassistant/components/mqtt/<platform>.py), `default_entity_id` of the platform's domain
and never the deprecated `object_id`, unique ids unique, topics without wildcards, and value checks. Templates
are rendered with jinja2's sandbox (as HA does) against real payloads by `render_state` / `render_attributes`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from jinja2.sandbox import ImmutableSandboxedEnvironment

COMMON = {
    "platform",
    "unique_id",
    "default_entity_id",
    "name",
    "icon",
    "entity_category",
    "entity_picture",
    "enabled_by_default",
    "json_attributes_topic",
    "json_attributes_template",
    "availability",
    "availability_topic",
    "availability_mode",
    "availability_template",
    "payload_available",
    "payload_not_available",
    "qos",
    "encoding",
}
PLATFORMS: dict[str, tuple[set[str], set[str]]] = {  # platform -> (required, allowed besides COMMON)
    "sensor": (
        {"state_topic"},
        {
            "value_template",
            "unit_of_measurement",
            "device_class",
            "state_class",
            "expire_after",
            "force_update",
            "last_reset_value_template",
            "suggested_display_precision",
            "options",
        },
    ),
    "select": (
        {"command_topic", "options"},
        {"state_topic", "value_template", "command_template", "optimistic", "retain"},
    ),
    "switch": (
        {"command_topic"},
        {
            "state_topic",
            "payload_on",
            "payload_off",
            "state_on",
            "state_off",
            "value_template",
            "command_template",
            "optimistic",
            "retain",
            "device_class",
        },
    ),
    "button": ({"command_topic"}, {"command_template", "payload_press", "retain", "device_class"}),
    "event": ({"state_topic", "event_types"}, {"value_template", "device_class"}),
}
STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
DURATION_UNITS = {"d", "h", "min", "s", "ms", "µs"}
DEVICE_KEYS = {
    "identifiers",
    "connections",
    "manufacturer",
    "model",
    "model_id",
    "name",
    "hw_version",
    "serial_number",
    "sw_version",
    "via_device",
    "suggested_area",
    "configuration_url",
}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
ROOT_KEYS = {
    "device",
    "origin",
    "components",
    "availability",
    "availability_topic",
    "availability_mode",
    "availability_template",
    "payload_available",
    "payload_not_available",
    "state_topic",
    "command_topic",
    "qos",
    "encoding",
}
ENV = ImmutableSandboxedEnvironment()


def _topic(v: Any, where: str, problems: list[str], *, publish: bool) -> None:
    if not isinstance(v, str) or not v or "\x00" in v:
        problems.append(f"{where}: not a topic: {v!r}")
    elif publish and ("+" in v or "#" in v):
        problems.append(f"{where}: a wildcard in a publish topic: {v!r}")


def _template(v: Any, where: str, problems: list[str]) -> None:
    try:
        ENV.from_string(v)
    except Exception as e:  # jinja2 syntax error: HA refuses the component
        problems.append(f"{where}: template does not compile: {e}")


def validate_component(key: str, c: dict[str, Any]) -> list[str]:
    """Problems with one component (an empty list: HA accepts it)."""
    problems: list[str] = []
    platform = c.get("platform")
    if platform not in PLATFORMS:
        return [f"{key}: unknown or missing platform {platform!r}"]
    if set(c) == {"platform"}:
        return []  # a removal: HA drops the component
    required, allowed = PLATFORMS[platform]
    for k in sorted(required - set(c)):
        problems.append(f"{key}: required key {k!r} missing")
    for k in sorted(set(c) - COMMON - allowed - required):
        problems.append(f"{key}: key {k!r} is not an option of {platform}")
    if "object_id" in c:
        problems.append(f"{key}: deprecated object_id (use default_entity_id)")
    eid = c.get("default_entity_id")
    if not isinstance(eid, str) or not re.fullmatch(rf"{platform}\.[a-z0-9_]+", eid):
        problems.append(f"{key}: default_entity_id {eid!r} is not '{platform}.<object id>'")
    if not isinstance(c.get("unique_id"), str) or not c["unique_id"]:
        problems.append(f"{key}: no unique_id")
    for k in ("command_topic",):
        if k in c:
            _topic(c[k], f"{key}.{k}", problems, publish=True)
    for k in ("state_topic", "json_attributes_topic"):
        if k in c:
            _topic(c[k], f"{key}.{k}", problems, publish=False)
    for k in ("value_template", "json_attributes_template", "command_template"):
        if k in c:
            _template(c[k], f"{key}.{k}", problems)
    if c.get("entity_category") not in (None, "config", "diagnostic"):
        problems.append(f"{key}: entity_category {c['entity_category']!r}")
    for k in ("options", "event_types"):
        if k in c and (not isinstance(c[k], list) or not c[k] or not all(isinstance(x, str) for x in c[k])):
            problems.append(f"{key}: {k} must be a non-empty list of strings")
    if platform == "sensor":
        sc = c.get("state_class")
        if sc is not None and sc not in STATE_CLASSES:
            problems.append(f"{key}: state_class {sc!r}")
        if c.get("device_class") == "duration" and c.get("unit_of_measurement") not in DURATION_UNITS:
            problems.append(f"{key}: a duration needs a time unit, not {c.get('unit_of_measurement')!r}")
        if "expire_after" in c and (not isinstance(c["expire_after"], int) or c["expire_after"] <= 0):
            problems.append(f"{key}: expire_after must be a positive integer (seconds)")
        if "suggested_display_precision" in c and not isinstance(c["suggested_display_precision"], int):
            problems.append(f"{key}: suggested_display_precision must be an integer")
    return problems


def validate_device_payload(payload: dict[str, Any]) -> list[str]:
    """Problems with a whole `homeassistant/device/<node_id>/config` payload."""
    problems = [f"root: key {k!r} is not a device discovery option" for k in sorted(set(payload) - ROOT_KEYS)]
    dev = payload.get("device")
    if not isinstance(dev, dict) or not (dev.get("identifiers") or dev.get("connections")):
        problems.append("device: needs identifiers or connections")
    else:
        problems += [f"device: unknown key {k!r}" for k in sorted(set(dev) - DEVICE_KEYS)]
    origin = payload.get("origin")
    if not isinstance(origin, dict) or not isinstance(origin.get("name"), str):
        problems.append("origin: needs a name")
    else:
        problems += [f"origin: unknown key {k!r}" for k in sorted(set(origin) - ORIGIN_KEYS)]
        url = origin.get("support_url")
        if url is not None and not re.match(r"https?://", str(url)):
            problems.append(f"origin.support_url {url!r} is not a URL")
    for a in payload.get("availability") or []:
        if (
            not isinstance(a, dict)
            or "topic" not in a
            or set(a) - {"topic", "payload_available", "payload_not_available", "value_template"}
        ):
            problems.append(f"availability entry {a!r}")
    comps = payload.get("components")
    if not isinstance(comps, dict) or not comps:
        return problems + ["components: missing or empty"]
    seen: dict[str, str] = {}
    for key, c in comps.items():
        if not isinstance(c, dict):
            problems.append(f"{key}: not a mapping")
            continue
        problems += validate_component(key, c)
        uid = c.get("unique_id")
        if isinstance(uid, str):
            if uid in seen:
                problems.append(f"{key}: unique_id {uid!r} also used by {seen[uid]}")
            seen[uid] = key
    return problems


def render_state(template: str | None, payload: bytes) -> str:
    """The state HA would take from `payload` (the raw payload without a template)."""
    text = payload.decode()
    if template is None:
        return text
    try:
        value_json = json.loads(text)
    except ValueError:
        value_json = None
    return ENV.from_string(template).render(value=text, value_json=value_json)


def render_attributes(template: str | None, payload: bytes) -> dict[str, Any]:
    """The attributes HA would take: a JSON object, else HA logs an error."""
    text = render_state(template, payload) if template is not None else payload.decode()
    obj = json.loads(text)
    assert isinstance(obj, dict), f"attributes are not a JSON object: {text[:80]}"
    return obj


def check_state(c: dict[str, Any], state: str) -> list[str]:
    """Problems HA would log for `state` (after the template) of component `c`."""
    out = []
    if len(state) > 255:
        out.append(f"{c['unique_id']}: state of {len(state)} characters")
    if (
        c["platform"] == "sensor"
        and (c.get("state_class") or c.get("unit_of_measurement"))
        and state != "None"
    ):
        try:
            float(state)
        except ValueError:
            out.append(f"{c['unique_id']}: {state!r} is not numeric")
    if c["platform"] == "select" and state not in c["options"]:
        out.append(f"{c['unique_id']}: {state!r} is not an option")
    if c["platform"] == "switch" and state not in (c.get("payload_on", "ON"), c.get("payload_off", "OFF")):
        out.append(f"{c['unique_id']}: {state!r} is neither on nor off")
    if c["platform"] == "event":
        ev = json.loads(state).get("event_type")
        if ev not in c["event_types"]:
            out.append(f"{c['unique_id']}: event_type {ev!r} not declared")
    return out
