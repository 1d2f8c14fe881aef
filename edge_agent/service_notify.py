"""systemd service notifications (sd_notify): READY=1, WATCHDOG=1, STOPPING=1, STATUS=.

A small implementation of the protocol rather than a dependency: systemd documents it as stable (one datagram
of `KEY=value` lines to the `AF_UNIX` socket in `$NOTIFY_SOCKET`, a leading `@` meaning the abstract namespace)
and ships a self-contained example (man/notify-selfcontained-example.py). `sdnotify` (last release 2017) adds
nothing over these lines, and `systemd-python` needs a C build against libsystemd-dev on the hub.

Outside systemd (`$NOTIFY_SOCKET` unset) every call is a no-op. The watchdog ping is rate-limited to a quarter of
`$WATCHDOG_USEC` (systemd recommends at least every half), so the decision loop may call it every iteration; it
must be called from the loop itself, so that a stuck loop stops the pings and systemd restarts the service.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping, MutableMapping

logger = logging.getLogger(__name__)

NOTIFY_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
DEFAULT_PING_SECONDS = 1.0  # when there is a socket but no watchdog: pings are harmless, keep them rare


class ServiceNotifier:
    """Sends sd_notify messages to `$NOTIFY_SOCKET`; `enabled` is False (and calls do nothing) without one."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        raw = env.get("NOTIFY_SOCKET", "")
        self._address: str | bytes | None = None
        if raw.startswith("@"):
            self._address = b"\0" + raw[1:].encode()
        elif raw.startswith("/"):
            self._address = raw
        elif raw:
            logger.warning("NOTIFY_SOCKET=%r is neither a path nor an abstract socket; not notifying", raw)
        self.watchdog_seconds = _watchdog_seconds(env)
        self.ping_interval = self.watchdog_seconds / 4 if self.watchdog_seconds else DEFAULT_PING_SECONDS
        self._last_ping = float("-inf")
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *lines: str) -> bool:
        """Send one datagram of `KEY=value` lines; True if sent. Errors are logged once, never raised."""
        if self._address is None:
            return False
        data = "\n".join(lines).encode("utf-8", errors="replace")
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                    self._sock.connect(self._address)
                self._sock.sendall(data)
            except OSError as e:
                if not self._failed:
                    logger.warning("sd_notify: cannot send to NOTIFY_SOCKET (%s); service state may lag", e)
                self._failed = True
                self._close_locked()
                return False
        self._failed = False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={_one_line(status)}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={_one_line(text)}")

    def stopping(self, status: str | None = "stopping") -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={_one_line(status)}"] if status else []))

    def ping(self) -> None:
        """WATCHDOG=1, at most once per `ping_interval` (call it from every decision loop iteration)."""
        if self._address is None:
            return
        now = time.monotonic()
        if now - self._last_ping < self.ping_interval:
            return
        self._last_ping = now
        self.notify("WATCHDOG=1")

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_seconds(env: Mapping[str, str]) -> float | None:
    """`$WATCHDOG_USEC` in seconds, if it is meant for this process (`$WATCHDOG_PID` unset or ours)."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 if value > 0 else None


def _one_line(text: str) -> str:
    return text.replace("\n", " ").strip()


def child_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of `env` without the notify variables: they are for the service's main process only."""
    out: MutableMapping[str, str] = dict(os.environ if env is None else env)
    for k in NOTIFY_ENV:
        out.pop(k, None)
    return dict(out)
