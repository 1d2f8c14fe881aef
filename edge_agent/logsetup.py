"""Logging set-up for the terminal and for the systemd journal.

Under systemd (stderr is the journal stream named by `$JOURNAL_STREAM`), lines carry no timestamp (the journal
adds its own) and start with the sd-daemon `<N>` syslog priority so journald records the level (`<3>` error,
`<4>` warning, `<6>` info, `<7>` debug). In both modes every event is one line (newlines in the message or
traceback are escaped as `\\n`), and registered secrets (the broker password, a database URL's password) are
replaced by `***` before anything is written.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Mapping
from typing import IO

logger = logging.getLogger(__name__)

TERMINAL_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL_FORMAT = "%(name)s: %(message)s"
_URL_PASSWORD = re.compile(r"(//[^:/@\s]+):([^@/\s]+)@")

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a logging level (sd-daemon(3): 3 err, 4 warning, 6 info, 7 debug)."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def add_secret(value: str | None) -> None:
    """Never write `value` to the log (replaced by `***`). Short values are ignored: they would mangle text."""
    if value and len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """`text` with every registered secret and any URL password replaced by `***`."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for s in secrets:
        if s in text:
            text = text.replace(s, "***")
    return _URL_PASSWORD.sub(r"\1:***@", text)


class OneLineFormatter(logging.Formatter):
    """Formats a record (traceback included) as one redacted line; `journal=True` adds the `<N>` prefix."""

    def __init__(self, fmt: str, *, journal: bool) -> None:
        super().__init__(fmt)
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        text = redact(super().format(record))
        text = text.replace("\r\n", "\n").replace("\r", "\\r").replace("\n", "\\n")
        if self.journal:
            return f"<{syslog_priority(record.levelno)}>{text}"
        return text


def is_journal_stream(stream: IO[str], env: Mapping[str, str] | None = None) -> bool:
    """True if `stream` is the journal: `$JOURNAL_STREAM` ("dev:inode") names its file (systemd.exec(5))."""
    value = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    if not value:
        return False
    try:
        dev, ino = (int(p) for p in value.split(":", 1))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def setup_logging(
    level: str | int, *, stream: IO[str] | None = None, env: Mapping[str, str] | None = None
) -> bool:
    """Replace the root handlers by one on `stream` (stderr); returns True when it writes for the journal."""
    stream = sys.stderr if stream is None else stream
    journal = is_journal_stream(stream, env)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineFormatter(JOURNAL_FORMAT if journal else TERMINAL_FORMAT, journal=journal))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    logger.debug("logging to %s", "the journal" if journal else "stderr")
    return journal
