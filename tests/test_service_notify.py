"""sd_notify as systemd sees it: a real `edge-agent run` subprocess, a real AF_UNIX SOCK_DGRAM socket passed as
$NOTIFY_SOCKET, a real mosquitto. READY=1 only once the broker is connected, WATCHDOG=1 from the decision loop,
STOPPING=1 on SIGTERM. No systemd as PID 1 here: this is the protocol side of Type=notify + WatchdogSec=."""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import Broker, Observer, agent_config_dict

from edge_agent.service_notify import ServiceNotifier, child_environment

REPO = Path(__file__).resolve().parents[1]
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1


class NotifySocket:
    """What PID 1 listens on: a datagram socket; `expect()` waits for a message holding a given line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[list[str]] = []

    def expect(self, line: str, timeout: float = 60.0) -> list[str]:
        """The first message (already received or arriving within `timeout`) that has `line`."""
        for m in self.messages:
            if line in m:
                return m
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {line!r} within {timeout}s; got {self.messages}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            msg = data.decode().split("\n")
            self.messages.append(msg)
            if line in msg:
                return msg

    def count(self, line: str) -> int:
        return sum(line in m for m in self.messages)

    def recv_one(self, timeout: float = 30.0) -> list[str]:
        """Wait for the next datagram (an event, not a sleep)."""
        self.sock.settimeout(timeout)
        msg = self.sock.recv(4096).decode().split("\n")
        self.messages.append(msg)
        return msg

    def wait_count(self, line: str, n: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count(line) < n:
            left = deadline - time.monotonic()
            assert left > 0, f"fewer than {n} {line!r} within {timeout}s"
            with contextlib.suppress(TimeoutError):
                self.recv_one(left)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture()
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    s = NotifySocket(tmp_path / "notify.sock")
    yield s
    s.close()


def _agent_cmd() -> list[str]:
    script = Path(sys.executable).parent / "edge-agent"
    return [str(script)] if script.exists() else [sys.executable, "-m", "edge_agent.cli"]


def _start_agent(
    tmp_path: Path, bundle: Path, port: int, notify: NotifySocket, *, wrap: list[str] | None = None
) -> subprocess.Popen[bytes]:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(agent_config_dict(bundle, port, tmp_path / "state")))
    env = dict(
        os.environ,
        NOTIFY_SOCKET=str(notify.path),
        WATCHDOG_USEC="400000",  # 0.4 s: pings every 0.1 s, so the test sees several quickly
        PYTHONPATH=str(REPO),
    )
    env.pop("WATCHDOG_PID", None)
    return subprocess.Popen(
        [*(wrap or []), *_agent_cmd(), "run", "--config", str(cfg)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "agent.log", "wb"),  # noqa: SIM115 (the child owns it)
    )


def _stop(proc: subprocess.Popen[bytes], tmp_path: Path) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        raise AssertionError(
            "agent did not stop on SIGTERM: " + (tmp_path / "agent.log").read_text()
        ) from None


@pytest.mark.integration
def test_ready_after_broker_watchdog_and_stopping(
    tmp_path: Path, broker: Broker, bundle_path: Path, notify_socket: NotifySocket
) -> None:
    """With the broker down: STATUS says it waits and the loop pings the watchdog, but no READY=1. Broker up:
    READY=1 (with a STATUS line). SIGTERM: STOPPING=1, then a clean exit 0."""
    broker.stop()
    proc = _start_agent(tmp_path, bundle_path, broker.port, notify_socket)
    try:
        notify_socket.expect(
            f"STATUS=model {_version(bundle_path)}; waiting for the broker at 127.0.0.1:{broker.port}"
        )
        notify_socket.wait_count("WATCHDOG=1", 3)  # the decider runs (and pings) before the broker is up
        assert notify_socket.count("READY=1") == 0, "READY=1 before the broker was connected"
        assert proc.poll() is None
        broker.start()
        ready = notify_socket.expect("READY=1")
        assert any(x.startswith("STATUS=connected to 127.0.0.1:") for x in ready), ready
        notify_socket.wait_count("WATCHDOG=1", notify_socket.count("WATCHDOG=1") + 3)  # goes on after READY
    finally:
        rc = _stop(proc, tmp_path)
    stopping = notify_socket.expect("STOPPING=1", timeout=5)
    assert stopping
    assert rc == 0, (tmp_path / "agent.log").read_text()


def _version(bundle: Path) -> str:
    import json

    return str(json.loads((bundle / "manifest.json").read_text())["version"])


@pytest.mark.integration
def test_agent_runs_under_memory_deny_write_execute(
    tmp_path: Path, broker: Broker, bundle_path: Path, notify_socket: NotifySocket
) -> None:
    """The unit sets MemoryDenyWriteExecute=yes. The kernel's own W^X switch (prctl PR_SET_MDWE, Linux >= 6.3,
    inherited over exec) refuses the same mappings: the agent must start, connect and run the model under it."""
    probe = subprocess.run(  # the switch exists and bites: a W+X mapping is refused under it
        [
            sys.executable,
            "-c",
            "import ctypes, mmap, sys\n"
            f"if ctypes.CDLL(None).prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0): sys.exit(3)\n"
            "try: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
            "except PermissionError: sys.exit(0)\n"
            "sys.exit(4)",
        ],
        check=False,
    )
    if probe.returncode == 3:
        pytest.skip(f"kernel {platform.release()} has no PR_SET_MDWE")
    assert probe.returncode == 0, "PR_SET_MDWE did not refuse a W+X mapping"
    wrap = [
        sys.executable,
        "-c",
        "import ctypes, os, sys; "
        f"assert ctypes.CDLL(None).prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) == 0; "
        "os.execv(sys.argv[1], sys.argv[1:])",
    ]
    obs = Observer(broker.port, ["edge-agent/t1/decision/#"])
    proc = _start_agent(tmp_path, bundle_path, broker.port, notify_socket, wrap=wrap)
    try:
        notify_socket.expect("READY=1")
        deadline = time.monotonic() + 60
        while not any(t.startswith("edge-agent/t1/decision/") for t, _, _ in obs.messages):
            assert time.monotonic() < deadline, (
                "no decision (model run) under MDWE: " + (tmp_path / "agent.log").read_text()
            )
            assert proc.poll() is None, (tmp_path / "agent.log").read_text()
            notify_socket.recv_one()  # wait on the next datagram (watchdog pings every 0.1 s), not a sleep
    finally:
        obs.close()
        rc = _stop(proc, tmp_path)
    assert rc == 0, (tmp_path / "agent.log").read_text()


def test_notifier_abstract_socket_and_rate_limit() -> None:
    """`@name` is the abstract namespace; pings are at most one per WATCHDOG_USEC/4; without a socket: no-op."""
    name = f"edge-agent-test-{os.getpid()}"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(b"\0" + name.encode())
    srv.settimeout(5)
    try:
        n = ServiceNotifier({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "60000000"})
        assert n.enabled and n.watchdog_seconds == 60.0 and n.ping_interval == 15.0
        for _ in range(100):
            n.ping()
        n.status("a\nb")
        assert srv.recv(100) == b"WATCHDOG=1"
        assert srv.recv(100) == b"STATUS=a b"  # the 99 other pings were dropped by the rate limit
        n.close()
    finally:
        srv.close()
    off = ServiceNotifier({})
    assert not off.enabled and off.ready("x") is False
    off.ping()


def test_watchdog_for_another_pid_is_ignored_and_children_do_not_inherit() -> None:
    """WATCHDOG_USEC is meant for $WATCHDOG_PID only; a child (retrain) gets none of the notify variables."""
    n = ServiceNotifier({"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert n.watchdog_seconds is None
    assert n.notify("READY=1") is False  # an unreachable socket is logged, not raised
    env = child_environment(
        {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1", "WATCHDOG_PID": "2", "PATH": "/bin"}
    )
    assert env == {"PATH": "/bin"}
