"""MqttLink against a real mosquitto TLS listener with a CA the test makes (openssl CLI) and a password file
(mosquitto_passwd): the good config connects; a wrong CA, a certificate for another host, an absent broker
and a wrong password each give their one log line; the failures back off and refused credentials stop."""

from __future__ import annotations

import logging
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import wait_until
from pydantic import SecretStr

from edge_agent.config import BrokerSettings, TlsSettings
from edge_agent.inbox import ByteBoundedInbox
from edge_agent.mqtt import MqttLink
from simhome.localbroker import LocalBroker, free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (shutil.which("openssl") and shutil.which("mosquitto_passwd")),
        reason="needs the openssl CLI and mosquitto_passwd",
    ),
]
EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _run(*args: str | Path) -> None:
    subprocess.run([str(a) for a in args], check=True, capture_output=True)


def make_ca(d: Path, name: str) -> tuple[Path, Path]:
    _run("openssl", "req", "-x509", *EC, "-keyout", d / f"{name}.key", "-out", d / f"{name}.pem", "-days", "2",
         "-subj", f"/CN={name}")  # fmt: skip
    return d / f"{name}.pem", d / f"{name}.key"


def make_cert(d: Path, name: str, ca: tuple[Path, Path], san: str) -> tuple[Path, Path]:
    key, csr, pem, ext = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.pem", d / f"{name}.ext"
    ext.write_text(
        f"subjectAltName={san}\nbasicConstraints=CA:FALSE\nsubjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    _run("openssl", "req", *EC, "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
    _run("openssl", "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial", "-out", pem,
         "-days", "2", "-extfile", ext)  # fmt: skip
    return pem, key


@dataclass
class Pki:
    ca: Path
    other_ca: Path
    server: tuple[Path, Path]
    wrong_host: tuple[Path, Path]
    passwords: Path


@pytest.fixture(scope="module")
def pki() -> Iterator[Pki]:
    # not under pytest's tmp_path (0700): mosquitto started as root drops to its own user before it reads these
    d = Path(tempfile.mkdtemp(prefix="edge-agent-pki-"))
    d.chmod(0o755)
    ca = make_ca(d, "edge-test-ca")
    other = make_ca(d, "someone-elses-ca")
    server = make_cert(d, "broker", ca, "IP:127.0.0.1,DNS:localhost")
    wrong = make_cert(d, "other-host", ca, "DNS:other.example")
    pw = d / "passwd"
    _run("mosquitto_passwd", "-b", "-c", pw, "hub", "s3cret")
    for p in d.iterdir():
        p.chmod(0o644)
    yield Pki(ca[0], other[0], server, wrong, pw)
    shutil.rmtree(d, ignore_errors=True)


def tls_broker(pki: Pki, cert: tuple[Path, Path]) -> LocalBroker:
    return LocalBroker(
        extra_conf=f"cafile {pki.ca}\ncertfile {cert[0]}\nkeyfile {cert[1]}\n"
        f"allow_anonymous false\npassword_file {pki.passwords}\n"
    )


@pytest.fixture()
def broker(pki: Pki) -> Iterator[LocalBroker]:
    b = tls_broker(pki, pki.server).start()
    yield b
    b.close()


def settings(port: int, ca: Path | None, password: str = "s3cret", **kw: object) -> BrokerSettings:
    s = BrokerSettings(
        host="127.0.0.1",
        port=port,
        username="hub",
        tls=TlsSettings(ca_file=ca),
        reconnect_min_seconds=0.2,
        reconnect_max_seconds=0.8,
        **kw,  # type: ignore[arg-type]
    )
    s.password = SecretStr(password)
    return s


def link_for(s: BrokerSettings, inbox: queue.Queue | ByteBoundedInbox | None = None) -> MqttLink:
    return MqttLink(
        s, f"tls-test-{time.monotonic_ns()}", "edge-agent/tls/availability", inbox or queue.Queue(10)
    )


def paho_thread_alive(link: MqttLink) -> bool:
    cid = link.client._client_id.decode()
    return any(t.name == f"paho-mqtt-client-{cid}" and t.is_alive() for t in threading.enumerate())


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "edge_agent.mqtt" and r.levelno >= logging.ERROR
    ]


def test_tls_and_password_connect_and_carry_messages(pki: Pki, broker: LocalBroker) -> None:
    """The right CA and password: connected, subscribed over TLS, a QoS1 message comes back."""
    inbox = ByteBoundedInbox(100)
    link = link_for(settings(broker.port, pki.ca), inbox)
    link.subscriptions = ["edge/tls/t"]
    link.start()
    try:
        assert link.wait_connected(10)
        assert link.client._ssl  # really TLS
        wait_until(lambda: link.publish("edge/tls/t", b"21.5", qos=1) and inbox.qsize() > 0, timeout=10)
        assert inbox.get(timeout=5)[:2] == ("edge/tls/t", b"21.5")
        assert link.counters.connect_failures == 0 and link.counters.connect_refused == 0
    finally:
        link.stop()


def test_wrong_ca_one_line_and_backoff(
    pki: Pki, broker: LocalBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """A CA that did not sign the broker's certificate: one line naming ca_file and the fix, not one per try;
    the attempts follow paho's doubling backoff (a lower bound on time: a busy machine only widens it)."""
    link = link_for(settings(broker.port, pki.other_ca))
    with caplog.at_level(logging.ERROR, logger="edge_agent.mqtt"):
        t0 = time.monotonic()
        link.start()
        try:
            wait_until(lambda: link.counters.connect_failures >= 3, timeout=20)
            elapsed = time.monotonic() - t0
        finally:
            link.stop()
    assert not link.connected.is_set()
    lines = errors(caplog)
    assert len(lines) == 1, lines
    assert (
        f"127.0.0.1:{broker.port} is not signed by the CA in broker.tls.ca_file ({pki.other_ca})" in lines[0]
    )
    assert "set broker.tls.ca_file to the CA that issued" in lines[0]
    assert elapsed >= 0.2 + 0.4 - 0.05  # two waits between three attempts: 0.2 s then 0.4 s
    assert link.counters.connect_attempts - link.counters.connect_failures <= 1  # nothing else went on


def test_certificate_for_another_host(pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    b = tls_broker(pki, pki.wrong_host).start()
    link = link_for(settings(b.port, pki.ca))
    try:
        with caplog.at_level(logging.ERROR, logger="edge_agent.mqtt"):
            link.start()
            wait_until(lambda: link.counters.connect_failures >= 2, timeout=20)
            link.stop()
    finally:
        b.close()
    lines = errors(caplog)
    assert len(lines) == 1 and "is not issued for '127.0.0.1'" in lines[0] and "subjectAltName" in lines[0]


def test_absent_broker(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    link = link_for(BrokerSettings(host="127.0.0.1", port=port, reconnect_min_seconds=0.1))
    with caplog.at_level(logging.ERROR, logger="edge_agent.mqtt"):
        link.start()
        wait_until(lambda: link.counters.connect_failures >= 2, timeout=20)
        link.stop()
    lines = errors(caplog)
    assert lines == [
        f"mqtt: nothing accepts connections on 127.0.0.1:{port} (connection refused); start the broker or "
        "fix broker.host/broker.port; retrying with backoff (0.1..30s)"
    ]


def test_wrong_password_one_line_and_no_retry(
    pki: Pki, broker: LocalBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """Refused credentials: one line, and paho's loop ends (its thread exits) after one attempt: a wrong
    password does not hammer the broker. If it kept retrying, the thread would never exit."""
    link = link_for(settings(broker.port, pki.ca, password="wrong"))
    with caplog.at_level(logging.WARNING, logger="edge_agent.mqtt"):
        link.start()
        try:
            assert link.auth_refused.wait(10)
            wait_until(lambda: not paho_thread_alive(link), timeout=10)
            assert link.counters.connect_attempts == 1 and not link.connected.is_set()
        finally:
            link.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "edge_agent.mqtt"]
    assert len(lines) == 1, lines
    assert f"broker 127.0.0.1:{broker.port} refused user 'hub'" in lines[0]
    assert "not retrying until the config changes" in lines[0]


def test_retry_with_the_fixed_password_connects(pki: Pki, broker: LocalBroker) -> None:
    link = link_for(settings(broker.port, pki.ca, password="wrong"))
    link.start()
    try:
        assert link.auth_refused.wait(10)
        link.retry(settings(broker.port, pki.ca))
        assert link.wait_connected(10)
    finally:
        link.stop()
