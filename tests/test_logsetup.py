"""Logging for the journal: `<N>` priority prefix and no timestamp when stderr is `$JOURNAL_STREAM`, one line per
event, secrets replaced by `***`; on a terminal the usual timestamped format."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent import logsetup
from edge_agent.logsetup import OneLineFormatter, add_secret, is_journal_stream, setup_logging


@pytest.fixture()
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    logsetup._secrets.clear()


def _journal_file(tmp_path: Path) -> tuple[io.TextIOWrapper, dict[str, str]]:
    f = open(tmp_path / "journal.txt", "w+", encoding="utf-8")  # noqa: SIM115 (closed by the test)
    st = os.fstat(f.fileno())
    return f, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}


def test_journal_priorities_no_timestamp(tmp_path: Path, restore_root: None) -> None:
    """Each level gets its sd-daemon prefix; no asctime (the journal stamps lines itself)."""
    f, env = _journal_file(tmp_path)
    assert setup_logging("DEBUG", stream=f, env=env) is True
    log = logging.getLogger("edge_agent.x")
    log.debug("d %s", 1)
    log.info("i %s", 2)
    log.warning("w %s", 3)
    log.error("e %s", 4)
    log.critical("c %s", 5)
    f.seek(0)
    lines = [ln for ln in f.read().splitlines() if ln.startswith("<") and "edge_agent.x" in ln]
    f.close()
    assert lines == [
        "<7>edge_agent.x: d 1",
        "<6>edge_agent.x: i 2",
        "<4>edge_agent.x: w 3",
        "<3>edge_agent.x: e 4",
        "<2>edge_agent.x: c 5",
    ]


def test_one_line_per_event_and_traceback(tmp_path: Path, restore_root: None) -> None:
    """Newlines in a message and a traceback are escaped: the journal sees one entry per event."""
    f, env = _journal_file(tmp_path)
    setup_logging("INFO", stream=f, env=env)
    log = logging.getLogger("edge_agent.y")
    log.warning("bad payload:\n%s", "line2\r\nline3")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("decider failed")
    f.seek(0)
    lines = f.read().splitlines()
    f.close()
    assert lines[0] == "<4>edge_agent.y: bad payload:\\nline2\\nline3"
    assert lines[1].startswith("<3>edge_agent.y: decider failed\\nTraceback (most recent call last):\\n")
    assert lines[1].endswith("ValueError: boom")
    assert len(lines) == 2


def test_secrets_never_written(restore_root: None) -> None:
    """A registered secret and a URL's password are replaced wherever they appear, arguments included."""
    buf = io.StringIO()
    setup_logging("INFO", stream=buf, env={})
    add_secret("hunter2-xyz")
    add_secret("ab")  # too short to redact safely: ignored
    log = logging.getLogger("edge_agent.z")
    log.info("connecting with %s", "hunter2-xyz")
    log.info("db %s", "postgresql://agent:pg-s3cret@db/home")
    out = buf.getvalue()
    assert "hunter2-xyz" not in out and "pg-s3cret" not in out
    assert "connecting with ***" in out and "postgresql://agent:***@db/home" in out


def test_terminal_keeps_timestamp(restore_root: None) -> None:
    """Not under systemd: the timestamped format, no priority prefix."""
    buf = io.StringIO()
    assert setup_logging("INFO", stream=buf, env={}) is False
    logging.getLogger("edge_agent.t").info("hello")
    line = buf.getvalue().splitlines()[-1]
    assert not line.startswith("<") and line.endswith("INFO edge_agent.t: hello")
    assert line[:4].isdigit()  # asctime: 2026-...


def test_journal_stream_must_be_stderr(tmp_path: Path) -> None:
    """$JOURNAL_STREAM inherited by a process whose stderr was redirected elsewhere does not count."""
    f, env = _journal_file(tmp_path)
    other = open(tmp_path / "other.txt", "w", encoding="utf-8")  # noqa: SIM115
    try:
        assert is_journal_stream(f, env)
        assert not is_journal_stream(other, env)
        assert not is_journal_stream(f, {"JOURNAL_STREAM": "garbage"})
        assert not is_journal_stream(io.StringIO(), env)
    finally:
        f.close()
        other.close()


def test_formatter_terminal_mode_escapes_too() -> None:
    rec = logging.LogRecord("n", logging.INFO, __file__, 1, "a\nb", None, None)
    assert OneLineFormatter("%(message)s", journal=False).format(rec) == "a\\nb"


def test_cli_run_logs_for_the_journal(tmp_path: Path) -> None:
    """`edge-agent run` picks the journal format when its stderr is $JOURNAL_STREAM (a bad bundle: one error line)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"bundle: {tmp_path / 'nope'}\nagent_id: j1\nstate_dir: {tmp_path}\n")
    err = tmp_path / "stderr.txt"
    with open(err, "w", encoding="utf-8") as f:
        st = os.fstat(f.fileno())
        env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        r = subprocess.run(
            [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(cfg), "--log-level", "DEBUG"],
            stderr=f,
            stdout=subprocess.DEVNULL,
            env=env,
            timeout=120,
        )
    text = err.read_text()
    assert r.returncode == 2, text
    assert "<7>edge_agent.logsetup: logging to the journal" in text


def test_every_subcommand_bad_config_is_one_journal_error(tmp_path: Path) -> None:
    """Each config-taking subcommand prints its config error through cli_common.fail: under the journal every
    line is at error priority `<3>`, the key is named, exit 2 (five of them printed without the prefix before)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("bundle: x\nno_such_key: 1\n")
    commands = [
        ["run", "--config"],
        ["check-config"],
        ["train", "--config"],
        ["retrain", "--config"],
        ["shadow-score", "--config"],
        ["export-history", "--out", str(tmp_path / "h.csv"), "--config"],
        ["model", "list", "--config"],
    ]
    for cmd in commands:
        err = tmp_path / "stderr.txt"
        with open(err, "w", encoding="utf-8") as f:
            st = os.fstat(f.fileno())
            env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
            r = subprocess.run(
                [sys.executable, "-m", "edge_agent.cli", *cmd, str(cfg)],
                stderr=f,
                stdout=subprocess.DEVNULL,
                env=env,
                timeout=120,
            )
        lines = [ln for ln in err.read_text().splitlines() if ln]
        assert r.returncode == 2, (cmd, lines)
        assert lines and all(ln.startswith("<3>") for ln in lines), (cmd, lines)
        assert any("no_such_key" in ln for ln in lines), (cmd, lines)
