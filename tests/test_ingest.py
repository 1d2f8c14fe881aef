"""Ingest: Zigbee2MQTT / Tasmota / plain payloads to validated readings; bad input raises PayloadError."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.config import DEFAULT_FIELD_ALIASES, ChannelRule
from edge_agent.ingest import Ingestor, LogLimiter, PayloadError, Reading

RULES = [
    ChannelRule(topic="zigbee2mqtt/living_motion", channel="living.motion", field="occupancy"),
    ChannelRule(topic="zigbee2mqtt/living_motion", channel="living.illuminance", field="illuminance"),
    ChannelRule(topic="zigbee2mqtt/hall_door", channel="hall.door", field="contact", invert=True),
    ChannelRule(topic="tele/attic/SENSOR", channel="attic.temperature", field="AM2301.Temperature"),
    ChannelRule(topic="home/power", channel="house.power", format="plain"),
]
KINDS = {
    "living.motion": "motion",
    "living.illuminance": "illuminance",
    "hall.door": "contact",
    "attic.temperature": "temperature",
    "house.power": "power",
}


@pytest.fixture()
def ing() -> Ingestor:
    return Ingestor(RULES, KINDS, DEFAULT_FIELD_ALIASES, max_payload_bytes=1024)


def _p(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_z2m_message_feeds_two_channels_with_alias(ing: Ingestor) -> None:
    """One motion sensor message gives occupancy and (aliased, older firmware) illuminance_lux."""
    out = ing.parse(
        "zigbee2mqtt/living_motion", _p({"occupancy": True, "illuminance_lux": 31, "battery": 90})
    )
    assert out == [Reading("living.motion", 1.0), Reading("living.illuminance", 31.0)]


def test_contact_inverted(ing: Ingestor) -> None:
    """Z2M contact=true means closed: inverted, the door channel is 1 when open."""
    assert ing.parse("zigbee2mqtt/hall_door", _p({"contact": True})) == [Reading("hall.door", 0.0)]
    assert ing.parse("zigbee2mqtt/hall_door", _p({"contact": False})) == [Reading("hall.door", 1.0)]


def test_tasmota_nested_and_plain(ing: Ingestor) -> None:
    """Tasmota SENSOR JSON by dotted path, and a plain numeric payload."""
    msg = {"Time": "2024-01-01T00:00:00", "AM2301": {"Temperature": 21.5, "Humidity": 40}}
    assert ing.parse("tele/attic/SENSOR", _p(msg)) == [Reading("attic.temperature", 21.5)]
    assert ing.parse("home/power", b" 230.5 ") == [Reading("house.power", 230.5)]
    assert ing.parse("zigbee2mqtt/hall_door", _p({"contact": "OFF"})) == [Reading("hall.door", 1.0)]


def test_partial_report_is_not_an_error(ing: Ingestor) -> None:
    """A message without our fields (battery only) gives no readings and no error."""
    assert ing.parse("zigbee2mqtt/living_motion", _p({"battery": 80})) == []


@pytest.mark.parametrize(
    "topic,payload,why",
    [
        ("zigbee2mqtt/living_motion", b"not json", "not JSON"),
        ("zigbee2mqtt/living_motion", b"[1,2]", "expected an object"),
        ("zigbee2mqtt/living_motion", _p({"occupancy": "maybe"}), "not a number"),
        ("zigbee2mqtt/living_motion", _p({"occupancy": True, "illuminance": -5}), "outside the illuminance"),
        ("zigbee2mqtt/living_motion", b'{"occupancy": NaN}', "not finite"),
        ("zigbee2mqtt/living_motion", b'{"illuminance": Infinity}', "not finite"),
        ("zigbee2mqtt/living_motion", _p({"occupancy": [1]}), "not a number"),
        ("tele/attic/SENSOR", _p({"AM2301": {"Temperature": 120}}), "outside the temperature"),
        ("home/power", b"\xff\xfe", "not UTF-8"),
        ("home/power", b"x" * 2000, "exceeds max_payload_bytes"),
        ("unknown/topic", b"1", "no channel rule"),
    ],
)
def test_bad_payloads_raise_payload_error(ing: Ingestor, topic: str, payload: bytes, why: str) -> None:
    """Each kind of bad input is refused with a reason saying what is wrong."""
    with pytest.raises(PayloadError, match=why):
        ing.parse(topic, payload)


@given(st.binary(max_size=300))
def test_fuzz_only_payload_error(payload: bytes) -> None:
    """Any bytes give readings or a PayloadError, never another exception."""
    ing = Ingestor(RULES, KINDS, DEFAULT_FIELD_ALIASES, max_payload_bytes=1024)
    for topic in ("zigbee2mqtt/living_motion", "tele/attic/SENSOR", "home/power"):
        try:
            for r in ing.parse(topic, payload):
                assert r.value == r.value  # not NaN
        except PayloadError:
            pass


def test_log_limiter_once_per_period() -> None:
    """One log line per key per minute."""
    lim = LogLimiter(60.0)
    assert lim.allow("a", 0.0) and not lim.allow("a", 30.0) and lim.allow("b", 30.0) and lim.allow("a", 61.0)
