"""The running daemon's retrain and rollback buttons (real mosquitto, real SQLite file, real child process):
`edge-agent/<id>/retrain/set` trains off the decider thread, the promoted version is hot-swapped between two
decisions (decisions keep flowing, no message lost, every decision payload names its model version), the
stats topic carries `last_retrain`; `rollback/set` PRESS serves the previous version again, a version name
that is corrupt is refused and the one in service stays; `edge-agent retrain --config` from the CLI."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import INITIAL_STATES, Broker, EchoDevices, JumpClock, Observer, agent_config_dict, wait_until
from test_retrain import ALL, OLD, TRAINER, heldout, person_changes
from testbundle import home_bundle

from edge_agent.agent import Agent
from edge_agent.bundlestore import BundleStore
from edge_agent.cli import main
from edge_agent.config import parse_config
from edge_agent.retrain import Retrainer

DECISION = "edge-agent/t1/decision/living.light"
STATS = "edge-agent/t1/stats"


def fake_argv(tmp: Path, version: str) -> list[str]:
    script = tmp / "trainer.py"
    script.write_text(textwrap.dedent(TRAINER))
    src = home_bundle(tmp / f"src-{version}", version=version)
    return [sys.executable, str(script), str(src), "{out}", version, json.dumps(heldout(ALL, OLD))]


@pytest.mark.integration
def test_retrain_and_rollback_buttons_in_the_running_agent(
    broker: Broker, observer: Observer, devices: EchoDevices, tmp_path: Path
) -> None:
    data = agent_config_dict(tmp_path / "unused", broker.port, tmp_path / "state")
    data.pop("bundle")  # serve the store's current
    data["learning"] = {"retrain": {"min_new_labels": 2}}
    cfg = parse_config(data)
    store = BundleStore(cfg.bundle_store)
    store.install(home_bundle(tmp_path / "a", version="champ-A", metrics={"data_end": 0.0}))
    person_changes(cfg, [1000.0, 2000.0, 3000.0])
    agent = Agent(cfg, clock=JumpClock())
    agent.retrain.use(Retrainer(cfg, argv=fake_argv(tmp_path, "chal-B")))
    agent.start()
    sent = 0

    def motion() -> None:
        nonlocal sent
        observer.publish("zigbee2mqtt/living_motion", {"occupancy": sent % 2 == 0, "illuminance": 5}, qos=1)
        sent += 1

    try:
        assert agent.link.wait_connected(5) and agent.bundle.version == "champ-A"
        wait_until(lambda: all(d.tracker.reported is not None for d in agent.devices))
        base = agent.link.counters.received
        for _ in range(10):
            motion()
        wait_until(lambda: any(d["model_version"] == "champ-A" for d in observer.on(DECISION)))
        agent.retrain.done.clear()
        observer.publish("edge-agent/t1/retrain/set", "PRESS", qos=1)

        def on_b() -> bool:
            motion()  # messages keep flowing while the challenger trains and is swapped in
            return any(d.get("model_version") == "chal-B" for d in observer.on(DECISION))

        wait_until(on_b, timeout=30, interval=0.05)
        assert agent.retrain.done.wait(10)
        (result,) = agent.retrain.results
        assert result.outcome == "promoted" and result.trigger == "mqtt", result.reason
        versions = [d["model_version"] for d in observer.on(DECISION)]
        first_b = versions.index("chal-B")
        assert set(versions[:first_b]) == {"champ-A"} and set(versions[first_b:]) == {"chal-B"}
        # a stats message computed between the promotion and the swap may still say champ-A: wait for the next
        wait_until(
            lambda: any(
                (s.get("last_retrain") or {}).get("outcome") == "promoted" and s["model_version"] == "chal-B"
                for s in observer.on(STATS)
            ),
            timeout=10,
        )
        last = [s for s in observer.on(STATS) if s.get("last_retrain")][-1]
        assert last["model_version"] == "chal-B"
        assert (
            last["last_retrain"]["champion"] == "champ-A" and last["last_retrain"]["challenger"] == "chal-B"
        )

        # rollback to a corrupt version: refused by name, chal-B serves on
        store.install(home_bundle(tmp_path / "c", version="bad-C"), make_current=False)
        (store.root / "bad-C" / "model_int8.onnx").write_bytes(b"garbage")
        agent.retrain.done.clear()
        observer.publish("edge-agent/t1/rollback/set", "bad-C", qos=1)
        assert agent.retrain.done.wait(10)
        assert "refused" in agent.retrain.results[-1] and "bad-C" in agent.retrain.results[-1]
        assert store.current_name() == "chal-B"
        # PRESS: back to the previous version (the parent of the one in service)
        agent.retrain.done.clear()
        observer.publish("edge-agent/t1/rollback/set", "PRESS", qos=1)
        assert agent.retrain.done.wait(10)
        assert agent.retrain.results[-1] == "rollback: champ-A"

        def on_a() -> bool:
            motion()
            return observer.on(DECISION)[-1]["model_version"] == "champ-A"

        wait_until(on_a, timeout=20, interval=0.05)
        wait_until(lambda: agent.link.counters.received - base >= sent + 3, timeout=10)
        wait_until(lambda: agent.counters.messages >= sent + len(INITIAL_STATES))
        assert agent.link.counters.dropped == 0 and agent.counters.errors == 0
        assert agent.bundle.version == "champ-A"
    finally:
        agent.stop()


def test_retrain_cli_skips_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = agent_config_dict(tmp_path / "unused", 1, tmp_path / "state")
    data.pop("bundle")
    data["learning"] = {"retrain": {"min_new_labels": 5}}
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg = parse_config(data)
    BundleStore(cfg.bundle_store).install(
        home_bundle(tmp_path / "a", version="champ-A", metrics={"data_end": 0.0})
    )
    person_changes(cfg, [1000.0])
    assert main(["retrain", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "retrain skipped" in out and "1 new labels" in out and "need 5" in out
    assert main(["retrain", "--config", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert "config error" in err and "Traceback" not in err
    assert main(["model", "rollback", "--config", str(path)]) == 2  # only one version: nothing earlier
    assert "no earlier version" in capsys.readouterr().err
