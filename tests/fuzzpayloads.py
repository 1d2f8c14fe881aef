"""Seeded hostile payloads for the fault suite and its benchmark: junk bytes, bad UTF-8, deep nesting, huge
integers, non-finite numbers, wrong types, impossible device states, oversized bodies.

`sensor_payload` may be valid now and then (a fuzzer that never sends a good value tests less); every
`state_payload` is impossible for the test home's devices (a light, a 4-level fan, a °C setpoint): none may
ever be taken for a person's change.
"""

from __future__ import annotations

import json
import random

SENSOR_FIELDS = ("occupancy", "illuminance", "illuminance_lux", "temperature", "humidity", "contact", "co2")
IMPOSSIBLE_STATES: dict[str, tuple[object, ...]] = {  # per state field of the test home's devices
    "state": (-5, 2, 7, 0.5, -1, 1e308, -1e300, [1], {"a": 1}, "blue", "TOGGLE"),  # a light: OFF/ON, 0/1
    "fan_mode": (4, 7, 99, -1, 0.5, 1e308, "turbo", [0]),  # 4 levels: 0..3 or off/low/medium/high
    "occupied_heating_setpoint": (45, -40, 1e308, -1e300, True, False, "warm", {"v": 20}),  # °C, 5..30
}


def _nested(rng: random.Random) -> bytes:
    depth = rng.randint(500, 3000)
    if rng.random() < 0.5:
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


def _scalar(rng: random.Random) -> object:
    return rng.choice(
        [
            rng.uniform(-1e6, 1e6),
            rng.randint(-(10**6), 10**6),
            int("9" * rng.randint(300, 1000)),
            "NaN",
            "inf",
            "-Infinity",
            None,
            True,
            "ON",
            "x" * rng.randint(0, 50),
            [1, 2, 3],
            {"nested": {"deep": 1}},
            "\u202e\u2028evil",
        ]
    )


def _common(rng: random.Random) -> bytes | None:
    r = rng.random()
    if r < 0.08:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))
    if r < 0.14:
        return b"\xff\xfe" + b"\x80" * rng.randint(1, 40)
    if r < 0.24:
        return _nested(rng)
    if r < 0.28:
        return json.dumps({"temperature": 1.0, "pad": "x" * rng.randint(70_000, 200_000)}).encode()
    if r < 0.32:
        return b'{"temperature": ' + b"9" * rng.randint(309, 5000) + b"}"
    if r < 0.36:
        return b"NaN" if rng.random() < 0.5 else b'{"temperature": NaN, "humidity": Infinity}'
    return None


def sensor_payload(rng: random.Random) -> bytes:
    junk = _common(rng)
    if junk is not None:
        return junk
    obj = {f: _scalar(rng) for f in rng.sample(SENSOR_FIELDS, rng.randint(1, 4))}
    try:
        return json.dumps(obj).encode()
    except ValueError:
        return b"{}"


def state_payload(rng: random.Random) -> bytes:
    junk = _common(rng)
    if junk is not None:
        return junk
    field = rng.choice(list(IMPOSSIBLE_STATES))
    value = rng.choice(IMPOSSIBLE_STATES[field])
    if rng.random() < 0.2:
        value = int("9" * rng.randint(309, 800))
    return json.dumps({field: value}).encode()
