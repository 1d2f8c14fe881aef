"""MqttLink on a fake paho client and a fake clock (issue 14): command expiry, the reconnect purge of stale
unacked commands, the in-flight window, QoS1 back-pressure, oversized payloads, connect failures and refused
credentials. No broker and no sleeps: the test calls paho's callbacks itself, in paho's order."""

from __future__ import annotations

import logging
import queue
import ssl
import threading
from collections import OrderedDict
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from conftest import wait_until
from paho.mqtt.client import ConnectFlags
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.config import BrokerSettings, TlsSettings
from edge_agent.inbox import ByteBoundedInbox
from edge_agent.mqtt import MqttLink

OK = ReasonCode(PacketTypes.CONNACK, "Success")
BAD_PASSWORD = ReasonCode(PacketTypes.CONNACK, "Bad user name or password")
UNAVAILABLE = ReasonCode(PacketTypes.CONNACK, "Server unavailable")


class Info:
    def __init__(self, rc: int, mid: int) -> None:
        self.rc, self.mid = rc, mid


class Msg:
    def __init__(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.topic, self.payload, self.qos, self.retain = topic, payload, qos, retain


class FakeClient:
    """Stands in for paho.mqtt.client.Client: records calls; the test drives the callbacks."""

    def __init__(self, api: CallbackAPIVersion, **kw: Any) -> None:
        self.api, self.kw = api, kw
        self.calls: list[str] = []  # order of what the link did on the client
        self.published: list[tuple[str, bytes, int, bool]] = []
        self.subscribed: list[tuple[str, int]] = []
        self.out: OrderedDict[int, Any] = OrderedDict()
        self._out_message_mutex: Any = threading.Lock()
        self.publish_rc = mqtt.MQTT_ERR_SUCCESS
        self.ack_inside_publish = False
        self._mid = 0
        self.tls_insecure = False
        self.disconnects = 0
        self.connect_asyncs = 0
        self.loop_starts = 0
        self.on_pre_connect: Any = None
        self.on_connect: Any = None
        self.on_connect_fail: Any = None
        self.on_disconnect: Any = None
        self.on_message: Any = None
        self.on_publish: Any = None

    @property
    def _out_messages(self) -> OrderedDict[int, Any]:  # paho internal the purge touches
        self.calls.append("_out_messages")
        return self.out

    # configuration
    def will_set(self, *a: Any, **k: Any) -> None: ...
    def username_pw_set(self, user: str, pw: str | None) -> None:
        self.credentials = (user, pw)

    def tls_set(self, **k: Any) -> None:
        self.tls = k

    def tls_insecure_set(self, v: bool) -> None:
        self.tls_insecure = v

    def reconnect_delay_set(self, *a: Any) -> None: ...
    def max_inflight_messages_set(self, n: int) -> None: ...
    def max_queued_messages_set(self, n: int) -> None: ...

    # lifecycle
    def connect_async(self, *a: Any, **k: Any) -> None:
        self.connect_asyncs += 1

    def loop_start(self) -> None:
        self.loop_starts += 1

    def loop_stop(self) -> None: ...
    def disconnect(self) -> None:
        self.disconnects += 1

    def socket(self) -> None:
        return None

    # traffic
    def publish(
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False, properties: Any = None
    ) -> Info:
        self._mid += 1
        mid = self._mid
        if self.publish_rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            self.published.append((topic, payload, qos, retain))
            if qos:
                self.out[mid] = (topic, payload)
        if self.ack_inside_publish:  # the network thread acks before publish() returns
            self.ack(mid)
        return Info(self.publish_rc, mid)

    def subscribe(self, topic: str, qos: int = 0) -> tuple[int, int]:
        self.calls.append(f"subscribe {topic}")
        self.subscribed.append((topic, qos))
        return (0, 1)

    # the "network thread"
    def connect(self, reason: ReasonCode = OK) -> None:
        self.on_pre_connect(self, None)
        self.on_connect(
            self, None, ConnectFlags(session_present=False), reason, Properties(PacketTypes.CONNACK)
        )

    def fail_connect(self, exc: BaseException) -> None:
        """As paho does: on_connect_fail is called inside its `except OSError` around the connect."""
        self.on_pre_connect(self, None)
        try:
            raise exc
        except OSError:
            self.on_connect_fail(self, None)

    def drop(self) -> None:
        self.on_disconnect(self, None, None, ReasonCode(PacketTypes.DISCONNECT, "Unspecified error"), None)

    def ack(self, mid: int) -> None:
        self.out.pop(mid, None)
        self.on_publish(self, None, mid, ReasonCode(PacketTypes.PUBACK, "Success"), None)

    def deliver(self, topic: str, payload: bytes, qos: int = 0) -> None:
        self.on_message(self, None, Msg(topic, payload, qos))


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_link(
    inbox: Any = None, *, max_inflight: int = 2, expiry: float = 5.0, **kw: Any
) -> tuple[MqttLink, FakeClient, Clock]:
    clients: list[FakeClient] = []

    def factory(*a: Any, **k: Any) -> FakeClient:
        clients.append(FakeClient(*a, **k))
        return clients[-1]

    clock = Clock()
    settings = kw.pop("settings", None) or BrokerSettings(max_inflight=max_inflight, protocol="3.1.1")
    link = MqttLink(
        settings,
        "edge-agent-t",
        "edge-agent/t/availability",
        inbox if inbox is not None else queue.Queue(100),
        clock=clock,
        command_expiry=expiry,
        client_factory=factory,
        monotonic=clock,
        **kw,
    )
    link.subscriptions = ["zigbee2mqtt/a", "zigbee2mqtt/b"]
    return link, clients[0], clock


def test_factory_gets_the_paho_arguments() -> None:
    link, c, _ = make_link()
    assert link.client is c and c.api is CallbackAPIVersion.VERSION2
    assert c.kw == {"client_id": "edge-agent-t", "protocol": mqtt.MQTTv311, "clean_session": False}


# ---- in-flight window and expiry --------------------------------------------------------------------------
def test_inflight_window_holds_then_releases_on_ack() -> None:
    """At most max_inflight unacked commands; an ack frees a slot and pump() sends the next one."""
    link, c, clock = make_link(max_inflight=2)
    c.connect()
    st: list[str] = []
    assert [link.send_command(f"d{i}/set", b"1", clock(), st.append) for i in range(3)] == [
        "sent",
        "sent",
        "queued",
    ]
    assert [p[0] for p in c.published] == ["d0/set", "d1/set"] and link.inflight() == 2
    assert all(q == 1 and not r for _, _, q, r in c.published)  # QoS1, never retained
    c.ack(1)
    assert link.inflight() == 1
    link.pump()
    assert [p[0] for p in c.published] == ["d0/set", "d1/set", "d2/set"] and st == ["sent"] * 3
    assert link.counters.commands_sent == 3


def test_ack_before_register_does_not_leak_a_slot() -> None:
    """paho's thread may ack a publish before publish() returns: the slot must not stay taken forever."""
    link, c, clock = make_link(max_inflight=1)
    c.connect()
    c.ack_inside_publish = True
    for i in range(3):
        assert link.send_command(f"d{i}/set", b"1", clock()) == "sent"
    assert link.inflight() == 0


def test_queued_command_expires_unsent() -> None:
    """A command waiting for a window slot longer than command_expiry is dropped, never sent late."""
    link, c, clock = make_link(max_inflight=1, expiry=5.0)
    c.connect()
    st: list[str] = []
    link.send_command("d0/set", b"1", clock())
    assert link.send_command("d1/set", b"1", clock(), st.append) == "queued"
    clock.t += 5.5
    c.ack(1)
    link.pump()
    assert [p[0] for p in c.published] == ["d0/set"]
    assert st == ["expired"] and link.counters.commands_expired == 1


def test_command_while_disconnected_is_dropped() -> None:
    link, c, clock = make_link()
    st: list[str] = []
    assert link.send_command("d/set", b"1", clock(), st.append) == "dropped-disconnected"
    assert c.published == [] and st == ["dropped-disconnected"] and link.counters.commands_disconnected == 1


def test_publish_offline_is_queued_once_not_counted_as_sent() -> None:
    """paho returns NO_CONN but keeps a QoS1 publish for the reconnect: 'queued-offline', registered."""
    link, c, clock = make_link()
    c.connect()
    c.publish_rc = mqtt.MQTT_ERR_NO_CONN
    st: list[str] = []
    link.send_command("d/set", b"1", clock(), st.append)
    assert st == ["queued-offline"] and link.counters.commands_sent == 0 and link.inflight() == 1


# ---- reconnect: resubscribe first, then purge ------------------------------------------------------------
def test_reconnect_purges_only_stale_unacked_commands() -> None:
    """Unacked commands paho would re-send after a reconnect are removed if they expired in the outage."""
    link, c, clock = make_link(max_inflight=5, expiry=5.0)
    c.connect()
    link.send_command("old/set", b"1", clock())  # mid 1
    clock.t += 4.0
    link.send_command("new/set", b"1", clock())  # mid 2
    c.drop()
    assert not link.connected.is_set()
    clock.t += 2.0  # mid 1 is 6 s old (stale), mid 2 is 2 s old
    c.connect()
    assert list(c.out) == [2]
    assert link.counters.commands_expired == 1 and link.inflight() == 1
    c.ack(2)
    assert link.inflight() == 0


def test_resubscribe_happens_before_touching_paho_internals() -> None:
    """Every subscription is issued before the purge reads paho's _out_messages."""
    link, c, _ = make_link()
    c.connect()
    assert c.calls == ["subscribe zigbee2mqtt/a", "subscribe zigbee2mqtt/b", "_out_messages"]


class Boom:
    def __enter__(self) -> None:
        raise AttributeError("paho changed its internals")

    def __exit__(self, *a: Any) -> None: ...


def test_a_purge_that_raises_leaves_the_agent_subscribed_and_connected(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A paho change that makes the purge raise is counted and logged; subscriptions, `connected` and the
    on_connect hooks (the availability announcement) still happen."""
    link, c, clock = make_link(expiry=1.0)
    hooks: list[str] = []
    link.on_connect_hooks.append(lambda: hooks.append("announce"))
    c.connect()
    link.send_command("x/set", b"1", clock())
    c.drop()
    clock.t += 10
    c._out_message_mutex = Boom()
    with caplog.at_level(logging.WARNING, logger="edge_agent.mqtt"):
        c.connect()
    assert link.connected.is_set()
    assert [t for t, _ in c.subscribed] == ["zigbee2mqtt/a", "zigbee2mqtt/b"] * 2
    assert hooks == ["announce", "announce"]
    assert link.counters.internals_errors == 1 and link.counters.callback_errors == 0
    assert [r.getMessage() for r in caplog.records if "purge" in r.getMessage()] == [
        "mqtt: purge of stale commands failed on connect (AttributeError: paho changed its internals); "
        "connected and subscribed anyway"
    ]


def test_a_failing_hook_does_not_stop_the_others() -> None:
    link, c, _ = make_link()
    ran: list[int] = []
    link.on_connect_hooks += [lambda: 1 / 0, lambda: ran.append(1)]  # type: ignore[list-item,func-returns-value]
    c.connect()
    assert ran == [1] and link.counters.callback_errors == 1 and link.connected.is_set()


# ---- inbox: QoS1 back-pressure, drops, oversized --------------------------------------------------------
def test_qos1_blocks_until_the_decider_makes_room() -> None:
    """A QoS1 message on a full (byte-bounded) inbox waits (paho's ack waits, the broker slows down) and is
    queued as soon as the decider takes one: no loss."""
    inbox = ByteBoundedInbox(maxsize=100, max_bytes=1000)
    link, c, _ = make_link(inbox, qos1_block_seconds=60.0)
    c.deliver("t", b"x" * 900, qos=1)
    done = threading.Event()
    th = threading.Thread(target=lambda: (c.deliver("t", b"y" * 500, qos=1), done.set()))
    th.start()
    wait_until(lambda: inbox.waiting() == 1)  # blocked by bytes (1 item of 100)
    assert not done.is_set() and inbox.qsize() == 1
    assert inbox.get_nowait()[1] == b"x" * 900
    assert done.wait(10)
    th.join()
    assert inbox.get_nowait()[1] == b"y" * 500 and link.counters.dropped == 0


@pytest.mark.parametrize("kind", ["queue.Queue", "ByteBoundedInbox"])
def test_qos1_drop_after_the_block_timeout_qos0_at_once(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    """Still full after qos1_block_seconds: the QoS1 message is dropped and counted; QoS0 never waits."""
    inbox: Any = queue.Queue(1) if kind == "queue.Queue" else ByteBoundedInbox(maxsize=1)
    link, c, clock = make_link(inbox, qos1_block_seconds=0.01)
    c.deliver("t", b"1", qos=1)
    with caplog.at_level(logging.WARNING, logger="edge_agent.mqtt"):
        c.deliver("t", b"2", qos=1)
        c.deliver("t", b"3", qos=0)
        clock.t += 61
        c.deliver("t", b"4", qos=0)
    assert link.counters.dropped == 3 and link.counters.received == 4 and inbox.qsize() == 1
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and lines[1].endswith("(and 1 more in the last minute)")


def test_oversized_payload_refused_before_the_inbox(caplog: pytest.LogCaptureFixture) -> None:
    """Any topic (device state topics too) over max_payload_bytes is dropped before queueing, counted, and
    logged once a minute with the (escaped) topic."""
    inbox = ByteBoundedInbox(maxsize=10)
    link, c, clock = make_link(inbox, max_payload_bytes=1024)
    with caplog.at_level(logging.WARNING, logger="edge_agent.mqtt"):
        c.deliver("zigbee2mqtt/\u202elamp", b"x" * 1025, qos=1)
        c.deliver("zigbee2mqtt/other", b"x" * 5000)
        c.deliver("zigbee2mqtt/ok", b"x" * 1024)
        clock.t += 60
        c.deliver("zigbee2mqtt/big", b"x" * 2000)
    assert link.counters.oversized == 3 and inbox.qsize() == 1 and link.counters.dropped == 0
    assert [r.getMessage() for r in caplog.records] == [
        "mqtt: payload of 1025 bytes on zigbee2mqtt/\\u202elamp exceeds max_payload_bytes=1024; dropped (1 so far)",
        "mqtt: payload of 2000 bytes on zigbee2mqtt/big exceeds max_payload_bytes=1024; dropped (3 so far) "
        "(and 1 more in the last minute)",
    ]


def test_byte_bounded_inbox_bounds() -> None:
    """FIFO, bounded by count and by bytes; an item larger than the byte bound is refused, never waited on."""
    ib = ByteBoundedInbox(maxsize=3, max_bytes=100)
    ib.put_nowait(("a", b"1" * 40, 0.0))
    ib.put(("b", b"2" * 40, 1.0), timeout=0)
    assert ib.bytes() == 82 and ib.qsize() == 2
    with pytest.raises(queue.Full):
        ib.put_nowait(("c", b"3" * 40, 2.0))  # 122 bytes > 100
    with pytest.raises(queue.Full):
        ib.put(("big", b"x" * 200, 0.0))  # block=True, no timeout: can never fit -> refused at once
    ib.put_nowait(("c", b"", 2.0))
    with pytest.raises(queue.Full):
        ib.put_nowait(("d", b"", 3.0))  # count bound
    assert [ib.get_nowait()[0] for _ in range(3)] == ["a", "b", "c"] and ib.bytes() == 0
    with pytest.raises(queue.Empty):
        ib.get(timeout=0)
    assert ib.maxsize == 3 and ib.empty()


# ---- connection failures and refused credentials -------------------------------------------------------
def _verify_error(code: int, msg: str) -> ssl.SSLCertVerificationError:
    e = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {msg}")
    e.verify_code, e.verify_message = code, msg
    return e


def test_connect_failures_one_line_per_cause(caplog: pytest.LogCaptureFixture) -> None:
    """Each cause gives one line naming host/port/file and the fix; repeats are counted, not re-logged."""
    s = BrokerSettings(host="hub.local", port=8883, protocol="3.1.1", tls=TlsSettings(ca_file="/etc/ca.pem"))
    link, c, _ = make_link(settings=s)
    with caplog.at_level(logging.ERROR, logger="edge_agent.mqtt"):
        for _ in range(3):
            c.fail_connect(_verify_error(20, "unable to get local issuer certificate"))
        c.fail_connect(_verify_error(62, "Hostname mismatch, certificate is not valid for 'hub.local'."))
        c.fail_connect(ConnectionRefusedError(111, "Connection refused"))
        c.fail_connect(TimeoutError("timed out"))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4, lines
    assert (
        "not signed by the CA in broker.tls.ca_file (/etc/ca.pem)" in lines[0]
        and "hub.local:8883" in lines[0]
    )
    assert "not issued for 'hub.local'" in lines[1] and "subjectAltName" in lines[1]
    assert "nothing accepts connections on hub.local:8883" in lines[2]
    assert "no answer from hub.local:8883" in lines[3]
    assert all("retrying with backoff" in x for x in lines)
    assert link.counters.connect_failures == 6 and link.counters.connect_attempts == 6


def test_refused_credentials_stop_retrying_until_retry(caplog: pytest.LogCaptureFixture) -> None:
    """'Bad user name or password': one line, paho's loop is ended (disconnect), `connected` stays clear."""
    s = BrokerSettings(protocol="3.1.1", username="hub")
    link, c, _ = make_link(settings=s)
    link.start()
    with caplog.at_level(logging.WARNING, logger="edge_agent.mqtt"):
        c.connect(BAD_PASSWORD)
        c.drop()  # the broker closes the socket after the refusal
    assert link.auth_refused.is_set() and not link.connected.is_set() and c.disconnects == 1
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "refused user 'hub': Bad user name or password" in lines[0]
    assert "not retrying until the config changes" in lines[0] and "broker.password_file" in lines[0]
    assert link.counters.disconnects == 0 and link.counters.connect_refused == 1
    link.retry(BrokerSettings(protocol="3.1.1", username="hub2"))
    assert not link.auth_refused.is_set() and c.connect_asyncs == 2 and c.credentials == ("hub2", None)
    c.connect()
    assert link.connected.is_set()


def test_other_connack_failures_keep_retrying() -> None:
    link, c, _ = make_link()
    c.connect(UNAVAILABLE)
    c.connect(UNAVAILABLE)
    assert not link.auth_refused.is_set() and c.disconnects == 0 and link.counters.connect_refused == 2


def test_tls_insecure_is_explicit_and_warned(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="edge_agent.mqtt"):
        _, c, _ = make_link(settings=BrokerSettings(tls=TlsSettings()))
        assert c.tls_insecure is False and not caplog.records
        _, c, _ = make_link(settings=BrokerSettings(tls=TlsSettings(tls_insecure=True)))
    assert c.tls_insecure is True
    assert len(caplog.records) == 1 and "tls_insecure is set" in caplog.records[0].getMessage()
