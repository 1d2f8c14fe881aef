"""Config: validation errors name the dotted key and the fix; secrets come from files and are redacted."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import edge_agent.recorder_config as recorder_config
from edge_agent.config import AgentConfig, ConfigError, load_config, parse_config, redacted_dump

MIN = {"bundle": "bundle", "agent_id": "hub1"}


def test_minimal_config_defaults_to_shadow(tmp_path: Path) -> None:
    """A new install starts in shadow mode and gets a SQLite DB under the state dir."""
    cfg = parse_config(dict(MIN, state_dir=str(tmp_path)))
    assert cfg.mode == "shadow"
    assert cfg.database_url == f"sqlite:///{tmp_path / 'edge-agent.db'}"
    assert cfg.topics()["availability"] == "edge-agent/hub1/availability"


def test_unknown_key_names_dotted_path() -> None:
    """A typo deep in a list names the full path, so the user finds it."""
    data = dict(MIN, devices=[{"name": "a.light", "state_topic": "z/a", "min_dwel_seconds": 3}])
    with pytest.raises(ConfigError) as e:
        parse_config(data, "cfg.yaml")
    assert "cfg.yaml: devices[0].min_dwel_seconds: unknown key" in str(e.value)


def test_wrong_type_and_missing_key() -> None:
    """Wrong types and missing required keys are each reported with their key."""
    with pytest.raises(ConfigError) as e:
        parse_config({"broker": {"port": "many"}, "devices": [{"state_topic": "z/x"}]}, "c.yaml")
    msg = str(e.value)
    assert "c.yaml: devices[0].name: required key is missing" in msg
    assert "c.yaml: broker.port:" in msg


def test_json_rule_needs_field() -> None:
    """A JSON channel rule without a field is rejected with the fix."""
    with pytest.raises(ConfigError, match=r"channels\[0\].*needs 'field'"):
        parse_config(dict(MIN, channels=[{"topic": "t", "channel": "a.b"}]))


def test_inline_password_refused() -> None:
    """Secrets never live in the YAML: an inline password is an error that points to password_file."""
    with pytest.raises(ConfigError, match="broker.password: .*password_file"):
        parse_config(dict(MIN, broker={"password": "hunter2"}))


def test_password_file_read_and_redacted(tmp_path: Path) -> None:
    """The password is read from its file, relative to the config, and redacted in the dump."""
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "c.yaml").write_text(
        yaml.safe_dump(dict(MIN, broker={"username": "u", "password_file": "pw"}))
    )
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.broker.password is not None and cfg.broker.password.get_secret_value() == "s3cret"
    assert cfg.bundle == tmp_path / "bundle"
    dump = redacted_dump(cfg)
    assert dump["broker"]["password"] == "***"
    assert "s3cret" not in str(dump)


def test_missing_password_file(tmp_path: Path) -> None:
    """An unreadable password file names the key and the path."""
    with pytest.raises(ConfigError, match="broker.password_file: cannot read"):
        parse_config(dict(MIN, broker={"password_file": str(tmp_path / "nope")}))


def test_bad_yaml_reports_line(tmp_path: Path) -> None:
    """Broken YAML gives the line, not a traceback."""
    p = tmp_path / "c.yaml"
    p.write_text("bundle: x\n  bad: [\n")
    with pytest.raises(ConfigError, match="line"):
        load_config(p)


def test_device_mode_is_the_more_restrictive() -> None:
    """The global mode is a cap: a device in auto under a global shadow stays in shadow."""
    cfg = AgentConfig.model_validate(
        dict(
            MIN,
            mode="shadow",
            devices=[
                {"name": "a", "state_topic": "t", "mode": "auto"},
                {"name": "b", "state_topic": "u", "mode": "off"},
            ],
        )
    )
    assert cfg.device_mode(cfg.devices[0]) == "shadow"
    assert cfg.device_mode(cfg.devices[1]) == "off"
    cfg.mode = "auto"
    assert cfg.device_mode(cfg.devices[0]) == "auto"


def test_database_url_password_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A PostgreSQL URL's password does not leak into check-config output."""
    monkeypatch.setattr(recorder_config, "check_database_driver", lambda url: None)  # no PG driver here
    cfg = parse_config(dict(MIN, recorder={"database_url": "postgresql://bob:pw@db/edge"}))
    assert "pw@" not in str(redacted_dump(cfg))


# ---- configs that used to pass check-config and then broke the agent (issue 19, item 9) ------------------
DEV = {"name": "a.light", "state_topic": "z/a"}


@pytest.mark.parametrize(
    "over,key,why",
    [
        ({"devices": [dict(DEV, state_topic="z/+")]}, r"devices\[0\]\.state_topic", "wildcard"),
        ({"devices": [dict(DEV, command_topic="z/a/#")]}, r"devices\[0\]\.command_topic", "wildcard"),
        (
            {"channels": [{"topic": "z/#", "channel": "x.t", "field": "temperature"}]},
            r"channels\[0\]\.topic",
            "wildcard",
        ),
        (
            {"channels": [{"topic": "", "channel": "x.t", "format": "plain"}]},
            r"channels\[0\]\.topic",
            "empty",
        ),
        (
            {"devices": [dict(DEV, min_value=25, max_value=16)]},
            r"devices\[0\]",
            "min_value .*above max_value",
        ),
        (
            {
                "channels": [{"topic": "z/a/set", "channel": "x.t", "format": "plain"}],
                "devices": [DEV],
            },
            r"devices\[0\]\.state_topic",
            r"command topic 'z/a/set'.* is the topic of channels\[0\]",
        ),
        (
            {
                "channels": [{"topic": "z/sensor", "channel": "x.t", "format": "plain"}],
                "devices": [dict(DEV, command_topic="z/sensor")],
            },
            r"devices\[0\]\.command_topic",
            "must not be a sensor topic",
        ),
        (
            {"devices": [DEV, dict(DEV, name="b.light")]},
            r"devices\[1\]\.state_topic",
            r"also the state topic of devices\[0\]",
        ),
        ({"decision_tick_seconds": 0.01}, "decision_tick_seconds", "greater than or equal to 0.1"),
        (
            {"recorder": {"database_url": "postgresql://bob@db/edge"}},
            r"recorder\.database_url",
            "not installed.*pip install",
        ),
        (
            {"recorder": {"database_url": "nosuchdb://x"}},
            r"recorder\.database_url",
            "unknown database dialect",
        ),
    ],
)
def test_configs_that_break_the_agent_fail_validation(over: dict, key: str, why: str) -> None:
    """Each is refused by check-config with the key named and what to do."""
    with pytest.raises(ConfigError, match=f"c.yaml: {key}.*{why}"):
        parse_config(dict(MIN, **over), "c.yaml")


def test_valid_topics_and_clamps_still_pass(tmp_path: Path) -> None:
    """The checks refuse only what breaks: distinct exact topics, equal clamps, a 0.1 s tick and SQLite pass."""
    cfg = parse_config(
        dict(
            MIN,
            decision_tick_seconds=0.1,
            recorder={"database_url": f"sqlite:///{tmp_path / 'x.db'}"},
            channels=[{"topic": "z/sensor", "channel": "x.t", "field": "temperature"}],
            devices=[
                dict(DEV, min_value=20, max_value=20),
                {"name": "b", "state_topic": "z/b", "command_topic": "c/b"},
            ],
            broker={"extra_subscriptions": ["zigbee2mqtt/#"]},
        )
    )
    assert (
        cfg.devices[0].effective_command_topic == "z/a/set"
        and cfg.devices[1].effective_command_topic == "c/b"
    )


# ---- TLS files (issue 19, item 7) ------------------------------------------------------------------------
def test_tls_files_must_exist(tmp_path: Path) -> None:
    """A missing CA file is named by key at check-config time, not discovered as silence at run time."""
    with pytest.raises(ConfigError, match=r"broker\.tls\.ca_file: .*nope\.pem does not exist"):
        parse_config(dict(MIN, broker={"tls": {"ca_file": str(tmp_path / "nope.pem")}}))


def test_tls_ca_file_must_be_pem(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"broker\.tls\.ca_file: .*not a PEM CA certificate"):
        parse_config(dict(MIN, broker={"tls": {"ca_file": str(tmp_path / "ca.pem")}}))


def test_tls_insecure_defaults_off() -> None:
    cfg = parse_config(dict(MIN, broker={"tls": {}}))
    assert cfg.broker.tls is not None and cfg.broker.tls.tls_insecure is False
