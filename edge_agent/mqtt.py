"""The MQTT link (paho 2, callback API v2): connect, TLS, credentials, reconnect, subscribe, publish, LWT.

paho's network thread only puts `(topic, payload, monotonic time)` into a bounded queue (full -> counted
drop; a QoS1 message first waits up to a second, which back-pressures the broker); callbacks never raise. Subscriptions are re-issued on every connect. Commands are QoS1, never
retained, sent only while connected, through a back-pressure window of in-flight QoS1 publishes; a command
not sent within `command_expiry_seconds` (agent clock) is dropped and counted, and one paho would re-send
after a reconnect is removed first if it expired meanwhile: a command never goes out on a stale basis.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.config import BrokerSettings
from edge_agent.ingest import LogLimiter

logger = logging.getLogger(__name__)

PAHO_QUEUE_LIMIT = 1000  # paho's own outgoing queue bound: memory stays bounded during an outage
EARLY_ACK_TTL = 10.0  # seconds an on_publish for a not-yet-registered mid is remembered
# A QoS1 message waits this long for room in a full inbox: paho acks only after on_message returns, so the
# broker's in-flight limit then slows the stream down (back-pressure, no loss); far below the keepalive.
QOS1_BLOCK_SECONDS = 1.0


@dataclass
class LinkCounters:
    received: int = 0
    dropped: int = 0  # inbox full
    callback_errors: int = 0
    connects: int = 0
    disconnects: int = 0
    commands_sent: int = 0
    commands_disconnected: int = 0
    commands_expired: int = 0
    publish_errors: int = 0


@dataclass
class _Pending:
    topic: str
    payload: bytes
    created: float  # agent clock
    on_done: Callable[[str], None] | None = field(default=None)


class MqttLink:
    """One paho client owned by the agent."""

    def __init__(
        self,
        settings: BrokerSettings,
        client_id: str,
        will_topic: str,
        inbox: queue.Queue[tuple[str, bytes, float, bool]],
        *,
        clock: Callable[[], float] = time.time,
        command_expiry: float = 5.0,
    ) -> None:
        self.settings = settings
        self.inbox = inbox
        self.clock = clock
        self.command_expiry = command_expiry
        self.counters = LinkCounters()
        self.connected = threading.Event()
        self.subscriptions: list[str] = []
        self.on_connect_hooks: list[Callable[[], None]] = []
        self._limiter = LogLimiter(60.0)
        self._lock = threading.Lock()
        self._inflight: set[int] = set()
        self._early: dict[int, float] = {}
        self._commands: dict[int, float] = {}  # mid -> created (agent clock), for the reconnect purge
        self._outbox: deque[_Pending] = deque()
        self._v5 = settings.protocol == "5"
        self._stopping = False
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if self._v5 else mqtt.MQTTv311,
            clean_session=None if self._v5 else False,
        )
        c = self.client
        c.will_set(will_topic, b"offline", qos=1, retain=True)
        if settings.username:
            pw = settings.password.get_secret_value() if settings.password else None
            c.username_pw_set(settings.username, pw)
        if settings.tls is not None:
            t = settings.tls
            c.tls_set(ca_certs=_s(t.ca_file), certfile=_s(t.cert_file), keyfile=_s(t.key_file))
        c.reconnect_delay_set(settings.reconnect_min_seconds, settings.reconnect_max_seconds)  # type: ignore[arg-type]
        c.max_inflight_messages_set(settings.max_inflight)
        c.max_queued_messages_set(PAHO_QUEUE_LIMIT)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_publish = self._on_publish

    # ---- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background; paho's thread retries with backoff until the broker answers."""
        s = self.settings
        kw: dict[str, Any] = {}
        if self._v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = s.session_expiry_seconds
            kw = {"clean_start": mqtt.MQTT_CLEAN_START_FIRST_ONLY, "properties": props}
        self.client.connect_async(s.host, s.port, keepalive=s.keepalive_seconds, **kw)
        self.client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    def stop(self, last_will: tuple[str, bytes] | None = None, timeout: float = 2.0) -> None:
        """Publish `last_will` (retained QoS1) if connected and wait for it, then disconnect."""
        if last_will is not None and self.connected.is_set():
            info = self.client.publish(last_will[0], last_will[1], qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as e:
                logger.warning("mqtt: offline message not confirmed before disconnect (%s)", e)
        self._stopping = True
        self.client.disconnect()
        self.client.loop_stop()

    # ---- publishing (decision thread, plus on_connect hooks) -------------------------------------------
    def publish(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> bool:
        """Publish state (not commands); returns False when not sent."""
        if not self.connected.is_set():
            return False
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.counters.publish_errors += 1
            return False
        return True

    def send_command(
        self, topic: str, payload: bytes, created: float, on_done: Callable[[str], None] | None = None
    ) -> str:
        """QoS1, not retained. Returns 'sent', 'queued' (window full), or 'dropped-disconnected'."""
        if not self.connected.is_set():
            self.counters.commands_disconnected += 1
            if on_done:
                on_done("dropped-disconnected")
            return "dropped-disconnected"
        self._outbox.append(_Pending(topic, payload, created, on_done))
        self.pump()
        return "sent" if not self._outbox else "queued"

    def pump(self) -> None:
        """Send queued commands while the in-flight window has room; drop the ones that expired."""
        now = self.clock()
        while self._outbox:
            p = self._outbox[0]
            if now - p.created > self.command_expiry:
                self._outbox.popleft()
                self.counters.commands_expired += 1
                logger.warning(
                    "mqtt: command to %s expired after %.1fs unsent; dropped", p.topic, now - p.created
                )
                if p.on_done:
                    p.on_done("expired")
                continue
            if not self.connected.is_set():
                return  # keep until expiry or reconnect
            with self._lock:
                if len(self._inflight) >= self.settings.max_inflight:
                    return
            self._outbox.popleft()
            props = None
            if self._v5:
                props = Properties(PacketTypes.PUBLISH)
                props.MessageExpiryInterval = max(1, int(self.command_expiry))
            info = self.client.publish(p.topic, p.payload, qos=1, retain=False, properties=props)
            if info.rc == mqtt.MQTT_ERR_NO_CONN:
                # paho queued it for the reconnect (not a drop, not sent yet); purged there if stale by then
                status = "queued-offline"
                self._register(info.mid, p.created)
            elif info.rc != mqtt.MQTT_ERR_SUCCESS:
                status = "dropped-queue-full"
                self.counters.publish_errors += 1
            else:
                status = "sent"
                self.counters.commands_sent += 1
                self._register(info.mid, p.created)
            if p.on_done:
                p.on_done(status)

    def inflight(self) -> int:
        return len(self._inflight)

    def _register(self, mid: int, created: float) -> None:
        with self._lock:
            if self._early.pop(mid, None) is None:
                self._inflight.add(mid)
                self._commands[mid] = created

    # ---- paho callbacks (network thread): never raise --------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _ud: Any, flags: Any, reason: Any, _props: Any) -> None:
        try:
            if reason.is_failure:
                hint = ""
                if str(reason) in ("Bad user name or password", "Not authorized"):
                    hint = "; check broker.username and broker.password_file"
                logger.error(
                    "mqtt: broker %s:%s refused the connection: %s%s",
                    self.settings.host,
                    self.settings.port,
                    reason,
                    hint,
                )
                return
            self.counters.connects += 1
            _no_delay(client)
            self._purge_stale_commands(client)
            for topic in self.subscriptions:
                client.subscribe(topic, qos=self.settings.subscribe_qos)
            self.connected.set()
            logger.info(
                "mqtt: connected to %s:%s (session present: %s), %d subscriptions",
                self.settings.host,
                self.settings.port,
                getattr(flags, "session_present", None),
                len(self.subscriptions),
            )
            for hook in self.on_connect_hooks:
                hook()
        except Exception:  # thread boundary: paho's thread must survive
            self.counters.callback_errors += 1
            logger.exception("mqtt: error in on_connect")

    def _purge_stale_commands(self, client: mqtt.Client) -> None:
        """Remove expired commands paho would re-send now (it re-sends unacked QoS1 after on_connect)."""
        now = self.clock()
        out = getattr(client, "_out_messages", None)  # paho internals: guarded, best effort
        if out is None:
            return
        with self._lock:
            stale = [m for m, created in self._commands.items() if now - created > self.command_expiry]
            for mid in stale:
                self._commands.pop(mid, None)
                self._inflight.discard(mid)
        with client._out_message_mutex:
            for mid in stale:
                if out.pop(mid, None) is not None:
                    self.counters.commands_expired += 1
                    logger.warning(
                        "mqtt: unacknowledged command (mid %d) expired during the outage; not re-sent", mid
                    )

    def _on_disconnect(self, _c: Any, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        try:
            self.connected.clear()
            if self._stopping:
                return
            self.counters.disconnects += 1
            logger.warning(
                "mqtt: disconnected from %s:%s (%s); reconnecting with backoff",
                self.settings.host,
                self.settings.port,
                reason,
            )
        except Exception:
            self.counters.callback_errors += 1

    def _on_message(self, _c: Any, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self.counters.received += 1
            item = (msg.topic, bytes(msg.payload), time.monotonic(), bool(msg.retain))
            if msg.qos > 0:
                self.inbox.put(item, timeout=QOS1_BLOCK_SECONDS)
            else:
                self.inbox.put_nowait(item)
        except queue.Full:
            self.counters.dropped += 1
            if self._limiter.allow("inbox-full", time.monotonic()):
                logger.warning(
                    "mqtt: inbox full (%d), dropping messages (%d so far)",
                    self.inbox.maxsize,
                    self.counters.dropped,
                )
        except Exception:
            self.counters.callback_errors += 1
            if self._limiter.allow(f"cb:{getattr(msg, 'topic', '?')}", time.monotonic()):
                logger.exception("mqtt: error in on_message")

    def _on_publish(self, _c: Any, _ud: Any, mid: int, _reason: Any, _props: Any) -> None:
        try:
            with self._lock:
                if mid in self._inflight:
                    self._inflight.discard(mid)
                    self._commands.pop(mid, None)
                else:  # acked before _register ran, or a QoS0 publish: remember briefly
                    now = time.monotonic()
                    self._early[mid] = now
                    for m, t in list(self._early.items()):  # insertion order: oldest first
                        if now - t < EARLY_ACK_TTL:
                            break
                        del self._early[m]
        except Exception:
            self.counters.callback_errors += 1


def subscriptions(topics: set[str], extra: list[str]) -> list[str]:
    """Topic filters to subscribe: the extra filters plus the topics none of them covers (a broker delivers
    a message once per matching subscription, so overlapping filters would double every message)."""
    own = [t for t in sorted(topics) if not any(mqtt.topic_matches_sub(f, t) for f in extra)]
    return sorted(set(extra)) + own


def _no_delay(client: mqtt.Client) -> None:
    """Disable Nagle: a small command must not wait for the ACK of our previous small packet (~40 ms with
    delayed ACKs); paho does not set TCP_NODELAY itself."""
    sock = client.socket()
    if sock is None:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as e:
        logger.debug("mqtt: TCP_NODELAY not set (%s)", e)


def _s(p: Any) -> str | None:
    return None if p is None else str(p)
