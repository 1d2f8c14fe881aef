"""CLI: exit 2 with the key / file named on bad input; check-config redacts; SIGTERM flushes; status reads stats."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import Broker, Observer, agent_config_dict, wait_until
from sqlalchemy import create_engine, func, select

from edge_agent.cli import main
from edge_agent.recorder import decisions, readings

EDGE = [sys.executable, "-m", "edge_agent.cli"]


def write_cfg(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_bad_config_exits_2_naming_key(
    tmp_path: Path, bundle_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A misspelled key: exit 2, the dotted key on stderr, no traceback."""
    data = agent_config_dict(bundle_path, 1883, tmp_path)
    data["devices"][1]["max_comands_per_hour"] = 3
    cfg = write_cfg(tmp_path, data)
    assert main(["run", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "devices[1].max_comands_per_hour: unknown key" in err and "Traceback" not in err
    assert main(["check-config", str(cfg)]) == 2


def test_too_few_level_values_for_the_bundle_exits_2_naming_key(
    tmp_path: Path, bundle_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fan with 3 payload values for the model's 4 levels would fail at the first 'high': refused up front."""
    data = agent_config_dict(bundle_path, 1883, tmp_path)
    data["devices"][1]["values"] = ["off", "low", "high"]
    cfg = write_cfg(tmp_path, data)
    assert main(["check-config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "devices[1].values: 3 values for the 4 levels" in err and "Traceback" not in err
    assert main(["run", "--config", str(cfg)]) == 2
    assert "devices[1].values" in capsys.readouterr().err


def test_corrupt_bundle_exits_2_naming_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A tier file whose sha256 does not match: exit 2 naming the file (subprocess: the real entry point)."""
    from testbundle import home_bundle

    b = home_bundle(tmp_path / "b")
    with open(b / "model_int8.onnx", "ab") as f:
        f.write(b"\0")
    cfg = write_cfg(tmp_path, agent_config_dict(b, 1883, tmp_path / "state"))
    proc = subprocess.run([*EDGE, "run", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "model_int8.onnx: sha256 mismatch" in proc.stderr and "Traceback" not in proc.stderr


def test_check_config_prints_redacted(
    tmp_path: Path, bundle_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """check-config prints the resolved config with the password replaced and verifies the bundle."""
    (tmp_path / "pw").write_text("topsecret")
    data = agent_config_dict(bundle_path, 1883, tmp_path)
    data["broker"].update(username="agent", password_file="pw")
    assert main(["check-config", str(write_cfg(tmp_path, data))]) == 0
    out, err = capsys.readouterr()
    assert "topsecret" not in out + err
    assert yaml.safe_load(out)["broker"]["password"] == "***"
    assert "bundle test-1 verified" in err


@pytest.mark.integration
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_flushes_recorder(
    tmp_path: Path, bundle_path: Path, broker: Broker, observer: Observer, signum: signal.Signals
) -> None:
    """SIGTERM (or SIGHUP) to `edge-agent run`: exit 0, offline published, every decision it published is in
    the DB. A second instance on the same state directory is refused with one line while the first runs."""
    data = agent_config_dict(
        bundle_path,
        broker.port,
        tmp_path / "state",
        recorder={"flush_interval_seconds": 120, "batch_rows": 1_000_000},
    )
    cfg = write_cfg(tmp_path, data)
    proc = subprocess.Popen([*EDGE, "run", "--config", str(cfg)], stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: "online" in observer.on("edge-agent/t1/availability"), timeout=20)
        second = subprocess.run(
            [*EDGE, "run", "--config", str(cfg)], capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 2 and "another edge-agent" in second.stderr, second.stderr[-500:]
        assert "Traceback" not in second.stderr
        for i in range(10):
            observer.publish("zigbee2mqtt/living_motion", {"occupancy": i % 2 == 0, "illuminance": 5})
            observer.publish("zigbee2mqtt/bedroom_climate", {"humidity": 40 + i})
            time.sleep(0.05)
        wait_until(lambda: len([t for t, _, _ in observer.messages if "/decision/" in t]) >= 15, timeout=10)
        proc.send_signal(signum)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert observer.on("edge-agent/t1/availability")[-1] == "offline"
    time.sleep(0.2)
    published = len([t for t, _, _ in observer.messages if "/decision/" in t])
    eng = create_engine(f"sqlite:///{tmp_path / 'state' / 'edge-agent.db'}")
    with eng.connect() as c:
        n_dec = c.execute(select(func.count()).select_from(decisions)).scalar()
        chans = {r[0] for r in c.execute(select(readings.c.channel)).all()}
    assert n_dec == published
    assert {"living.motion", "living.illuminance", "bedroom.humidity"} <= chans
    assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")


@pytest.mark.integration
def test_status_reads_stats_then_db(
    tmp_path: Path, bundle_path: Path, broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    """status shows the retained stats while the broker is up, and the DB's last decisions when it is not."""
    from edge_agent.agent import Agent
    from edge_agent.config import parse_config

    data = agent_config_dict(bundle_path, broker.port, tmp_path / "state")
    agent = Agent(parse_config(data))
    agent.start()
    try:
        wait_until(lambda: agent.counters.decisions >= 1 and agent.link.connected.is_set())
        time.sleep(0.6)  # one stats period
    finally:
        agent.stop()
    cfg = write_cfg(tmp_path, data)
    assert main(["status", "--config", str(cfg), "--timeout", "2"]) == 0
    out = capsys.readouterr().out
    assert "from the stats topic" in out and "tier" in out and "full" in out
    broker.stop()
    assert main(["status", "--config", str(cfg), "--timeout", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "from the database" in out and "living.light" in out


def test_status_liveness_needs_availability_and_fresh_stats(tmp_path: Path) -> None:
    """Retained stats outlive the agent (or are spoofed): 'online' needs the availability topic and recent stats."""
    from edge_agent.cli import liveness
    from edge_agent.config import parse_config

    cfg = parse_config({"bundle": str(tmp_path), "stats_interval_seconds": 5})
    assert liveness({"time": 1000.0}, "online", cfg, 1005.0) == "online"
    assert liveness({"time": 1000.0}, "offline", cfg, 1005.0).startswith("offline")
    assert liveness({"time": 1000.0}, None, cfg, 1005.0).startswith("offline")
    assert liveness({"time": 1000.0}, "online", cfg, 5000.0).startswith("not running?")
    assert liveness({}, "online", cfg, 5000.0).startswith("unknown")
