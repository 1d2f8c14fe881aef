"""A private mosquitto broker on a free loopback port, for the demo, the benchmarks and the tests.

mosquitto is not started by the Debian package in containers, so whoever needs a broker starts one:
`with LocalBroker() as broker: ... broker.port`. The config sets `max_queued_messages 0` because the
default (1000) silently drops QoS1 messages to a subscriber that falls behind.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

MOSQUITTO_CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


class BrokerError(RuntimeError):
    """The broker could not be found or started (message says what to install or check)."""


def find_mosquitto() -> str:
    for cand in MOSQUITTO_CANDIDATES:
        path = shutil.which(cand) or (cand if Path(cand).is_file() else None)
        if path:
            return path
    raise BrokerError("mosquitto not found: install it with 'sudo apt-get install -y mosquitto'")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.01)
    return False


class LocalBroker:
    """mosquitto on 127.0.0.1:`port` (a free one by default); `restart()` keeps the port."""

    def __init__(self, port: int | None = None, *, extra_conf: str = "") -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._extra_conf = extra_conf
        self._dir = Path(tempfile.mkdtemp(prefix="edge-agent-mosquitto-"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None

    @property
    def log_path(self) -> Path:
        return self._dir / "mosquitto.log"

    def start(self) -> LocalBroker:
        conf = self._dir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "max_queued_messages 0\n"
            "max_inflight_messages 0\n"
            "set_tcp_nodelay true\n"
            f"log_dest file {self.log_path}\n"
            f"{self._extra_conf}\n",
            encoding="utf-8",
        )
        self._proc = subprocess.Popen(
            [find_mosquitto(), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if not wait_for_port(self.host, self.port):
            self.stop()
            raise BrokerError(f"mosquitto did not start on port {self.port}; see {self.log_path}")
        log.debug("mosquitto up on %s:%s (pid %s)", self.host, self.port, self._proc.pid)
        return self

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)
        self._proc = None

    def restart(self, down_seconds: float = 0.0) -> None:
        self.stop()
        if down_seconds:
            time.sleep(down_seconds)
        self.start()

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the broker and remove its config/log directory."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)
