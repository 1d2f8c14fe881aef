"""What every `edge-agent` subcommand shares: its exit codes, the one-line error, and loading the config.

A bad input (config, argument, file) is one line on stderr, `edge-agent: <what, where, the fix>`, and exit 2;
a job that ran and failed is exit 1. Under systemd (stderr is the journal) every line carries the error
priority prefix `<3>`, so `journalctl -p err` shows it.
"""

from __future__ import annotations

import sys

from edge_agent.config import AgentConfig, ConfigError, load_config
from edge_agent.logsetup import is_journal_stream

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


def fail(msg: str, code: int = EXIT_BAD_INPUT) -> int:
    """Print `edge-agent: msg` to stderr (journal priority prefix under systemd) and return `code`."""
    text = f"edge-agent: {msg}"
    if is_journal_stream(sys.stderr):
        text = "\n".join(f"<3>{line}" for line in text.splitlines())
    print(text, file=sys.stderr)
    return code


def config_or_none(path: str) -> AgentConfig | None:
    """The config at `path`, or None after printing its error (which names the key) as one `fail` line."""
    try:
        return load_config(path)
    except ConfigError as e:
        fail(f"config error:\n{e}")
        return None
