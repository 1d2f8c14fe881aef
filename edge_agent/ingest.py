"""Ingest: topic -> channel rules, payload parsing and validation (pure; no broker).

One MQTT message may feed several channels (a Zigbee2MQTT climate sensor: temperature, humidity, co2). Each
rule reads a JSON field (with the alias table for firmware drift), a dotted path (Tasmota `tele/x/SENSOR`
`{"AM2301": {"Temperature": 21.3}}`) or the plain payload; bool / "ON" / "OFF" become 1 / 0 for the binary
kinds only (`BOOLEAN_KINDS`: the event kinds, motion and contact, plus "generic"; `true` is not 1 °C); values
are checked against the physical bounds of the channel's kind. Bad input raises `PayloadError` with a reason,
hostile input included (deep nesting, huge integers): nothing else escapes `parse`, `parse_json_object` or
`to_number`.

Log hygiene shared by the link and the decider: `safe_topic` escapes what a topic or payload excerpt could do
to a log (control, bidi and line-separator characters) and truncates it; `LogLimiter` allows one line per key
(a cause, not a topic: 30,000 random topics must not write 30,000 lines) per period and reports how many it
suppressed.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edge_agent.config import ChannelRule
from edge_agent.kinds import EVENT_KINDS, KindSpec, kind_spec

logger = logging.getLogger(__name__)

_TRUE = {"on", "true", "open", "yes", "1", "occupied", "detected"}
_FALSE = {"off", "false", "closed", "no", "0", "clear", "unoccupied"}

# Kinds whose readings may be written as bool / "ON" / "OFF" (0/1 channels). For a physical quantity
# (temperature, humidity, power, ...) a boolean is a wrong field or a wrong rule, not the value 1.
BOOLEAN_KINDS: frozenset[str] = EVENT_KINDS | {"generic"}

SAFE_TOPIC_CHARS = 200  # log excerpts longer than this are cut


class PayloadError(ValueError):
    """A message that cannot be turned into readings; `str()` says what is wrong."""


@dataclass(frozen=True, slots=True)
class Reading:
    channel: str
    value: float


def safe_topic(s: Any, limit: int = SAFE_TOPIC_CHARS) -> str:
    """`s` fit for one log line: non-printable characters (controls, bidi overrides such as U+202E, line and
    paragraph separators U+2028/U+2029, ...) escaped as \\xNN / \\uNNNN, cut to `limit` characters.
    Bytes are decoded as UTF-8 with replacement first."""
    if isinstance(s, bytes | bytearray | memoryview):
        s = bytes(s[: limit * 4]).decode("utf-8", "replace")
    elif not isinstance(s, str):
        s = str(s)
    extra = len(s) - limit
    head = s[:limit] if extra > 0 else s
    if not head.isprintable():
        head = "".join(c if c.isprintable() else _escape(c) for c in head)
    return f"{head}...(+{extra} chars)" if extra > 0 else head


def _escape(c: str) -> str:
    o = ord(c)
    return f"\\x{o:02x}" if o < 0x100 else (f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")


def to_number(v: Any, *, boolean: bool = True) -> float:
    """bool / number / 'ON' / 'OFF' / numeric string -> float (raises PayloadError, never anything else).

    `boolean=False` refuses bool and the ON/OFF words (a temperature of `true` is a fault, not 1.0); numeric
    strings such as "1" are numbers either way. An integer too large for a float is refused."""
    if isinstance(v, bool):
        if not boolean:
            raise PayloadError(f"value {v!r} is a boolean; this channel expects a number")
        return 1.0 if v else 0.0
    if isinstance(v, int | float):
        try:
            return float(v)
        except OverflowError:
            raise PayloadError("integer value too large for a number") from None
    if isinstance(v, str):
        s = v.strip().lower()
        if s in _TRUE or s in _FALSE:
            if boolean or s in ("0", "1"):
                return 1.0 if s in _TRUE else 0.0
            raise PayloadError(
                f"value {safe_topic(v, 40)!r} is a boolean word; this channel expects a number"
            )
        try:
            return float(s)
        except (ValueError, OverflowError):
            raise PayloadError(f"value {safe_topic(v, 40)!r} is not a number or ON/OFF") from None
    raise PayloadError(f"value of type {type(v).__name__} is not a number or ON/OFF")


def parse_json_object(payload: bytes, max_bytes: int) -> dict[str, Any]:
    """A JSON object from a message payload, safely: size limit, UTF-8, and every parser failure (syntax,
    nesting deep enough for RecursionError, integers beyond Python's 4300-digit limit) as `PayloadError`."""
    if len(payload) > max_bytes:
        raise PayloadError(f"payload of {len(payload)} bytes exceeds max_payload_bytes={max_bytes}")
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("payload is not UTF-8 text") from None
    return _json_object(text)


def _json_object(text: str) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except RecursionError:
        raise PayloadError("JSON nested too deeply") from None
    except json.JSONDecodeError:
        raise PayloadError(f"not JSON: {safe_topic(text, 40)!r}") from None
    except (ValueError, OverflowError):  # Python's int string-conversion limit (4300 digits)
        raise PayloadError("JSON holds a number with too many digits") from None
    if not isinstance(obj, dict):
        raise PayloadError(f"JSON is a {type(obj).__name__}, expected an object")
    return obj


def _lookup(obj: Any, path: Sequence[str], aliases: Mapping[str, list[str]]) -> tuple[bool, Any]:
    """Follow a dotted path (split: `"a.b".split(".")`); at each level try the name, then its aliases.
    Returns (found, value)."""
    cur = obj
    for part in path:
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


@dataclass(frozen=True, slots=True)
class _Plan:
    """One rule as `parse` applies it, resolved once: its field's path split, its kind and that kind's row."""

    rule: ChannelRule
    path: tuple[str, ...]
    kind: str
    boolean: bool  # bool / ON / OFF read as 1 / 0 (BOOLEAN_KINDS)
    spec: KindSpec


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
        self._plans: dict[str, tuple[bool, list[_Plan]]] = {}  # topic -> (any JSON rule, its rules' plans)
        for topic, rules in self._by_topic.items():
            plans = []
            for r in rules:
                kind = r.kind or self.kind(r.channel)
                path = tuple((r.field or "").split("."))
                plans.append(_Plan(r, path, kind, kind in BOOLEAN_KINDS, kind_spec(kind)))
            self._plans[topic] = (any(r.format == "json" for r in rules), plans)

    def topics(self) -> list[str]:
        return sorted(self._by_topic)

    def knows(self, topic: str) -> bool:
        return topic in self._by_topic

    def kind(self, channel: str) -> str:
        return self._kinds.get(channel, "generic")

    def parse(self, topic: str, payload: bytes) -> list[Reading]:
        """Readings in one message (may be empty: a Z2M message without our fields). Raises PayloadError."""
        plan = self._plans.get(topic)
        if plan is None:
            raise PayloadError("no channel rule for this topic")
        if len(payload) > self._max:
            raise PayloadError(f"payload of {len(payload)} bytes exceeds max_payload_bytes={self._max}")
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise PayloadError("payload is not UTF-8 text") from None
        has_json, plans = plan
        obj: Any = _json_object(text) if has_json else None
        out: list[Reading] = []
        for p in plans:
            r = p.rule
            if r.format == "plain":
                raw: Any = text
            else:
                found, raw = _lookup(obj, p.path, self._aliases)
                if not found or raw is None:
                    continue  # partial report (e.g. battery only): not an error
            try:
                value = to_number(raw, boolean=p.boolean)
            except PayloadError as e:
                raise PayloadError(f"{r.channel}: {e}") from None
            out.append(Reading(r.channel, self._validate(r, value, p.kind, p.spec)))
        return out

    def _validate(self, r: ChannelRule, v: float, kind: str, spec: KindSpec) -> float:
        if not math.isfinite(v):
            raise PayloadError(f"{r.channel}: value {v} is not finite")
        v = v * r.scale + r.offset
        if not math.isfinite(v):
            raise PayloadError(f"{r.channel}: value {v} is not finite after scale/offset")
        if r.invert:
            v = 1.0 - v
        lo, hi = spec.bounds
        if not lo <= v <= hi:
            raise PayloadError(f"{r.channel}: {v:g} outside the {kind} bounds {lo:g}..{hi:g}")
        if spec.event:
            v = 1.0 if v >= 0.5 else 0.0
        return v


class LogLimiter:
    """At most one log line per key per `period` seconds (callers pass the clock value), counting the rest.

    Use a cause as the key ("unknown-topic", "bad-payload", "oversized"), not a topic: the number of keys is
    then small and fixed, whatever a flood of random topics does. `check` returns how many lines of that key
    were suppressed since the last one allowed (None = suppress this one); `log` does the whole thing and
    appends "(and N more in the last minute)". Memory is bounded (`max_keys`; the oldest keys go first).
    """

    def __init__(self, period: float = 60.0, max_keys: int = 10_000) -> None:
        self.period = period
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._max_keys = max_keys

    def check(self, key: str, now: float) -> int | None:
        """None if a line for `key` was allowed less than `period` ago (counted), else the count suppressed."""
        last = self._last.get(key)
        if last is not None and now - last < self.period:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        self._last.pop(key, None)
        while len(self._last) >= self._max_keys:  # bounded memory: forget the longest-ago allowed key
            old = next(iter(self._last))
            del self._last[old]
            self._suppressed.pop(old, None)
        self._last[key] = now
        return self._suppressed.pop(key, 0)

    def allow(self, key: str, now: float) -> bool:
        return self.check(key, now) is not None

    def suppressed(self, key: str) -> int:
        """Lines of `key` suppressed since the last allowed one."""
        return self._suppressed.get(key, 0)

    def log(self, log: logging.Logger, level: int, key: str, now: float, msg: str, *args: Any) -> bool:
        """Log `msg % args` unless rate-limited; adds the count of lines suppressed since the last one."""
        n = self.check(key, now)
        if n is None:
            return False
        if n:
            msg += " (and %d more %s)"
            args = (*args, n, self._span())
        log.log(level, msg, *args, stacklevel=2)  # the caller's file:line, not ours
        return True

    def _span(self) -> str:
        return "in the last minute" if self.period == 60.0 else f"in the last {self.period:g}s"
