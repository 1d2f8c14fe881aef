"""One agent per state directory: an exclusive `flock` on `<state_dir>/edge-agent.lock`, held while running.

Two agents with the same config would fight over the broker session (the same client id: each connect
kicks the other off) and over the database. The lock is released by the kernel if the process dies, so a
crash never leaves a stale lock behind. The file holds the owner's pid, for the error message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "edge-agent.lock"


class StateLockError(Exception):
    """Another agent holds the state directory; the message names it and the fix."""


class StateLock:
    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        except OSError as e:
            raise StateLockError(
                f"{self.path}: cannot create the lock file ({e.strerror}); fix state_dir or its permissions"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StateLockError(
                f"{self.path}: another edge-agent (pid {owner}) is running with this state_dir; stop it, or "
                "give this one its own state_dir and agent_id"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
