"""`edge-agent model import | list | rollback` and `edge-agent train` from the command line, and the running
agent picking up a newly imported bundle without a restart and without losing a message (real mosquitto,
real SQLite file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import INITIAL_STATES, Broker, EchoDevices, JumpClock, Observer, agent_config_dict, wait_until
from sqlalchemy import select
from testbundle import home_bundle

from edge_agent.agent import Agent
from edge_agent.bundlestore import BundleStore
from edge_agent.cli import main
from edge_agent.config import parse_config
from edge_agent.recorder import model_versions

DECISION = "edge-agent/t1/decision/living.light"


def write_config(tmp: Path, port: int = 1883, **over: Any) -> Path:
    data = agent_config_dict(tmp / "unused", port, tmp / "state", **over)
    data.pop("bundle")  # serve the store's current
    path = tmp / "agent.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_import_list_rollback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path)
    assert main(["model", "list", "--config", str(cfg)]) == 0
    assert "no versions" in capsys.readouterr().out
    a = home_bundle(tmp_path / "a", version="ver-A")
    assert main(["model", "import", str(a), "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "imported ver-A" in out and "now current" in out
    assert (
        main(["model", "import", str(home_bundle(tmp_path / "b", version="ver-B")), "--config", str(cfg)])
        == 0
    )
    capsys.readouterr()
    assert main(["model", "list", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "ver-A" in out and "ver-B" in out and "replaced by ver-B" in out
    rows = {
        cells[2]: cells[1] for ln in out.splitlines() if len(cells := [c.strip() for c in ln.split("│")]) > 3
    }
    assert rows["ver-B"] == "*" and rows["ver-A"] == ""  # the one in service is marked
    assert main(["model", "rollback", "ver-A", "--config", str(cfg)]) == 0
    assert "current is now ver-A" in capsys.readouterr().out
    assert BundleStore(tmp_path / "state" / "bundles").current_name() == "ver-A"


def test_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path)
    assert main(["model", "import", str(tmp_path / "nope"), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edge-agent: not installed") and "no such bundle directory" in err
    assert "\n" not in err
    assert main(["model", "rollback", "ghost", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no version 'ghost'" in err and "\n" not in err
    assert main(["model", "list", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "config error" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.slow
def test_train_cli_trains_and_installs_a_real_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real (tiny) training child through `edge-agent train`: progress lines, the version, per-device metrics."""
    cfg = write_config(tmp_path, learning={"train": {"epochs": 1, "budget_seconds": 120}})
    rc = main(["train", "--config", str(cfg), "--dataset", "simexplore:days=1,seed=1,start=2023-01-02"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "training started (pid" in out.out and "trained " in out.out and "installed " in out.out
    assert "val_f1" in out.out  # thresholds chosen for F1 (the default rule off a db: log)
    store = BundleStore(tmp_path / "state" / "bundles")
    (v,) = store.versions()
    assert v.current and v.source == "train" and "simexplore" in v.version


@pytest.mark.integration
def test_running_agent_picks_up_an_imported_bundle(
    broker: Broker, observer: Observer, devices: EchoDevices, tmp_path: Path
) -> None:
    cfg_file = write_config(tmp_path, port=broker.port)
    store = BundleStore(tmp_path / "state" / "bundles")
    store.install(home_bundle(tmp_path / "a", version="hot-A"))
    agent = Agent(parse_config(yaml.safe_load(cfg_file.read_text())), clock=JumpClock())
    agent.start()
    try:
        assert agent.link.wait_connected(5) and agent.bundle.version == "hot-A"
        wait_until(lambda: all(d.tracker.reported is not None for d in agent.devices))
        base = agent.link.counters.received
        sent = 0

        def motion() -> None:
            nonlocal sent
            observer.publish(
                "zigbee2mqtt/living_motion", {"occupancy": sent % 2 == 0, "illuminance": 500}, qos=1
            )
            sent += 1

        for _ in range(20):
            motion()
        wait_until(lambda: any(d["model_version"] == "hot-A" for d in observer.on(DECISION)))
        assert (
            main(
                [
                    "model",
                    "import",
                    str(home_bundle(tmp_path / "b", version="hot-B")),
                    "--config",
                    str(cfg_file),
                ]
            )
            == 0
        )

        def on_b() -> bool:
            motion()  # messages keep flowing while the swap happens
            return any(d["model_version"] == "hot-B" for d in observer.on(DECISION))

        wait_until(on_b, timeout=20, interval=0.05)
        for _ in range(20):
            motion()
        wait_until(lambda: agent.link.counters.received - base == sent, timeout=10)
        wait_until(lambda: agent.counters.messages >= sent + len(INITIAL_STATES))
        assert agent.link.counters.dropped == 0 and agent.counters.errors == 0
        assert agent.bundle.version == "hot-B" and agent.bundle.path == store.root / "hot-B"
        versions = [d["model_version"] for d in observer.on(DECISION)]
        first_b = versions.index("hot-B")
        assert set(versions[:first_b]) == {"hot-A"} and set(versions[first_b:]) == {"hot-B"}
        agent.recorder.flush()
        with agent.recorder.engine.connect() as c:
            loaded = [
                r.version for r in c.execute(select(model_versions).order_by(model_versions.c.loaded_at))
            ]
        assert loaded == ["hot-A", "hot-B"]
    finally:
        agent.stop()
    assert json.loads((store.root / "store.json").read_text())["hot-B"]["parent"] == "hot-A"
