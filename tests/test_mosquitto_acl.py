"""The shipped broker side (deploy/mosquitto/edge-agent.conf + acl) on a real mosquitto: TLS listener, no anonymous
clients, password file, ACL. Only the edge-agent user can command a device or write the agent's own topics.

The conf is used as shipped with only its paths and port rewritten to a temp dir; certificates come from openssl,
users from `mosquitto_passwd -b`. A refused publish is observed as an event: MQTT 5 PUBACK "Not authorized",
then a permitted marker on the same topic arrives alone at the subscriber."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simhome.localbroker import find_mosquitto, free_port, wait_for_port

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "deploy" / "mosquitto" / "edge-agent.conf"
ACL = REPO / "deploy" / "mosquitto" / "acl"
USERS = {
    "edge-agent": "agent-pw-1",
    "zigbee2mqtt": "z2m-pw-2",
    "homeassistant": "ha-pw-3",
    "viewer": "view-pw-4",
}

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (shutil.which("openssl") and shutil.which("mosquitto_passwd")),
        reason="needs openssl, mosquitto_passwd",
    ),
]


@dataclass
class SecureBroker:
    port: int
    ca: Path


def _certs(d: Path) -> None:
    def ssl_(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    ssl_("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
         "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    ssl_("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
         "-out", "server.csr")  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ssl_("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
         "-days", "2", "-extfile", "san.ext", "-out", "server.crt")  # fmt: skip


@pytest.fixture()
def secure_broker(tmp_path: Path) -> Iterator[SecureBroker]:
    d = tmp_path / "mosquitto"
    d.mkdir()
    d.chmod(0o755)
    _certs(d)
    pw = d / "passwd"
    for i, (user, secret) in enumerate(USERS.items()):
        flags = ["-c", "-b"] if i == 0 else ["-b"]
        subprocess.run(["mosquitto_passwd", *flags, str(pw), user, secret], check=True, timeout=30)
    shutil.copy(ACL, d / "acl")
    for f in d.iterdir():
        f.chmod(0o644)
    port = free_port()
    conf = CONF.read_text()
    for old, new in {
        "listener 8883": f"listener {port} 127.0.0.1",
        "/etc/mosquitto/certs/": f"{d}/",
        "/etc/mosquitto/edge-agent.passwd": str(pw),
        "/etc/mosquitto/edge-agent.acl": str(d / "acl"),
    }.items():
        assert old in conf, f"{CONF} no longer has {old!r}: update this test"
        conf = conf.replace(old, new)
    conf += f"\npersistence false\nlog_dest file {d / 'mosquitto.log'}\n"
    if os.geteuid() == 0:  # test harness only: keep root so it can read the private temp dir
        conf += "user root\n"
    (d / "mosquitto.conf").write_text(conf)
    proc = subprocess.Popen([find_mosquitto(), "-c", str(d / "mosquitto.conf")], stderr=subprocess.PIPE)
    try:
        if not wait_for_port("127.0.0.1", port, timeout=10):
            proc.kill()
            _, err = proc.communicate(timeout=5)
            pytest.fail(f"mosquitto did not start with {CONF.name}: {err.decode()}")
        yield SecureBroker(port, d / "ca.crt")
    finally:
        proc.terminate()
        proc.wait(10)


class Client:
    """An MQTT 5 client over TLS that records messages, SUBACKs and PUBACK reason codes as events."""

    def __init__(
        self, b: SecureBroker, user: str | None, password: str | None = None, ca: Path | None = None
    ):
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.c.tls_set(ca_certs=str(ca or b.ca), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        if user is not None:
            self.c.username_pw_set(user, password if password is not None else USERS[user])
        self.connack: Any = None
        self.connected = threading.Event()
        self.messages: list[tuple[str, bytes]] = []
        self.got = threading.Condition()
        self.acks: dict[int, Any] = {}
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_publish = self._on_publish
        self.c.connect("127.0.0.1", b.port)
        self.c.loop_start()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connack = reason
        self.connected.set()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.got:
            self.messages.append((msg.topic, msg.payload))
            self.got.notify_all()

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        with self.got:
            self.acks[mid] = reason
            self.got.notify_all()

    def wait(self, pred: Any, timeout: float = 10.0) -> None:
        with self.got:
            assert self.got.wait_for(pred, timeout), "event not seen within timeout"

    def ok(self) -> bool:
        assert self.connected.wait(10), "no CONNACK"
        return not self.connack.is_failure

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.c.on_subscribe = lambda *_a: done.set()
        self.c.subscribe(topic, qos=1)
        assert done.wait(10), "no SUBACK"

    def publish(self, topic: str, payload: bytes) -> str:
        """QoS1 publish; returns the PUBACK reason ('Success' or 'Not authorized')."""
        info = self.c.publish(topic, payload, qos=1)
        self.wait(lambda: info.mid in self.acks)
        return str(self.acks[info.mid])

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def _refused_then_marker(sub: Client, writer: Client, other: Client, topic: str) -> None:
    """`other` cannot write `topic` (PUBACK Not authorized); `writer` can: its marker arrives, the other's never."""
    assert other.publish(topic, b"forged") == "Not authorized"
    assert writer.publish(topic, b"marker") == "Success"
    sub.wait(lambda: any(p == b"marker" for _, p in sub.messages))
    assert [p for t, p in sub.messages if t == topic] == [b"marker"]


def test_only_the_agent_commands_devices(secure_broker: SecureBroker) -> None:
    agent = Client(secure_broker, "edge-agent")
    bridge = Client(secure_broker, "zigbee2mqtt")
    ha = Client(secure_broker, "homeassistant")
    viewer = Client(secure_broker, "viewer")
    clients = [agent, bridge, ha, viewer]
    try:
        assert all(c.ok() for c in clients), [c.connack for c in clients]
        bridge.subscribe("zigbee2mqtt/+/set")  # the device side: what would switch the lamp
        for other in (ha, viewer, bridge):
            bridge.messages.clear()
            _refused_then_marker(bridge, agent, other, "zigbee2mqtt/living_light/set")
        agent.subscribe("edge-agent/hub1/#")  # the agent's own topics, commands included
        for other in (ha, viewer, bridge):
            agent.messages.clear()
            _refused_then_marker(agent, agent, other, "edge-agent/hub1/cmd/pause")
        # the agent writes only its own id and discovery; it cannot pose as the bridge (device state)
        ha.subscribe("#")
        assert agent.publish("edge-agent/other-hub/stats", b"x") == "Not authorized"
        assert agent.publish("zigbee2mqtt/living_light", b'{"state":"ON"}') == "Not authorized"
        assert agent.publish("homeassistant/device/hub1/config", b"{}") == "Success"
        # Home Assistant sends the commands of the agent's entities (modes, switches, suggestions), nothing else
        for topic in (
            "edge-agent/hub1/mode/set",
            "edge-agent/hub1/mode/living.light/set",
            "edge-agent/hub1/pause_control/set",
            "edge-agent/hub1/retrain/set",
            "edge-agent/hub1/suggest/living.light/accept",
        ):
            assert ha.publish(topic, b"PRESS") == "Success", topic
        assert ha.publish("edge-agent/hub1/stats", b"{}") == "Not authorized"
        assert viewer.publish("edge-agent/hub1/mode/set", b"auto") == "Not authorized"
        # the bridge reports state; the agent reads it
        agent.subscribe("zigbee2mqtt/#")
        assert bridge.publish("zigbee2mqtt/living_light", b'{"state":"OFF"}') == "Success"
        agent.wait(lambda: ("zigbee2mqtt/living_light", b'{"state":"OFF"}') in agent.messages)
    finally:
        for c in clients:
            c.close()


def test_anonymous_wrong_password_and_wrong_ca_refused(secure_broker: SecureBroker, tmp_path: Path) -> None:
    anon = Client(secure_broker, None)
    wrong = Client(secure_broker, "edge-agent", "not-the-password")
    try:
        assert not anon.ok() and not wrong.ok()
        assert str(wrong.connack) in ("Not authorized", "Bad user name or password")
    finally:
        anon.close()
        wrong.close()
    other_ca = tmp_path / "other"
    other_ca.mkdir()
    _certs(other_ca)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.tls_set(ca_certs=str(other_ca / "ca.crt"))
    c.username_pw_set("edge-agent", USERS["edge-agent"])
    with pytest.raises(ssl.SSLCertVerificationError):
        c.connect("127.0.0.1", secure_broker.port)
