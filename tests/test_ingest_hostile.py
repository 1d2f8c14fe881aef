"""Hostile input (issue 19): every bad payload is a PayloadError (never RecursionError / OverflowError), booleans
are refused for physical quantities, and topics/payload excerpts are made safe for a log line."""

from __future__ import annotations

import json
import logging

import pytest

from edge_agent.config import DEFAULT_FIELD_ALIASES, ChannelRule
from edge_agent.ingest import (
    BOOLEAN_KINDS,
    Ingestor,
    LogLimiter,
    PayloadError,
    Reading,
    parse_json_object,
    safe_topic,
    to_number,
)

RULES = [
    ChannelRule(topic="z/motion", channel="m", field="occupancy"),
    ChannelRule(topic="z/climate", channel="t", field="temperature"),
    ChannelRule(topic="z/plain", channel="p", format="plain"),
    ChannelRule(topic="z/generic", channel="g", field="state"),
]
KINDS = {"m": "motion", "t": "temperature", "p": "power", "g": "generic"}

DEEP_LIST = b"[" * 2000 + b"]" * 2000  # 4 KB
DEEP_OBJ = b'{"a":' * 2000 + b"1" + b"}" * 2000
BIG_INT = b'{"temperature": ' + b"9" * 400 + b"}"  # > 308 digits: float() overflows
HUGE_INT = b'{"temperature": ' + b"9" * 5000 + b"}"  # > 4300 digits: int() refuses


@pytest.fixture()
def ing() -> Ingestor:
    return Ingestor(RULES, KINDS, DEFAULT_FIELD_ALIASES, max_payload_bytes=65536)


@pytest.mark.parametrize(
    "payload,why",
    [
        (DEEP_LIST, "nested too deeply"),
        (DEEP_OBJ, "nested too deeply"),
        (BIG_INT, "too large"),
        (HUGE_INT, "too many digits"),
    ],
)
def test_tiny_hostile_json_is_a_payload_error(ing: Ingestor, payload: bytes, why: str) -> None:
    """A few KB of nesting or a 400-digit integer used to raise RecursionError/OverflowError out of parse."""
    assert len(payload) < 16_000  # small messages, well under max_payload_bytes
    with pytest.raises(PayloadError, match=why):
        ing.parse("z/climate", payload)


def test_plain_huge_number_string_is_refused(ing: Ingestor) -> None:
    """A plain payload of 400 digits parses to a finite-looking float only if it fits: else refused."""
    with pytest.raises(PayloadError, match="not finite|outside"):
        ing.parse("z/plain", b"9" * 400)


@pytest.mark.parametrize("payload", [DEEP_LIST, DEEP_OBJ, HUGE_INT, b"\xff", b"[1]", b"nope", b"x" * 200])
def test_parse_json_object_only_payload_error(payload: bytes) -> None:
    """The helper devices.py uses for state payloads: size limit, UTF-8, any parser failure -> PayloadError."""
    with pytest.raises(PayloadError):
        parse_json_object(payload, max_bytes=100 if payload == b"x" * 200 else 65536)


def test_parse_json_object_ok_and_size_limit() -> None:
    assert parse_json_object(b'{"state": "ON"}', 64) == {"state": "ON"}
    with pytest.raises(PayloadError, match="exceeds max_payload_bytes=10"):
        parse_json_object(b'{"state": "ON"}', 10)


def test_to_number_big_int_is_payload_error() -> None:
    with pytest.raises(PayloadError, match="too large"):
        to_number(10**400)
    assert to_number(10**300) == 1e300


@pytest.mark.parametrize("value", [True, False, "ON", "off", "true", "open", "detected"])
def test_boolean_refused_for_a_physical_quantity(ing: Ingestor, value: object) -> None:
    """`true` is not 1.0 °C: booleans and ON/OFF words are refused for non-binary kinds."""
    with pytest.raises(PayloadError, match="t: .*boolean"):
        ing.parse("z/climate", json.dumps({"temperature": value}).encode())


def test_boolean_accepted_for_binary_kinds(ing: Ingestor) -> None:
    """Event kinds and generic channels (a switch) keep accepting booleans and ON/OFF; "1" is a number anywhere."""
    assert {"motion", "contact", "generic"} <= BOOLEAN_KINDS and "temperature" not in BOOLEAN_KINDS
    assert ing.parse("z/motion", b'{"occupancy": true}') == [Reading("m", 1.0)]
    assert ing.parse("z/generic", b'{"state": "OFF"}') == [Reading("g", 0.0)]
    assert ing.parse("z/climate", b'{"temperature": "1"}') == [Reading("t", 1.0)]
    assert ing.parse("z/plain", b"0") == [Reading("p", 0.0)]
    with pytest.raises(PayloadError, match="boolean"):
        ing.parse("z/plain", b"ON")


def test_safe_topic_escapes_and_truncates() -> None:
    """Bidi overrides, line separators and controls are escaped; long topics are cut with the count."""
    s = safe_topic("zigbee2mqtt/\u202eevil\u2028fake log line\n\x1b[31m")
    assert s == "zigbee2mqtt/\\u202eevil\\u2028fake log line\\x0a\\x1b[31m"
    assert s.isprintable()
    long = safe_topic("t/" + "x" * 500)
    assert long.startswith("t/xxx") and long.endswith("...(+302 chars)") and len(long) < 230
    assert safe_topic(b"caf\xc3\xa9 \xff") == "caf\u00e9 \ufffd"
    assert safe_topic("plain/topic") == "plain/topic"


def test_log_limiter_per_cause_counts_suppressed(caplog: pytest.LogCaptureFixture) -> None:
    """30,000 distinct unknown topics under one cause key: one line, then one line saying how many were hidden."""
    log = logging.getLogger("test.limiter")
    lim = LogLimiter(60.0)
    with caplog.at_level(logging.WARNING, logger="test.limiter"):
        for i in range(30_000):
            lim.log(log, logging.WARNING, "unknown-topic", i * 0.001, "unknown topic %s", f"t/{i}")
        assert lim.suppressed("unknown-topic") == 29_999
        lim.log(log, logging.WARNING, "unknown-topic", 61.0, "unknown topic %s", "t/last")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["unknown topic t/0", "unknown topic t/last (and 29999 more in the last minute)"]
    assert lim.suppressed("unknown-topic") == 0


def test_log_limiter_memory_bounded_without_reopening_live_keys() -> None:
    """Past max_keys the oldest key is forgotten (not the whole table, which let a flood re-log every key)."""
    lim = LogLimiter(60.0, max_keys=3)
    assert lim.allow("a", 0.0) and lim.allow("b", 1.0) and lim.allow("c", 2.0)
    assert lim.allow("d", 3.0)  # evicts "a"
    assert not lim.allow("b", 4.0) and not lim.allow("c", 4.0) and not lim.allow("d", 4.0)
    assert lim.check("b", 62.0) == 1
