"""Effects: JSON the agent publishes or records is always valid (NaN/inf -> null, numpy scalars -> numbers)."""

from __future__ import annotations

import json
import math

import numpy as np

from edge_agent.effects import Decision, StateRecord, dumps


def test_dumps_never_writes_nan_or_infinity() -> None:
    text = dumps({"a": math.nan, "b": [math.inf, -math.inf, 1.5], "c": np.float32("nan"), "d": np.int64(3)})
    assert json.loads(text) == {"a": None, "b": [None, None, 1.5], "c": None, "d": 3}
    assert "NaN" not in text and "Infinity" not in text


def test_decision_payload_and_state_row_are_valid_json() -> None:
    d = Decision(
        1.0,
        "x",
        math.nan,
        np.float32(0.5),
        0.9,
        "full",
        "auto",
        True,
        "change",
        "tick",
        [("a", 0.7)],
        False,
        None,
        "v1",
    )
    payload = json.loads(dumps(d.payload()))
    assert payload["value"] is None and payload["output"] == 0.5 and payload["top"] == [["a", 0.7]]
    row = StateRecord("k", {"v": math.inf}, 2.0, urgent=True).row()
    assert json.loads(row["value"]) == {"v": None} and row["key"] == "k"
