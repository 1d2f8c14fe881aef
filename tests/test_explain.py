"""`edge-agent explain`: the summary and the PNG from a real SQLite log, their percentages against the rows.

Two logs: one written through the agent's Recorder with the runtime's own record types and known (seeded)
attention weights, and one the runtime Controller wrote itself, offline on the simulated home
(`simhome.lifecycle.auto` with the demo bundle). The expected shares are computed here from the raw rows
with sqlite3 and json (not with `edge_agent.explain`), then compared with what the CLI prints and what the
PNG carries.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from homelog import T_START, home_config

from edge_agent.catalog import CATALOG_KEY, build_catalog
from edge_agent.config import load_config
from edge_agent.effects import DecisionRecord, DeviceChangeRecord, OverrideRecord, dumps
from edge_agent.explain import ExplainError, NothingRecorded, explain, parse_attention, shares
from edge_agent.recorder import Recorder

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "simhome" / "demo_bundle"
CHANNELS = ["living.motion", "living.illuminance", "living.temperature", "attic.co2"]
STEP = 60.0
N_DECISIONS = 360  # six hours, one a minute
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "explain", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )


def _top3(rng: np.random.Generator, bias: int | None) -> str:
    """A decision's recorded attention as the controller writes it: top 3 of 4 channels, rounded to 4."""
    alpha = np.ones(len(CHANNELS))
    if bias is not None:
        alpha[bias] = 6.0
    w = rng.dirichlet(alpha)
    top = [(CHANNELS[j], round(float(w[j]), 4)) for j in np.argsort(-w)[:3] if w[j] > 0]
    return dumps([[c, v] for c, v in top])


def _decision(ts: float, device: str, target: float, reason: str, sent: bool, mode: str, att: str):
    return DecisionRecord(
        ts=ts,
        device=device,
        output=0.9 if target else 0.1,
        target=target,
        confidence=0.8,
        sent=sent,
        reason=reason,
        mode=mode,
        tier="int8",
        trigger="living.motion",
        model_version="v-test",
        latency_ms=0.2,
        attention=att,
    )


@pytest.fixture(scope="module")
def known_log(tmp_path_factory) -> Path:
    """living.light: switched on at minutes 40, 130, 250 (auto, sent) and 300 (shadow, not sent), off at 100,
    200; a person's override at 150; one decision with unreadable attention; hall.fan decided alongside."""
    tmp = tmp_path_factory.mktemp("known")
    cfg_path = home_config(tmp)
    cfg = load_config(cfg_path)
    rng = np.random.default_rng(17)
    rec = Recorder(cfg.database_url, batch_rows=5000)
    try:
        rec.set_state(CATALOG_KEY, build_catalog(cfg, None), T_START)
        rec.write(DeviceChangeRecord(T_START, "living.light", 0.0, None, "initial", False))
        on, off, shadow_on = {40, 130, 250}, {100, 200}, {300}
        state = 0.0
        for i in range(N_DECISIONS):
            ts = T_START + i * STEP
            if i in on | shadow_on:
                target, reason, att = 1.0, "change", _top3(rng, 0)  # switching on: mostly motion
            elif i in off:
                target, reason, att = 0.0, "change", _top3(rng, 1)
            else:
                target, reason, att = state, "no-change", _top3(rng, None)
            if i == 77:
                att = "not json"
            mode = "shadow" if i in shadow_on else "auto"
            sent = reason == "change" and mode == "auto"
            rec.write(_decision(ts, "living.light", target, reason, sent, mode, att))
            rec.write(_decision(ts + 1, "hall.fan", 1.0, "change", True, "auto", _top3(rng, 3)))
            if sent:
                rec.write(DeviceChangeRecord(ts + 2, "living.light", target, state, "agent", False))
                state = target
            if i == 150:  # the person switches it off again
                rec.write(DeviceChangeRecord(ts + 30, "living.light", 0.0, state, "person", False))
                rec.write(
                    OverrideRecord(ts + 30, "living.light", 0.0, state, 1.0, 0.9, ts, "v-test", ts + 3600)
                )
                state = 0.0
        assert rec.flush(60.0)
    finally:
        rec.close()
    assert rec.dropped == 0 and rec.errors == 0
    return cfg_path


def _expected(db: Path, device: str, lo: float = -math.inf, hi: float = math.inf) -> dict:
    """The shares and counts straight from the rows (the module docstring's definition)."""
    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT target, reason, attention FROM decisions WHERE device = ? AND ts >= ? AND ts < ?",
        (device, lo if math.isfinite(lo) else -1e18, hi if math.isfinite(hi) else 1e18),
    ).fetchall()
    n_over = con.execute(
        "SELECT count(*) FROM overrides WHERE device = ? AND ts >= ? AND ts < ?",
        (device, lo if math.isfinite(lo) else -1e18, hi if math.isfinite(hi) else 1e18),
    ).fetchone()[0]
    kind = json.loads(con.execute("SELECT value FROM agent_state WHERE key = 'catalog'").fetchone()[0])[
        "devices"
    ][device]["kind"]
    con.close()
    turn_sum: dict[str, float] = {}
    all_sum: dict[str, float] = {}
    n_turn = bad = 0
    for target, reason, att in rows:
        try:
            pairs = json.loads(att)
        except ValueError:
            bad += 1
            continue
        turning = reason == "change" and (kind != "binary" or target >= 0.5)
        n_turn += turning
        for ch, w in pairs:
            all_sum[ch] = all_sum.get(ch, 0.0) + w
            if turning:
                turn_sum[ch] = turn_sum.get(ch, 0.0) + w

    def norm(d: dict[str, float]) -> dict[str, float]:
        t = sum(d.values())
        return {c: v / t for c, v in d.items()} if t else {}

    return {
        "turning": norm(turn_sum),
        "all": norm(all_sum),
        "n_turn": n_turn,
        "n": len(rows),
        "bad": bad,
        "overrides": n_over,
    }


def _printed_shares(line: str, after: str) -> dict[str, float]:
    part = line.split(after, 1)[1].split(" (+", 1)[0]
    return {m.group(1): float(m.group(2)) / 100.0 for m in re.finditer(r"([\w.]+) (\d+)%", part)}


def _check_png(path: Path) -> dict:
    """Magic bytes, sane size, dimensions; returns the explain metadata the PNG carries."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert 20_000 <= len(data) <= 2_000_000, len(data)
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
        text = dict(im.text)
        im.load()  # decodes every pixel: a truncated file fails here
        extrema = im.convert("L").getextrema()
    assert 600 <= w <= 3000 and 400 <= h <= 2000, (w, h)
    assert extrema[0] < extrema[1]  # not a blank canvas
    return {"meta": json.loads(text["edge-agent:explain"]), "description": text["Description"]}


def _db(cfg_path: Path) -> Path:
    return Path(load_config(cfg_path).database_url.removeprefix("sqlite:///"))


def test_known_weights_summary_and_png_match_the_rows(known_log: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the PNG needs the extra: pip install 'edge-agent[plots]'")
    out = tmp_path / "living.png"
    proc = _cli("--config", str(known_log), "--device", "living.light", "--since", "all", "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    exp = _expected(_db(known_log), "living.light")
    assert exp["n_turn"] == 4 and exp["bad"] == 1 and exp["n"] == N_DECISIONS  # the log is what we wrote
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("living.light: on 4 times (3 sent); driven by "), lines[0]
    assert "; off 2 times" in lines[0]
    printed = _printed_shares(lines[0], "driven by ")
    top3 = [
        c for c in sorted(exp["turning"], key=lambda c: -exp["turning"][c])[:3] if exp["turning"][c] >= 0.005
    ]
    assert list(printed) == top3
    for ch, p in printed.items():
        assert abs(p - exp["turning"][ch]) <= 0.005 + 1e-9, (ch, p, exp["turning"][ch])
    assert max(exp["turning"], key=exp["turning"].get) == "living.motion"  # the bias we wrote
    all_line = next(x for x in lines if x.strip().startswith("all "))
    assert f"all {N_DECISIONS} decisions (auto 359, shadow 1; tiers int8 {N_DECISIONS})" in all_line
    for ch, p in _printed_shares(all_line, "): ").items():
        assert abs(p - exp["all"][ch]) <= 0.005 + 1e-9
    assert "1 decision with unreadable attention left out" in proc.stdout
    assert "1 override by a person" in proc.stdout
    png = _check_png(out)
    for key, want in (("shares_turning", exp["turning"]), ("shares_all", exp["all"])):
        got = png["meta"][key]
        assert set(got) == set(want)
        for ch in want:
            assert got[ch] == pytest.approx(want[ch], abs=1e-12)
    assert png["meta"]["turning"] == 4 and png["meta"]["overrides"] == 1
    assert png["description"].splitlines()[0] == lines[0]
    assert f"wrote {out}" in proc.stdout


def test_span_limits_the_decisions_explained(known_log: Path) -> None:
    """--since/--until as local date-times in the home's zone: only the rows inside are counted."""
    zone = load_config(known_log).timezone
    start = dt.datetime.fromtimestamp(T_START, dt.UTC).astimezone(__import__("zoneinfo").ZoneInfo(zone))
    lo, hi = start + dt.timedelta(hours=2), start + dt.timedelta(hours=5)
    fmt = "%Y-%m-%dT%H:%M"
    proc = _cli(
        "--config", str(known_log), "--device", "living.light",
        "--since", lo.strftime(fmt), "--until", hi.strftime(fmt),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    exp = _expected(_db(known_log), "living.light", lo.timestamp(), hi.timestamp())
    assert exp["n"] == 180 and exp["n_turn"] == 2  # minutes 130 and 250 (300 is past --until)
    first = proc.stdout.splitlines()[0]
    assert first.startswith("living.light: on 2 times; driven by "), first
    for ch, p in _printed_shares(first, "driven by ").items():
        assert abs(p - exp["turning"][ch]) <= 0.005 + 1e-9
    assert "; off 1 time" in first and "; off 1 times" not in first  # minute 200


def test_controller_log_percentages_match_the_recorded_attention(tmp_path: Path) -> None:
    """The runtime Controller's own records (simulated home, demo bundle, auto) explained by the CLI."""
    pytest.importorskip("matplotlib", reason="the PNG needs the extra: pip install 'edge-agent[plots]'")
    from simhome import lifecycle as lc
    from simhome.config import simhome_config_dict

    db = tmp_path / "agent.db"
    rep = lc.auto(lc.make_world(3, start="2024-01-09T16:00"), 0.25, DEMO, db, tmp_path / "state", "explain")
    assert sum(rep.commands.values()) > 0
    cfg = simhome_config_dict(
        DEMO, state_dir=tmp_path / "state", recorder={"database_url": f"sqlite:///{db}"}
    )
    cfg_path = tmp_path / "agent.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    device = max((d for d in rep.commands if d.endswith(".light")), key=lambda d: rep.commands[d])
    out = tmp_path / "explain.png"
    proc = _cli("--config", str(cfg_path), "--device", device, "--since", "all", "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    exp = _expected(db, device)
    assert exp["bad"] == 0 and exp["n"] > 100
    png = _check_png(out)
    assert png["meta"]["decisions"] == exp["n"] and png["meta"]["overrides"] == exp["overrides"]
    for key, want in (("shares_turning", exp["turning"]), ("shares_all", exp["all"])):
        assert set(png["meta"][key]) == set(want)
        for ch in want:
            assert png["meta"][key][ch] == pytest.approx(want[ch], abs=1e-12)
    all_line = next(x for x in proc.stdout.splitlines() if x.strip().startswith("all "))
    for ch, p in _printed_shares(all_line, "): ").items():
        assert abs(p - exp["all"][ch]) <= 0.005 + 1e-9
    if exp["n_turn"]:
        first = proc.stdout.splitlines()[0]
        assert first.startswith(f"{device}: on {exp['n_turn']} time")
        for ch, p in _printed_shares(first, "driven by ").items():
            assert abs(p - exp["turning"][ch]) <= 0.005 + 1e-9


def test_unknown_device_is_one_line_listing_the_known_ones(known_log: Path) -> None:
    proc = _cli("--config", str(known_log), "--device", "garage.light", "--since", "all")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "edge-agent: unknown device 'garage.light'; known devices: living.light, hall.fan"
    ]
    assert proc.stdout == ""


def test_empty_span_is_a_clear_line_and_exit_1(known_log: Path) -> None:
    proc = _cli("--config", str(known_log), "--device", "living.light", "--since", "2h")
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("edge-agent: nothing recorded for living.light"), err
    assert "its records span 2024-06-01" in err[0] and "widen --since/--until" in err[0]


def test_bad_input_lines(known_log: Path, tmp_path: Path) -> None:
    cases = [
        (["--since", "yesterday"], "--since 'yesterday': not a span or a date"),
        (["--since", "2024-06-02", "--until", "2024-06-01"], "is not before --until"),
        (["--out", str(tmp_path)], "give a PNG file path"),
        (["--out", str(tmp_path / "x.jpg")], "give a PNG file path"),
    ]
    for extra, want in cases:
        proc = _cli("--config", str(known_log), "--device", "living.light", *extra)
        assert proc.returncode == 2, (extra, proc.stderr)
        assert want in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    proc = _cli("--config", str(tmp_path / "missing.yaml"), "--device", "living.light")
    assert proc.returncode == 2 and "config error" in proc.stderr and "Traceback" not in proc.stderr


def test_without_matplotlib_the_summary_then_one_line_naming_the_extra(
    known_log: Path, tmp_path: Path
) -> None:
    """matplotlib made unimportable in the child (as in the runtime install): text, then the hint, exit 2."""
    out = tmp_path / "x.png"
    code = (
        "import sys; sys.modules['matplotlib'] = None; from edge_agent.cli import main; "
        f"sys.exit(main(['explain', '--config', {str(known_log)!r}, '--device', 'living.light', "
        f"'--since', 'all', '--out', {str(out)!r}]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stdout.startswith("living.light: on 4 times")
    assert proc.stderr.strip().splitlines() == [
        "edge-agent: the explanation picture needs matplotlib, which is not installed; "
        "install it with pip install 'edge-agent[plots]'"
    ]
    assert not out.exists()


def test_no_database_and_unreadable_attention(tmp_path: Path) -> None:
    with pytest.raises(ExplainError, match="no database at"):
        explain(f"sqlite:///{tmp_path / 'none.db'}", "living.light")
    assert parse_attention('[["a", 0.5], ["b", 0.25]]') == {"a": 0.5, "b": 0.25}
    for bad in (None, "", "nan", "[1, 2]", '[["a", -1]]', '[["a", "x"]]', '{"a": 1}', '[["a", NaN]]'):
        assert parse_attention(bad) is None, bad
    w = np.array([[0.5, 0.25, 0.0], [0.1, 0.0, 0.3]])
    got = shares(w, ["a", "b", "c"])
    assert got == pytest.approx({"a": 0.6 / 1.15, "b": 0.25 / 1.15, "c": 0.3 / 1.15})
    assert shares(np.zeros((0, 3)), ["a", "b", "c"]) == {}


def test_nothing_recorded_is_its_own_error(known_log: Path) -> None:
    url = load_config(known_log).database_url
    with pytest.raises(NothingRecorded):
        explain(url, "living.light", since=T_START + 86400.0)
    exp = explain(url, "living.light", until=T_START + 41 * STEP, timezone="Europe/Brussels")
    assert exp.turning.sum() == 1 and exp.state_value[-1] == 1.0  # switched on at minute 40, reported


def test_level_device_explains_every_change(known_log: Path) -> None:
    """hall.fan (a level device) changes at every decision of the known log, attention biased to attic.co2."""
    url = load_config(known_log).database_url
    exp = explain(url, "hall.fan", configured=["living.light", "hall.fan"], timezone="Europe/Brussels")
    want = _expected(_db(known_log), "hall.fan")
    assert exp.kind == "level" and int(exp.turning.sum()) == want["n_turn"] == N_DECISIONS
    first = exp.summary_lines()[0]
    assert first.startswith(f"hall.fan: changed {N_DECISIONS} times; driven by attic.co2 "), first
    assert "; off" not in first
    assert exp.shares_turning == pytest.approx(want["turning"], abs=1e-12)
