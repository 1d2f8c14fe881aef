"""cli_common: the time spans every subcommand parses, and the one error line (pure, no subprocess)."""

from __future__ import annotations

import datetime as dt

import pytest

from edge_agent.cli_common import EXIT_BAD_INPUT, fail, parse_span, parse_when

NOW = dt.datetime(2024, 6, 30, 12, 0, tzinfo=dt.UTC).timestamp()


def test_parse_when_forms() -> None:
    assert parse_when("30d", NOW, "UTC", "--since") == NOW - 30 * 86400
    assert parse_when("1.5h", NOW, "UTC", "--since") == NOW - 5400
    # a local date is midnight in the home's zone (Berlin is UTC+2 in summer)
    berlin = parse_when("2024-06-30", NOW, "Europe/Berlin", "--since")
    assert berlin == dt.datetime(2024, 6, 29, 22, 0, tzinfo=dt.UTC).timestamp()
    with pytest.raises(ValueError, match=r"--until 'yesterday': not a span or a date"):
        parse_when("yesterday", NOW, "UTC", "--until")


def test_parse_span_order_and_open_ends() -> None:
    assert parse_span(None, None, NOW, "UTC") == (None, None)
    assert parse_span("2d", None, NOW, "UTC") == (NOW - 2 * 86400, None)
    with pytest.raises(ValueError, match=r"--since 1d is not before --until 2d; swap or widen them"):
        parse_span("1d", "2d", NOW, "UTC")


def test_fail_is_one_line_with_the_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert fail("--out x: is a directory") == EXIT_BAD_INPUT
    assert fail("broker down", 1) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == ["edge-agent: --out x: is a directory", "edge-agent: broker down"]
