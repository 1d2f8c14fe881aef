"""What every `edge-agent` subcommand shares: exit codes, the one-line error, loading the config, time spans.

A bad input (config, argument, file) is one line on stderr, `edge-agent: <what, where, the fix>`, and exit 2;
a job that ran and failed is exit 1. Under systemd (stderr is the journal) every line carries the error
priority prefix `<3>`, so `journalctl -p err` shows it.
"""

from __future__ import annotations

import datetime as dt
import re
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


_AGO = re.compile(r"(\d+(?:\.\d+)?)([dh])")


def parse_when(text: str, now: float, timezone: str, flag: str) -> float:
    """'30d' / '12h' before `now`, or a local date / date-time in `timezone` -> epoch seconds (ValueError)."""
    from edge_agent.calendar_features import load_zone

    text = text.strip()
    m = _AGO.fullmatch(text)
    if m:
        return now - float(m.group(1)) * (86400.0 if m.group(2) == "d" else 3600.0)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{flag} {text!r}: not a span or a date; write e.g. 30d, 12h, 2024-06-30 or 2024-06-30T18:00"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=load_zone(timezone))
    return when.timestamp()


def parse_span(
    since: str | None, until: str | None, now: float, timezone: str
) -> tuple[float | None, float | None]:
    """`--since` / `--until` (each optional, `parse_when` forms) -> epoch seconds; ValueError names the flag,
    also when since is not before until."""
    start = parse_when(since, now, timezone, "--since") if since else None
    end = parse_when(until, now, timezone, "--until") if until else None
    if start is not None and end is not None and start >= end:
        raise ValueError(f"--since {since} is not before --until {until}; swap or widen them")
    return start, end
