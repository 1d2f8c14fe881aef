"""`edge-agent mode` and `edge-agent suggest` against a running agent on a real mosquitto; bad input is one
line and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import Broker, agent_config_dict, wait_until

from edge_agent.agent import Agent
from edge_agent.cli import main
from edge_agent.config import load_config

pytestmark = pytest.mark.integration


def _config(bundle_path: Path, port: int, tmp_path: Path) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(agent_config_dict(bundle_path, port, tmp_path / "s", timezone="UTC")))
    return path


def test_mode_and_suggest_commands_reach_the_agent(
    bundle_path: Path, broker: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(bundle_path, broker.port, tmp_path)
    agent = Agent(load_config(path))
    agent.start()
    try:
        assert agent.link.wait_connected(5)
        assert main(["mode", "suggest", "--config", str(path)]) == 0
        assert main(["mode", "observe", "--device", "bedroom.fan", "--config", str(path)]) == 0
        wait_until(lambda: agent.controller.modes.global_mode == "suggest")
        fan = next(d for d in agent.devices if d.name == "bedroom.fan")
        wait_until(lambda: agent.controller.device_mode(fan) == "observe")
        assert main(["suggest", "accept", "living.light", "--config", str(path)]) == 0  # nothing pending
        assert "accept sent for living.light" in capsys.readouterr().out
    finally:
        agent.stop()


def test_bad_input_is_one_line(
    bundle_path: Path, broker: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(bundle_path, broker.port, tmp_path)
    for argv, needle in (
        (["mode", "turbo", "--config", str(path)], "mode 'turbo' is not one of off, observe"),
        (
            ["mode", "auto", "--device", "garage.door", "--config", str(path)],
            "'garage.door' is not a configured",
        ),
        (["suggest", "accept", "garage.door", "--config", str(path)], "'garage.door' is not a configured"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1
    broker.stop()
    assert main(["mode", "auto", "--config", str(path)]) == 1
    assert "cannot reach the broker" in capsys.readouterr().err
