"""Why a device did what it did, from the agent's log: its state over time, the agent's decisions, the
person's overrides and the attention weights that drove the decisions (reading and arithmetic; no plotting,
that is `edge_agent.explain_plot`).

`explain(url, device, since=, until=)` reads, for one device over [since, until) (epoch s, None = open):
`decisions` (ts, target, raw output, mode, tier, reason, sent, attention JSON), `device_changes` (the
reported state, attributed: initial / agent / person / automation:<name>; the state in effect at `since`
is carried in), `overrides` (a person's change, with what the agent had decided) and the catalog's device
kind (`agent_state['catalog']`).

The percentages (one definition, used by the summary, the picture and its PNG metadata):
* Each decision row records its top channels (`controller.TOP_CHANNELS`) as `[[channel, weight], ...]`,
  the weights as the model gave them (rounded to 4 decimals); a channel not recorded in a row counts 0.
* For a set S of decisions, channel c's share is
      share(c) = sum_{d in S} w_d(c) / sum_{d in S} sum_{c'} w_d(c')
  i.e. the mean recorded weight of c over S, renormalised so that the recorded channels' shares sum to 1.
* "turning" decisions: those where the policy changed the device (`reason == 'change'`: a command sent in
  auto, or the one shadow / suggest would have sent); for a binary device the turning-on ones
  (target >= 0.5) are the ones its summary explains ("on 14 times; driven by ..."), for a level or setpoint
  device every change. `shares_all` is the same over every decision in the span.
A row whose attention is not readable JSON of that shape is counted in `unreadable`, its weights left out.
Bad input (no database, unknown device, nothing in the span) raises `ExplainError`: one line with the fix.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine, func, select, union_all
from sqlalchemy.exc import SQLAlchemyError

from edge_agent.catalog import CATALOG_KEY
from edge_agent.history import HistoryError, _safe, open_engine
from edge_agent.recorder import agent_state, decisions, device_changes, overrides

TURNING_REASON = "change"
SUMMARY_CHANNELS = 3  # channels named in the summary line; the rest are "+N more"
_decode = json.JSONDecoder().decode  # json.loads without its per-call checks: one call per decision row
MIN_NAMED_SHARE = 0.005  # a channel named in the summary shows at least 1%


class ExplainError(Exception):
    """Bad input for an explanation: one line saying what, where and the fix."""


class NothingRecorded(ExplainError):
    """The device has no decision, state change or override in the span (the line says what the log has)."""


@dataclass
class Explanation:
    """One device's log over a span, and the attention shares (module docstring)."""

    device: str
    kind: str  # binary | level | setpoint
    since: float  # the span asked for (epoch s); an open end is the first / last record in it
    until: float
    timezone: str
    # decisions, in time order: [N]
    dec_ts: np.ndarray  # float64
    dec_target: np.ndarray  # float64 value after the policy
    dec_output: np.ndarray  # float64 raw model output
    dec_mode: list[str]
    dec_tier: list[str]
    dec_reason: list[str]
    dec_sent: np.ndarray  # bool
    channels: list[str]  # every channel recorded in the span, by overall share, largest first
    attention: np.ndarray  # float64 [N, K] recorded weight of channels[k] in decision n (0 = not recorded)
    # the reported state, in time order: [M] (the first may be the state in effect at `since`)
    state_ts: np.ndarray
    state_value: np.ndarray
    state_source: list[str]
    # a person's overrides: [V]
    over_ts: np.ndarray
    over_value: np.ndarray
    over_agent: np.ndarray  # the agent's last decided value then (NaN = none)
    unreadable: int = 0
    shares_turning: dict[str, float] = field(default_factory=dict)
    shares_all: dict[str, float] = field(default_factory=dict)

    @property
    def turning(self) -> np.ndarray:
        """bool [N]: the decisions the summary explains (module docstring)."""
        change = np.array([r == TURNING_REASON for r in self.dec_reason], dtype=bool)
        if self.kind == "binary":
            change &= self.dec_target >= 0.5
        return change

    def summary_lines(self) -> list[str]:
        """The summary: the issue's line first, then all decisions, the state and the overrides."""
        turn = self.turning
        n_turn, n_sent = int(turn.sum()), int((turn & self.dec_sent).sum())
        verb = "on" if self.kind == "binary" else "changed"
        sent = "" if n_turn == n_sent else f" ({n_sent} sent)"
        if n_turn:
            first = f"{self.device}: {verb} {_n(n_turn, 'time')}{sent}; driven by {_fmt_shares(self.shares_turning)}"
        elif self.dec_ts.size:
            first = f"{self.device}: never {'switched on' if verb == 'on' else 'changed'} by the agent"
        else:
            first = f"{self.device}: no decision by the agent (mode off or observe, or no model)"
        if self.kind == "binary":
            n_off = sum(r == TURNING_REASON for r in self.dec_reason) - n_turn
            first += f"; off {_n(n_off, 'time')}" if n_off else ""
        lines = [first]
        if self.dec_ts.size:
            modes = ", ".join(f"{m} {n}" for m, n in _counts(self.dec_mode))
            tiers = ", ".join(f"{t} {n}" for t, n in _counts(self.dec_tier))
            lines.append(
                f"  all {self.dec_ts.size} decisions ({modes}; tiers {tiers}): "
                f"{_fmt_shares(self.shares_all) if self.shares_all else 'no attention recorded'}"
            )
        if self.unreadable:
            lines.append(f"  {_n(self.unreadable, 'decision')} with unreadable attention left out")
        by_source = _counts(s.split(":", 1)[0] for s in self.state_source if s != "carried")
        changes = ", ".join(f"{s} {n}" for s, n in by_source) or "none"
        span = f"{_when(self.since, self.timezone)} to {_when(self.until, self.timezone)}"
        lines.append(f"  state changes: {changes}; {_n(self.over_ts.size, 'override')} by a person ({span})")
        return lines

    def summary(self) -> str:
        return "\n".join(self.summary_lines())

    def metadata(self) -> dict[str, Any]:
        """What the PNG carries as text: the summary and the exact shares (JSON-ready)."""
        return {
            "device": self.device,
            "since": self.since,
            "until": self.until,
            "decisions": int(self.dec_ts.size),
            "turning": int(self.turning.sum()),
            "overrides": int(self.over_ts.size),
            "shares_turning": self.shares_turning,
            "shares_all": self.shares_all,
        }


def shares(weights: np.ndarray, channels: Sequence[str]) -> dict[str, float]:
    """share(c) = sum_n w[n, c] / sum_n sum_c' w[n, c'] for weights [N, K] (empty / all-zero -> {})."""
    col = weights.sum(axis=0) if weights.size else np.zeros(len(channels))
    total = float(col.sum())
    if total <= 0:
        return {}
    return {c: float(v) / total for c, v in zip(channels, col, strict=True) if v > 0}


def parse_attention(text: str | None) -> dict[str, float] | None:
    """A decision's recorded `[[channel, weight], ...]` -> {channel: weight}; None when unreadable."""
    if text is None:
        return None
    try:
        out: dict[str, float] = {}
        for ch, w in _decode(text):
            w = float(w)
            if not (isinstance(ch, str) and 0.0 <= w < math.inf):
                return None
            out[ch] = out.get(ch, 0.0) + w
        return out
    except (ValueError, TypeError):
        return None


def known_devices(engine: Engine, configured: Iterable[str], device: str | None = None) -> list[str]:
    """The configured devices, then those only the log knows (decided or reported before); with `device`
    configured, the configured ones only (the log is not scanned)."""
    names = list(dict.fromkeys(configured))
    if device is not None and device in names:
        return names  # no scan of the log needed
    q = union_all(select(decisions.c.device).distinct(), select(device_changes.c.device).distinct())
    with engine.connect() as c:
        logged = sorted({r[0] for r in c.execute(q)})
    return names + [d for d in logged if d not in names]


def explain(
    url: str,
    device: str,
    *,
    since: float | None = None,
    until: float | None = None,
    configured: Iterable[str] = (),
    timezone: str = "UTC",
) -> Explanation:
    """The explanation of `device` over [since, until) from the log at `url` (module docstring)."""
    try:
        engine = open_engine(url)
    except HistoryError as e:
        raise ExplainError(str(e)) from None
    lo = -math.inf if since is None else float(since)
    hi = math.inf if until is None else float(until)
    try:
        known = known_devices(engine, configured, device)
        if device not in known:
            raise ExplainError(
                f"unknown device {device!r}; known devices: {', '.join(known) or 'none (the log is empty)'}"
            )
        with engine.connect() as c:
            cat = c.execute(select(agent_state.c.value).where(agent_state.c.key == CATALOG_KEY)).scalar()
            dec = c.execute(
                select(
                    decisions.c.ts,
                    decisions.c.target,
                    decisions.c.output,
                    decisions.c.mode,
                    decisions.c.tier,
                    decisions.c.reason,
                    decisions.c.sent,
                    decisions.c.attention,
                )
                .where(decisions.c.device == device, decisions.c.ts >= lo, decisions.c.ts < hi)
                .order_by(decisions.c.ts, decisions.c.id)
            ).all()
            chg = c.execute(
                select(device_changes.c.ts, device_changes.c.value, device_changes.c.source)
                .where(device_changes.c.device == device, device_changes.c.ts < hi)
                .order_by(device_changes.c.ts, device_changes.c.id)
            ).all()
            ovr = c.execute(
                select(overrides.c.ts, overrides.c.value, overrides.c.agent_target)
                .where(overrides.c.device == device, overrides.c.ts >= lo, overrides.c.ts < hi)
                .order_by(overrides.c.ts, overrides.c.id)
            ).all()
            span = None if dec or ovr or (chg and chg[-1].ts >= lo) else _log_span(c, device)
    except SQLAlchemyError as e:
        msg = str(getattr(e, "orig", None) or e).splitlines()[0][:200]
        raise ExplainError(
            f"cannot read the log at {_safe(url)} ({msg}); is it the agent's database, and intact?"
        ) from None
    finally:
        engine.dispose()
    inside = [r for r in chg if r.ts >= lo]
    if not dec and not inside and not ovr:
        have = (
            "it has no record at all"
            if span is None
            else (f"its records span {_when(span[0], timezone)} to {_when(span[1], timezone)}")
        )
        raise NothingRecorded(
            f"nothing recorded for {device} from {_when(lo, timezone)} to {_when(hi, timezone)}; {have}; "
            "widen --since/--until"
        )
    return _build(device, _kind(cat, device, chg), lo, hi, timezone, dec, chg, ovr)


def _build(
    device: str,
    kind: str,
    lo: float,
    hi: float,
    zone: str,
    dec: Sequence[Any],
    chg: Sequence[Any],
    ovr: Sequence[Any],
) -> Explanation:
    cols = list(zip(*dec, strict=True)) if dec else [()] * 8
    d_ts, d_target, d_output, d_mode, d_tier, d_reason, d_sent, d_att = cols
    seen: dict[str, int] = {}
    hits: list[tuple[int, int, float]] = []  # (decision, channel code, weight)
    unreadable = 0
    for n, text in enumerate(d_att):
        p = parse_attention(text)
        if p is None:
            unreadable += 1
            continue
        for ch, w in p.items():
            hits.append((n, seen.setdefault(ch, len(seen)), w))
    att = np.zeros((len(dec), len(seen)))  # [N, K]
    if hits:
        rows_, codes, weights = zip(*hits, strict=True)
        att[np.array(rows_), np.array(codes)] = weights
    names = list(seen)
    order = np.argsort(-att.sum(axis=0), kind="stable")  # by overall share, largest first
    att, names = att[:, order], [names[k] for k in order]
    before = [r for r in chg if r.ts < lo]
    states = ([before[-1]] if before else []) + [r for r in chg if r.ts >= lo]
    times = [max(float(r.ts), lo) for r in states]
    sources = ["carried" if before and i == 0 else str(r.source) for i, r in enumerate(states)]
    stamps = [*d_ts, *(float(r.ts) for r in chg if r.ts >= lo), *(float(r.ts) for r in ovr)]
    exp = Explanation(
        device=device,
        kind=kind,
        since=lo if math.isfinite(lo) else min(stamps),
        until=hi if math.isfinite(hi) else max(stamps),
        timezone=zone,
        dec_ts=np.array(d_ts, dtype=np.float64),
        dec_target=np.array(d_target, dtype=np.float64),
        dec_output=np.array(d_output, dtype=np.float64),
        dec_mode=[str(m) for m in d_mode],
        dec_tier=[str(t) for t in d_tier],
        dec_reason=[str(r) for r in d_reason],
        dec_sent=np.array(d_sent, dtype=bool),
        channels=names,
        attention=att,
        state_ts=np.array(times, dtype=np.float64),
        state_value=np.array([float(r.value) for r in states], dtype=np.float64),
        state_source=sources,
        over_ts=np.array([float(r.ts) for r in ovr], dtype=np.float64),
        over_value=np.array([float(r.value) for r in ovr], dtype=np.float64),
        over_agent=np.array(
            [math.nan if r.agent_target is None else float(r.agent_target) for r in ovr], dtype=np.float64
        ),
        unreadable=unreadable,
    )
    exp.shares_turning = shares(att[exp.turning], names)
    exp.shares_all = shares(att, names)
    return exp


def _kind(cat_json: str | None, device: str, chg: Sequence[Any]) -> str:
    """The catalog's kind of the device; else binary when every reported value is 0 or 1."""
    try:
        kind = json.loads(cat_json or "{}").get("devices", {}).get(device, {}).get("kind")
    except (ValueError, AttributeError):
        kind = None
    if kind in ("binary", "level", "setpoint"):
        return str(kind)
    return "binary" if all(float(r.value) in (0.0, 1.0) for r in chg) else "level"


def _log_span(c: Any, device: str) -> tuple[float, float] | None:
    lo_hi = [
        c.execute(select(func.min(t.c.ts), func.max(t.c.ts)).where(t.c.device == device)).one()
        for t in (decisions, device_changes, overrides)
    ]
    got = [x for x in lo_hi if x[0] is not None]
    return (min(float(x[0]) for x in got), max(float(x[1]) for x in got)) if got else None


def _n(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _counts(items: Iterable[str]) -> list[tuple[str, int]]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return sorted(out.items(), key=lambda kv: -kv[1])


def _fmt_shares(sh: dict[str, float]) -> str:
    ranked = sorted(sh.items(), key=lambda kv: -kv[1])
    top = [(c, v) for c, v in ranked[:SUMMARY_CHANNELS] if v >= MIN_NAMED_SHARE] or ranked[:1]
    text = ", ".join(f"{c} {v:.0%}" for c, v in top)
    rest = ranked[len(top) :]
    if rest:
        text += f" (+{len(rest)} more {sum(v for _, v in rest):.0%})"
    return text


def _when(t: float, zone: str) -> str:
    if not math.isfinite(t):
        return "the start" if t < 0 else "now"
    from edge_agent.calendar_features import load_zone

    try:
        tz: dt.tzinfo = load_zone(zone)
    except ValueError:
        tz = dt.UTC
    return dt.datetime.fromtimestamp(t, tz).strftime("%Y-%m-%d %H:%M %Z")
