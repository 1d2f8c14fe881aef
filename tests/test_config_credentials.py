"""broker.password_file under systemd: `LoadCredential=mqtt-password:...` hands the secret over in
`$CREDENTIALS_DIRECTORY/mqtt-password`; the config names it by `${CREDENTIALS_DIRECTORY}/...` or by its bare name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edge_agent.config import ConfigError, load_config, parse_config, redacted_dump

MIN = {"bundle": "bundle", "agent_id": "hub1"}


def _creds(tmp_path: Path, secret: str = "s3cret\n") -> Path:
    d = tmp_path / "credentials"
    d.mkdir()
    (d / "mqtt-password").write_text(secret)
    return d


@pytest.mark.parametrize(
    "value", ["${CREDENTIALS_DIRECTORY}/mqtt-password", "$CREDENTIALS_DIRECTORY/mqtt-password"]
)
def test_expanded_credentials_directory(tmp_path: Path, value: str) -> None:
    """`${CREDENTIALS_DIRECTORY}/mqtt-password` is expanded from the environment systemd sets."""
    d = _creds(tmp_path)
    cfg = parse_config(
        dict(MIN, broker={"username": "edge-agent", "password_file": value}),
        env={"CREDENTIALS_DIRECTORY": str(d)},
    )
    assert cfg.broker.password_file == d / "mqtt-password"
    assert cfg.broker.password is not None and cfg.broker.password.get_secret_value() == "s3cret"
    assert "s3cret" not in str(redacted_dump(cfg))


def test_bare_name_is_looked_up_in_credentials_directory(tmp_path: Path) -> None:
    """A relative name goes to $CREDENTIALS_DIRECTORY when it is set, not next to the config file."""
    d = _creds(tmp_path)
    (tmp_path / "mqtt-password").write_text("the-wrong-one\n")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(dict(MIN, broker={"password_file": "mqtt-password"})))
    data = yaml.safe_load((tmp_path / "c.yaml").read_text())
    cfg = parse_config(data, "c.yaml", base_dir=tmp_path, env={"CREDENTIALS_DIRECTORY": str(d)})
    assert cfg.broker.password is not None and cfg.broker.password.get_secret_value() == "s3cret"
    cfg2 = parse_config(data, "c.yaml", base_dir=tmp_path, env={})
    assert cfg2.broker.password is not None and cfg2.broker.password.get_secret_value() == "the-wrong-one"


def test_credentials_directory_unset_names_the_key() -> None:
    """Outside systemd the variable is unset: one line naming the key and what sets it."""
    with pytest.raises(
        ConfigError, match=r"broker\.password_file: .*CREDENTIALS_DIRECTORY.*not set.*LoadCredential"
    ):
        parse_config(dict(MIN, broker={"password_file": "${CREDENTIALS_DIRECTORY}/mqtt-password"}), env={})


def test_credential_missing_or_empty(tmp_path: Path) -> None:
    """A credential that is not there, or empty, is an error naming the key and the file."""
    d = _creds(tmp_path, secret="\n")
    env = {"CREDENTIALS_DIRECTORY": str(d)}
    with pytest.raises(ConfigError, match=r"broker\.password_file: cannot read .*other"):
        parse_config(dict(MIN, broker={"password_file": "other"}), env=env)
    with pytest.raises(ConfigError, match=r"broker\.password_file: .*mqtt-password is empty"):
        parse_config(dict(MIN, broker={"password_file": "mqtt-password"}), env=env)


def test_load_config_uses_process_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """load_config (what `edge-agent run` calls) reads $CREDENTIALS_DIRECTORY from the process environment."""
    d = _creds(tmp_path)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(d))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(dict(MIN, broker={"password_file": "mqtt-password"})))
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.broker.password is not None and cfg.broker.password.get_secret_value() == "s3cret"
