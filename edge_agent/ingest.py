"""Ingest: topic -> channel rules, payload parsing and validation (pure; no broker).

One MQTT message may feed several channels (a Zigbee2MQTT climate sensor: temperature, humidity, co2). Each
rule reads a JSON field (with the alias table for firmware drift), a dotted path (Tasmota `tele/x/SENSOR`
`{"AM2301": {"Temperature": 21.3}}`) or the plain payload; bool / "ON" / "OFF" become 1 / 0; values are
checked against the physical bounds of the channel's kind. Bad input raises `PayloadError` with a reason.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from edge_agent.config import ChannelRule
from edge_agent.kinds import kind_spec

logger = logging.getLogger(__name__)

_TRUE = {"on", "true", "open", "yes", "1", "occupied", "detected"}
_FALSE = {"off", "false", "closed", "no", "0", "clear", "unoccupied"}


class PayloadError(ValueError):
    """A message that cannot be turned into readings; `str()` says what is wrong."""


@dataclass(frozen=True, slots=True)
class Reading:
    channel: str
    value: float


def to_number(v: Any) -> float:
    """bool / number / 'ON' / 'OFF' / numeric string -> float (raises PayloadError)."""
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        s = v.strip().lower()
        if s in _TRUE:
            return 1.0
        if s in _FALSE:
            return 0.0
        try:
            return float(s)
        except ValueError:
            raise PayloadError(f"value {v[:40]!r} is not a number or ON/OFF") from None
    raise PayloadError(f"value of type {type(v).__name__} is not a number or ON/OFF")


def _lookup(obj: Any, path: str, aliases: Mapping[str, list[str]]) -> tuple[bool, Any]:
    """Follow a dotted path; at each level try the name, then its aliases. Returns (found, value)."""
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return False, None
        if part in cur:
            cur = cur[part]
            continue
        for alt in aliases.get(part, ()):
            if alt in cur:
                cur = cur[alt]
                break
        else:
            return False, None
    return True, cur


class Ingestor:
    """Maps topics to channel rules and turns payloads into validated readings."""

    def __init__(
        self,
        rules: Iterable[ChannelRule],
        channel_kinds: Mapping[str, str],
        aliases: Mapping[str, list[str]] | None = None,
        max_payload_bytes: int = 65536,
    ) -> None:
        self._by_topic: dict[str, list[ChannelRule]] = {}
        for r in rules:
            self._by_topic.setdefault(r.topic, []).append(r)
        self._kinds = dict(channel_kinds)
        self._aliases = dict(aliases or {})
        self._max = max_payload_bytes

    def topics(self) -> list[str]:
        return sorted(self._by_topic)

    def knows(self, topic: str) -> bool:
        return topic in self._by_topic

    def kind(self, channel: str) -> str:
        return self._kinds.get(channel, "generic")

    def parse(self, topic: str, payload: bytes) -> list[Reading]:
        """Readings in one message (may be empty: a Z2M message without our fields). Raises PayloadError."""
        rules = self._by_topic.get(topic)
        if rules is None:
            raise PayloadError("no channel rule for this topic")
        if len(payload) > self._max:
            raise PayloadError(f"payload of {len(payload)} bytes exceeds max_payload_bytes={self._max}")
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise PayloadError("payload is not UTF-8 text") from None
        obj: Any = None
        if any(r.format == "json" for r in rules):
            try:
                obj = json.loads(text)
            except ValueError:
                raise PayloadError(f"not JSON: {text[:40]!r}") from None
            if not isinstance(obj, dict):
                raise PayloadError(f"JSON is a {type(obj).__name__}, expected an object")
        out: list[Reading] = []
        for r in rules:
            if r.format == "plain":
                raw: Any = text
            else:
                found, raw = _lookup(obj, r.field or "", self._aliases)
                if not found or raw is None:
                    continue  # partial report (e.g. battery only): not an error
            out.append(Reading(r.channel, self._validate(r, to_number(raw))))
        return out

    def _validate(self, r: ChannelRule, v: float) -> float:
        if not math.isfinite(v):
            raise PayloadError(f"{r.channel}: value {v} is not finite")
        v = v * r.scale + r.offset
        kind = r.kind or self.kind(r.channel)
        if r.invert:
            v = 1.0 - v
        spec = kind_spec(kind)
        lo, hi = spec.bounds
        if not lo <= v <= hi:
            raise PayloadError(f"{r.channel}: {v:g} outside the {kind} bounds {lo:g}..{hi:g}")
        if spec.event:
            v = 1.0 if v >= 0.5 else 0.0
        return v


class LogLimiter:
    """Allow one log line per key per `period` seconds (callers pass the clock value)."""

    def __init__(self, period: float = 60.0, max_keys: int = 10_000) -> None:
        self.period = period
        self._last: dict[str, float] = {}
        self._max_keys = max_keys

    def allow(self, key: str, now: float) -> bool:
        last = self._last.get(key)
        if last is not None and now - last < self.period:
            return False
        if len(self._last) >= self._max_keys:
            self._last.clear()  # bounded memory under a flood of random topics
        self._last[key] = now
        return True
