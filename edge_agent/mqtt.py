"""The MQTT link (paho 2, callback API v2): connect, TLS, credentials, reconnect, subscribe, publish, LWT.

paho's network thread only puts `(topic, payload, monotonic time, retained)` into a bounded inbox (a payload over
`max_payload_bytes` is refused before it is queued, counted as `oversized`; full -> counted drop; a QoS1
message first waits up to `QOS1_BLOCK_SECONDS`, which back-pressures the broker); callbacks never raise.
Subscriptions are re-issued on every connect, first thing: nothing best-effort (TCP_NODELAY, the purge of
paho internals below) runs before them, and each of those is guarded on its own. Commands are QoS1, never
retained, sent only while connected, through a back-pressure window of in-flight QoS1 publishes; a command
not sent within `command_expiry_seconds` (agent clock) is dropped and counted, and one paho would re-send
after a reconnect is removed first if it expired meanwhile: a command never goes out on a stale basis.

Connection failures give one clear line per cause (refused port, unknown host, timeout, a certificate not
signed by `broker.tls.ca_file`, a certificate for another host, ...) naming host, port or file and the fix,
rate-limited, while paho retries with its exponential backoff. Refused credentials stop the retrying: one
line, the link stays disconnected (`auth_refused`) until `retry()` (e.g. after the config changed).
`inline` (set by the agent: `edge_agent.eventpath.EventGate.offer`) may take a message on paho's thread before
the inbox; `write_now` writes what was published to the socket at once when called on that thread.
The paho client comes from `client_factory` (default: the real `paho.mqtt.client.Client`), so the unit tests
drive the link with a fake client and a fake clock.
"""

from __future__ import annotations

import logging
import queue
import socket
import ssl
import sys
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

from edge_agent.config import BrokerSettings, ConfigError
from edge_agent.inbox import ByteBoundedInbox
from edge_agent.ingest import LogLimiter, safe_topic

logger = logging.getLogger(__name__)

PAHO_QUEUE_LIMIT = 1000  # paho's own outgoing queue bound: memory stays bounded during an outage
EARLY_ACK_TTL = 10.0  # seconds an on_publish for a not-yet-registered mid is remembered
# A QoS1 message waits this long for room in a full inbox: paho acks only after on_message returns, so the
# broker's in-flight limit then slows the stream down (back-pressure, no loss); far below the keepalive.
QOS1_BLOCK_SECONDS = 1.0
DEFAULT_MAX_PAYLOAD_BYTES = 65536  # = AgentConfig.max_payload_bytes' default
AUTH_REFUSED = ("Bad user name or password", "Not authorized")
# OpenSSL verify codes: the chain does not lead to a CA we trust / the certificate names another host
_UNTRUSTED = {2, 18, 19, 20, 21, 24, 27}
_EXPIRED = {9, 10}
_NAME_MISMATCH = {62, 64}  # host name / IP address mismatch
_DISCONNECT = 0xE0  # MQTT packet type of a DISCONNECT (paho's `_out_packet` entries carry it in "command")


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
    oversized: int = 0  # payload over max_payload_bytes: refused before the inbox
    connect_attempts: int = 0  # TCP/TLS connection attempts (paho on_pre_connect)
    connect_failures: int = 0  # attempts that failed before CONNACK (refused, DNS, TLS, timeout)
    connect_refused: int = 0  # CONNACK with a failure reason (credentials, ...)
    internals_errors: int = 0  # best-effort steps on connect (TCP_NODELAY, stale-command purge) that raised


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
        inbox: queue.Queue[tuple[str, bytes, float, bool]] | ByteBoundedInbox,
        *,
        clock: Callable[[], float] = time.time,
        command_expiry: float = 5.0,
        client_factory: Callable[..., Any] | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        qos1_block_seconds: float = QOS1_BLOCK_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`inbox`: a `queue.Queue` or an `edge_agent.inbox.ByteBoundedInbox`. `client_factory` is called like
        `paho.mqtt.client.Client` (tests pass a fake). `monotonic` times the log limits and the early-ack
        memory; `clock` (the agent's) times command expiry."""
        self.settings = settings
        self.inbox = inbox
        self.clock = clock
        self.command_expiry = command_expiry
        self.max_payload_bytes = max_payload_bytes
        self.payload_limits: dict[str, int] = {}  # topic -> a larger limit (Zigbee2MQTT's device list)
        self.qos1_block_seconds = qos1_block_seconds
        self._mono = monotonic
        self.counters = LinkCounters()
        self.connected = threading.Event()
        self.auth_refused = (
            threading.Event()
        )  # set when the broker refused our credentials; cleared by retry()
        self.subscriptions: list[str] = []
        self.on_connect_hooks: list[Callable[[], None]] = []
        # called on paho's thread with each message before the inbox; True = handled there (the event path)
        self.inline: Callable[[tuple[str, bytes, float, bool]], bool] | None = None
        self._net_thread: int | None = None  # ident of paho's network thread (seen in on_message)
        self._limiter = LogLimiter(60.0)
        self._lock = threading.Lock()
        self._inflight: set[int] = set()
        self._early: dict[int, float] = {}
        self._commands: dict[int, float] = {}  # mid -> created (agent clock), for the reconnect purge
        self._outbox: deque[_Pending] = deque()
        self._v5 = settings.protocol == "5"
        self._stopping = False
        factory = client_factory or mqtt.Client
        self.client = factory(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if self._v5 else mqtt.MQTTv311,
            clean_session=None if self._v5 else False,
        )
        c = self.client
        c.will_set(will_topic, b"offline", qos=1, retain=True)
        self._set_credentials(settings)
        if settings.tls is not None:
            t = settings.tls
            try:
                c.tls_set(ca_certs=_s(t.ca_file), certfile=_s(t.cert_file), keyfile=_s(t.key_file))
            except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
                raise ConfigError(
                    f"broker.tls: cannot load ca_file={t.ca_file} cert_file={t.cert_file} "
                    f"key_file={t.key_file} ({e}); give PEM files readable by the service"
                ) from None
            if t.tls_insecure:
                c.tls_insecure_set(True)
                logger.warning(
                    "mqtt: broker.tls.tls_insecure is set: the broker's certificate is not checked against "
                    "the host name %s (anyone on the path with a certificate from this CA can pose as the "
                    "broker); unset it once the certificate names the host",
                    safe_topic(settings.host),
                )
        c.reconnect_delay_set(settings.reconnect_min_seconds, settings.reconnect_max_seconds)  # type: ignore[arg-type]
        c.max_inflight_messages_set(settings.max_inflight)
        c.max_queued_messages_set(PAHO_QUEUE_LIMIT)
        c.on_pre_connect = self._on_pre_connect
        c.on_connect = self._on_connect
        c.on_connect_fail = self._on_connect_fail
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_publish = self._on_publish

    def _set_credentials(self, settings: BrokerSettings) -> None:
        if settings.username:
            pw = settings.password.get_secret_value() if settings.password else None
            self.client.username_pw_set(settings.username, pw)

    # ---- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background; paho's thread retries with backoff until the broker answers."""
        s = self.settings
        kw: dict[str, Any] = {}
        if self._v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = s.session_expiry_seconds
            kw = {"clean_start": mqtt.MQTT_CLEAN_START_FIRST_ONLY, "properties": props}
        try:
            self.client.connect_async(s.host, s.port, keepalive=s.keepalive_seconds, **kw)
        except (ValueError, OSError) as e:
            raise ConfigError(
                f"broker.host/broker.port: cannot connect to {safe_topic(s.host)}:{s.port} ({e}); fix them"
            ) from None
        self.client.loop_start()

    def retry(self, settings: BrokerSettings | None = None) -> None:
        """Connect again after the broker refused our credentials (paho stopped retrying then); `settings`
        brings the new user name/password. A no-op while paho is still retrying by itself."""
        if not self.auth_refused.is_set():
            return
        if settings is not None:
            self.settings = settings
            self._set_credentials(settings)
        self.client.loop_stop()
        self.auth_refused.clear()
        self.start()

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
                self._limiter.log(
                    logger,
                    logging.WARNING,
                    "command-expired",
                    self._mono(),
                    "mqtt: command to %s expired after %.1fs unsent; dropped",
                    safe_topic(p.topic),
                    now - p.created,
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

    def write_now(self) -> bool:
        """On paho's network thread (inside a callback): write the queued packets to the socket now, not at the
        next turn of paho's loop. Elsewhere a no-op (paho's writes are not thread-safe): False."""
        if self._net_thread is None or threading.get_ident() != self._net_thread:
            return False
        c = self.client
        out = getattr(c, "_out_packet", ())
        if any(p.get("command", 0) & 0xF0 == _DISCONNECT for p in list(out)):
            return False  # paho would call on_disconnect under the callback mutex on_message holds
        # paho calls on_publish of a written QoS0 packet under its callback mutex, which on_message holds (a
        # deadlock of the network thread): without it for this write (it only notes QoS0 mids, see _on_publish)
        cb = c.on_publish
        c.on_publish = None
        try:
            c.loop_write()
        finally:
            c.on_publish = cb
        return True

    def outbox_size(self) -> int:
        """Commands waiting for room in the in-flight window (`pump` sends them)."""
        return len(self._outbox)

    def inflight(self) -> int:
        return len(self._inflight)

    def _register(self, mid: int, created: float) -> None:
        with self._lock:
            if self._early.pop(mid, None) is None:
                self._inflight.add(mid)
                self._commands[mid] = created

    # ---- paho callbacks (network thread): never raise --------------------------------------------------
    def _on_pre_connect(self, _c: Any, _ud: Any) -> None:
        self.counters.connect_attempts += 1

    def _on_connect(self, client: mqtt.Client, _ud: Any, flags: Any, reason: Any, _props: Any) -> None:
        try:
            if reason.is_failure:
                self._refused(client, str(reason))
                return
            self.counters.connects += 1
            # First what keeps the agent hearing: the subscriptions, then `connected`. Only then best effort.
            for topic in self.subscriptions:
                client.subscribe(topic, qos=self.settings.subscribe_qos)
            self.connected.set()
            self._best_effort("TCP_NODELAY", _no_delay, client)
            self._best_effort("purge of stale commands", self._purge_stale_commands, client)
            logger.info(
                "mqtt: connected to %s:%s (session present: %s), %d subscriptions",
                safe_topic(self.settings.host),
                self.settings.port,
                getattr(flags, "session_present", None),
                len(self.subscriptions),
            )
        except Exception:  # thread boundary: paho's thread must survive
            self.counters.callback_errors += 1
            logger.exception("mqtt: error in on_connect")
            return
        for hook in self.on_connect_hooks:
            try:
                hook()
            except Exception:
                self.counters.callback_errors += 1
                logger.exception("mqtt: error in an on_connect hook (%r)", hook)

    def _best_effort(self, what: str, fn: Callable[[Any], None], client: Any) -> None:
        try:
            fn(client)
        except Exception as e:  # paho internals may change: count, say once a minute, carry on
            self.counters.internals_errors += 1
            self._limiter.log(
                logger,
                logging.WARNING,
                f"internals:{what}",
                self._mono(),
                "mqtt: %s failed on connect (%s: %s); connected and subscribed anyway",
                what,
                type(e).__name__,
                e,
            )

    def _refused(self, client: Any, reason: str) -> None:
        """CONNACK with a failure reason. Credentials: stop retrying (they will not fix themselves)."""
        self.counters.connect_refused += 1
        s = self.settings
        where = f"{safe_topic(s.host)}:{s.port}"
        if reason in AUTH_REFUSED:
            self.auth_refused.set()
            user = f"user {safe_topic(s.username)!r}" if s.username else "anonymous login"
            logger.error(
                "mqtt: broker %s refused %s: %s; not retrying until the config changes (check "
                "broker.username and broker.password_file, and the broker's password file/ACL)",
                where,
                user,
                reason,
            )
            client.disconnect()  # ends paho's retry loop: no hammering the broker with a bad password
            return
        self._limiter.log(
            logger,
            logging.ERROR,
            f"refused:{reason}",
            self._mono(),
            "mqtt: broker %s refused the connection: %s; retrying with backoff (up to %gs)",
            where,
            safe_topic(reason),
            s.reconnect_max_seconds,
        )

    def _on_connect_fail(self, _c: Any, _ud: Any) -> None:
        """paho calls this from inside its `except OSError` around the connect: the exception is current."""
        try:
            self.counters.connect_failures += 1
            cause, text = describe_connect_error(sys.exc_info()[1], self.settings)
            self._limiter.log(
                logger,
                logging.ERROR,
                f"connect:{cause}",
                self._mono(),
                "mqtt: %s; retrying with backoff (%g..%gs)",
                text,
                self.settings.reconnect_min_seconds,
                self.settings.reconnect_max_seconds,
            )
        except Exception:
            self.counters.callback_errors += 1

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
            was = self.connected.is_set()
            self.connected.clear()
            if self._stopping or not was:  # our own stop, or the end of a refused attempt (logged there)
                return
            self.counters.disconnects += 1
            logger.warning(
                "mqtt: disconnected from %s:%s (%s); reconnecting with backoff",
                safe_topic(self.settings.host),
                self.settings.port,
                safe_topic(reason),
            )
        except Exception:
            self.counters.callback_errors += 1

    def _on_message(self, _c: Any, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self.counters.received += 1
            payload = msg.payload
            limit = self.payload_limits.get(msg.topic, self.max_payload_bytes)
            if len(payload) > limit:  # before the inbox: memory stays bounded
                self.counters.oversized += 1
                self._limiter.log(
                    logger,
                    logging.WARNING,
                    "oversized",
                    self._mono(),
                    "mqtt: payload of %d bytes on %s exceeds max_payload_bytes=%d; dropped (%d so far)",
                    len(payload),
                    safe_topic(msg.topic),
                    self.max_payload_bytes,
                    self.counters.oversized,
                )
                return
            item = (msg.topic, bytes(payload), time.monotonic(), bool(msg.retain))
            if self.inline is not None:
                self._net_thread = threading.get_ident()
                if self.inline(item):  # decided here (never raises: the gate counts its errors)
                    return
            if msg.qos > 0:
                self.inbox.put(item, timeout=self.qos1_block_seconds)
            else:
                self.inbox.put_nowait(item)
        except queue.Full:
            self.counters.dropped += 1
            mb = getattr(self.inbox, "max_bytes", None)
            self._limiter.log(
                logger,
                logging.WARNING,
                "inbox-full",
                self._mono(),
                "mqtt: inbox full (%d messages%s), dropping messages (%d so far)",
                self.inbox.maxsize,
                f" or {mb} bytes" if mb else "",
                self.counters.dropped,
            )
        except Exception:
            self.counters.callback_errors += 1
            if self._limiter.allow("on_message-error", self._mono()):
                logger.exception(
                    "mqtt: error in on_message (topic %s)", safe_topic(getattr(msg, "topic", "?"))
                )

    def _on_publish(self, _c: Any, _ud: Any, mid: int, _reason: Any, _props: Any) -> None:
        try:
            with self._lock:
                if mid in self._inflight:
                    self._inflight.discard(mid)
                    self._commands.pop(mid, None)
                else:  # acked before _register ran, or a QoS0 publish: remember briefly
                    now = self._mono()
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


def describe_connect_error(exc: BaseException | None, settings: BrokerSettings) -> tuple[str, str]:
    """(cause key, one line naming host/port/file and the fix) for a failed connection attempt."""
    where = f"{safe_topic(settings.host)}:{settings.port}"
    tls = settings.tls
    ca = tls.ca_file if tls is not None and tls.ca_file else "the system CA store"
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = getattr(exc, "verify_code", None)
        detail = safe_topic(getattr(exc, "verify_message", None) or exc)
        if code in _NAME_MISMATCH or "mismatch" in detail.lower():
            return "tls-hostname", (
                f"TLS: the certificate of broker {where} is not issued for {safe_topic(settings.host)!r} "
                f"({detail}); set broker.host to a name the certificate lists, or reissue the broker's "
                "certificate with this name in subjectAltName"
            )
        if code in _EXPIRED:
            return "tls-expired", (
                f"TLS: the certificate of broker {where} is not valid now ({detail}); renew it (or fix the "
                "hub's clock)"
            )
        if code in _UNTRUSTED:
            return "tls-untrusted", (
                f"TLS: the certificate of broker {where} is not signed by the CA in broker.tls.ca_file "
                f"({ca}): {detail}; set broker.tls.ca_file to the CA that issued the broker's certificate"
            )
        return "tls-verify", f"TLS: cannot verify the certificate of broker {where} ({detail}); check {ca}"
    if isinstance(exc, ssl.SSLError):
        return "tls", (
            f"TLS handshake with broker {where} failed ({safe_topic(exc)}); check that {settings.port} is the "
            "broker's TLS listener and the client certificate (broker.tls.cert_file/key_file)"
        )
    if isinstance(exc, ConnectionRefusedError):
        return "refused", (
            f"nothing accepts connections on {where} (connection refused); start the broker or fix "
            "broker.host/broker.port"
        )
    if isinstance(exc, socket.gaierror):
        return (
            "dns",
            f"cannot resolve broker.host {safe_topic(settings.host)!r} ({exc.strerror}); fix broker.host",
        )
    if isinstance(exc, TimeoutError):
        return "timeout", f"no answer from {where} (timed out); check the network, firewall and broker.host"
    if isinstance(exc, OSError):
        return f"os:{exc.errno}", f"cannot connect to {where} ({safe_topic(exc)}); check broker.host/port"
    if exc is not None:
        return (
            f"other:{type(exc).__name__}",
            f"cannot connect to {where} ({type(exc).__name__}: {safe_topic(exc)})",
        )
    return "unknown", f"cannot connect to {where}"


def _no_delay(client: mqtt.Client) -> None:
    """Disable Nagle: a small command must not wait for the ACK of our previous small packet (~40 ms with
    delayed ACKs); paho does not set TCP_NODELAY itself."""
    sock = client.socket()
    if sock is None:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[attr-defined]
    except (OSError, AttributeError) as e:  # a websocket/TLS wrapper without setsockopt: Nagle stays
        logger.debug("mqtt: TCP_NODELAY not set (%s)", e)


def _s(p: Any) -> str | None:
    return None if p is None else str(p)
