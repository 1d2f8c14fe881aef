"""Config: validation errors name the dotted key and the fix; secrets come from files and are redacted."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

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
        parse_config({"broker": {"port": "many"}}, "c.yaml")
    msg = str(e.value)
    assert "c.yaml: bundle: required key is missing" in msg
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


def test_database_url_password_redacted() -> None:
    """A PostgreSQL URL's password does not leak into check-config output."""
    cfg = parse_config(dict(MIN, recorder={"database_url": "postgresql://bob:pw@db/edge"}))
    assert "pw@" not in str(redacted_dump(cfg))
