"""Files the config points at, read or checked at load: the broker password (also as a systemd credential,
`${CREDENTIALS_DIRECTORY}`) and the TLS CA / client certificate / key. Errors name the key and the fix."""

from __future__ import annotations

import os
import re
import ssl
from pathlib import Path
from typing import Protocol

from edge_agent.config_error import ConfigError


class TlsFiles(Protocol):
    """The file paths of `broker.tls` (edge_agent.config.TlsSettings)."""

    ca_file: Path | None
    cert_file: Path | None
    key_file: Path | None


_CRED_VAR = re.compile(r"\$\{CREDENTIALS_DIRECTORY\}|\$CREDENTIALS_DIRECTORY(?![A-Za-z0-9_])")


def credential_path(raw: str, credentials: str | None, source: str) -> Path:
    """Expand `${CREDENTIALS_DIRECTORY}`; a relative name goes under the credentials directory if there is one."""
    if _CRED_VAR.search(raw):
        if credentials is None:
            raise ConfigError(
                f"{source}: broker.password_file: {raw!r} refers to $CREDENTIALS_DIRECTORY, which is not set "
                "(it is set by systemd's LoadCredential=); run the agent as the edge-agent service, or point "
                "password_file at a readable file"
            )
        return Path(_CRED_VAR.sub(lambda _m: credentials, raw))
    path = Path(raw)
    if credentials is not None and not path.is_absolute():
        return Path(credentials) / path
    return path


class _EncryptedKey(Exception):
    pass


def _no_passphrase() -> str:
    raise _EncryptedKey


def check_tls_files(t: TlsFiles, source: str) -> None:
    """Each TLS file exists, is readable and loads as PEM (what paho's tls_set will do at start)."""
    for key in ("ca_file", "cert_file", "key_file"):
        p: Path | None = getattr(t, key)
        if p is None:
            continue
        if not p.is_file():
            raise ConfigError(
                f"{source}: broker.tls.{key}: {p} does not exist (or is not a file); fix the path"
            )
        if not os.access(p, os.R_OK):
            raise ConfigError(
                f"{source}: broker.tls.{key}: {p} is not readable by this user; fix its permissions"
            )
    if t.key_file is not None and t.cert_file is None:
        raise ConfigError(
            f"{source}: broker.tls.key_file: set broker.tls.cert_file too (the client certificate)"
        )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if t.ca_file is not None:
        try:
            ctx.load_verify_locations(cafile=str(t.ca_file))
        except (ssl.SSLError, ValueError) as e:
            raise ConfigError(
                f"{source}: broker.tls.ca_file: {t.ca_file} is not a PEM CA certificate ({e}); give the CA "
                "that signed the broker's certificate"
            ) from None
    if t.cert_file is not None:
        try:
            ctx.load_cert_chain(str(t.cert_file), _s(t.key_file), password=_no_passphrase)
        except _EncryptedKey:
            raise ConfigError(
                f"{source}: broker.tls.key_file: {t.key_file or t.cert_file} is encrypted; the agent cannot "
                "prompt for a passphrase: use an unencrypted key readable only by the service"
            ) from None
        except (ssl.SSLError, ValueError) as e:
            raise ConfigError(
                f"{source}: broker.tls.cert_file: {t.cert_file} / key_file {t.key_file} do not load as a PEM "
                f"certificate and its private key ({e}); check that the key matches the certificate"
            ) from None


def _s(p: Path | None) -> str | None:
    return None if p is None else str(p)
