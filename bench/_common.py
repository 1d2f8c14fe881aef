"""Shared bench helpers: a mosquitto on a free port, JSON-line output, the test bundles from tests/."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # testbundle: contract-conformant ONNX built with onnx.helper

from simhome.localbroker import LocalBroker  # noqa: E402


def emit(**kw: Any) -> None:
    print(json.dumps(kw), flush=True)


def Mosquitto() -> LocalBroker:  # noqa: N802 - kept as the benches' constructor name
    """A started private mosquitto on a free port (`.port`, `.stop()`)."""
    return LocalBroker().start()


def pct(values: list[float], q: float) -> float | None:
    """The runtime's nearest-rank percentile (edge_agent.stats), rounded; None when empty."""
    from edge_agent.stats import percentile

    return round(percentile(values, q), 3) if values else None
