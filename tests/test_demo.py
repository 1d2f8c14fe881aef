"""`edge-agent demo` end to end: its own mosquitto, the simulated home, the agent on the demo bundle."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest


@pytest.mark.integration
def test_demo_runs_decides_and_summarizes(tmp_path) -> None:
    png = tmp_path / "explain.png"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_agent.cli",
            "demo",
            "--minutes",
            "0.25",
            "--speed",
            "300",
            "--no-live",
            "--explain-out",
            str(png),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    assert "demo summary" in out
    decisions = int(re.search(r"decisions (\d+), commands sent", out).group(1))
    assert decisions > 10, out
    for device in ("living.light", "kitchen.light", "bedroom.light", "bedroom.fan", "living.heating"):
        assert device in out
    # the explanation of one light at the end: its summary line, and the picture (or how to get it)
    why = re.search(r"^why: (\w+\.light): ", out, re.M)
    assert why, out
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "pip install 'edge-agent[plots]'" in out
    else:
        assert f"explanation picture: {png}" in out
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


@pytest.mark.integration
def test_demo_bad_broker_argument_is_one_line_exit_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "demo", "--broker", "nonsense", "--minutes", "0.1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "HOST:PORT" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
