"""The recorder database (any SQLAlchemy URL) over a span -> a fixed grid of inputs and preference labels.

`load_history(url, since=, until=, last_days=, step=, labels=)` reads `agent_state['catalog']` (kinds, rooms,
time zone, learning settings; the agent writes it at start), `readings`, `device_changes` and `switches`:

* grid: multiples of `step` (default the catalog's learning.train.step_seconds) from the step of the first
  reading to the step of the last one in [since, until); row i covers [times[i], times[i] + step).
* channels: a cell is the channel's reading in that step (event kinds, motion/contact: the max; others the
  last), else empty. A catalog channel with no reading in the span is left out and named (`missing`).
* `<device>.state` inputs (kind device_state): the device's state in effect at each row's end
  (preference labels only: a naive model gets no state input, which is the mistake it demonstrates).
* labels: `edge_agent.labels` rules (always computed: counts, rule-a rows, the person's preference to
  evaluate against); `targets` are those (preference) or the state in effect everywhere (naive).

Bad input (no database, not a database, no catalog, empty span) raises `HistoryError`, one line with the fix.
Writing the generic CSV + sidecar is `edge_agent.history_csv`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sqlalchemy import Engine, create_engine, func, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from edge_agent.catalog import CATALOG_KEY, guess_kind, room_of
from edge_agent.kinds import EVENT_KINDS, state_channel
from edge_agent.labels import (
    PRESENCE_KINDS,
    Change,
    Labels,
    SuggestionOutcome,
    device_occupancy,
    naive_labels,
    preference_labels,
    quiet_mask,
    suggestion_labels,
    switch_mask,
)
from edge_agent.learning_config import LearningSettings
from edge_agent.recorder import agent_state, device_changes, readings, suggestions, switches

logger = logging.getLogger(__name__)

LabelMode = Literal["preference", "naive"]
DAY = 86400.0
READ_CHUNK = 50_000  # readings fetched per round trip


class HistoryError(Exception):
    """Bad input for a history export: one line saying what, where and the fix."""


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    unit: str = ""
    room: str = ""


@dataclass(frozen=True)
class DeviceInfo:
    name: str
    kind: str  # binary | level | setpoint
    levels: int = 2
    unit: str = ""
    room: str = ""


@dataclass
class History:
    """A home's log on a fixed grid (see the module docstring)."""

    times: np.ndarray  # float64 [N] start of each row's step, epoch seconds
    step: float
    timezone: str
    channels: list[Column]  # sensor channels with a reading in the span, then the `<device>.state` inputs
    values: np.ndarray  # float32 [N, C] in `channels` order, NaN = no reading in that step
    devices: list[DeviceInfo]
    labels: Labels  # the preference labels [N, D], state [N, D], rule-a rows, person-change counts
    targets: np.ndarray  # float32 [N, D] the labels of `mode`: labels.labels, or the state in effect (naive)
    mode: LabelMode
    learning: LearningSettings
    missing: list[str] = field(default_factory=list)  # catalog channels without a reading in the span

    def __len__(self) -> int:
        return int(self.times.size)


def open_engine(url: str) -> Engine:
    """An engine on an existing database (a missing SQLite file is an error, never created)."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise HistoryError(
                f"no database at {path}; give the agent's database (recorder.database_url, default "
                "<state_dir>/edge-agent.db)"
            )
    try:
        return create_engine(url)
    except (SQLAlchemyError, ImportError, ValueError) as e:
        raise HistoryError(f"cannot open database {_safe(url)} ({_first(e)}); check the URL") from None


def _safe(url: str) -> str:
    """The URL without its password."""
    head, sep, rest = url.partition("://")
    if "@" in rest and ":" in rest.split("@", 1)[0]:
        user = rest.split("@", 1)[0].split(":", 1)[0]
        return f"{head}{sep}{user}:***@{rest.split('@', 1)[1]}"
    return url


def _first(e: BaseException) -> str:
    text = str(getattr(e, "orig", None) or e)
    return text.splitlines()[0][:200] if text else e.__class__.__name__


def read_catalog(engine: Engine, url: str) -> dict[str, Any]:
    """agent_state['catalog'] (HistoryError naming the fix if the agent never ran on this database)."""
    try:
        with engine.connect() as c:
            raw = c.execute(select(agent_state.c.value).where(agent_state.c.key == CATALOG_KEY)).scalar()
    except SQLAlchemyError as e:
        raise HistoryError(
            f"cannot read database {_safe(url)} ({_first(e)}); is it the agent's database, and intact?"
        ) from None
    if raw is None:
        raise HistoryError(
            f"database {_safe(url)} has no catalog of the home's channels and devices; run the agent at least "
            "once (edge-agent run --config FILE) so it records them"
        )
    try:
        cat = json.loads(raw)
        cat["learning"] = LearningSettings.model_validate(cat.get("learning") or {})
    except (ValueError, TypeError) as e:
        raise HistoryError(
            f"database {_safe(url)}: the catalog is unreadable ({_first(e)}); run the agent once"
        ) from None
    return dict(cat)


def _grid_cells(ts: np.ndarray, vals: np.ndarray, t0: float, step: float, n: int, event: bool) -> np.ndarray:
    """One channel's sorted readings -> float32 [n] cells (event: max per step, else the last)."""
    out = np.full(n, np.nan, dtype=np.float32)
    slot = np.floor((ts - t0) / step).astype(np.int64)
    ok = (slot >= 0) & (slot < n) & np.isfinite(vals)
    slot, vals = slot[ok], vals[ok]
    if event:
        acc = np.full(n, -np.inf)
        np.maximum.at(acc, slot, vals)
        hit = np.isfinite(acc)
        out[hit] = acc[hit]
    elif slot.size:
        last = np.r_[slot[1:] != slot[:-1], True]
        out[slot[last]] = vals[last]
    return out


def _span(
    c: Any, since: float | None, until: float | None, last_days: float | None, step: float
) -> tuple[float, float]:
    """[lo, hi) to read; `last_days`: the grid's last steps that make that many days."""
    lo_hi = c.execute(select(func.min(readings.c.ts), func.max(readings.c.ts))).one()
    if lo_hi[0] is None:
        return math.nan, math.nan
    hi = math.nextafter(float(lo_hi[1]), math.inf) if until is None else float(until)  # exclusive end
    lo = float(lo_hi[0]) if since is None else float(since)
    if last_days is not None:
        last = min(math.nextafter(hi, -math.inf), float(lo_hi[1]))
        lo = max(lo, (math.floor(last / step) + 1) * step - last_days * DAY)
    return lo, hi


def load_history(
    url: str,
    *,
    since: float | None = None,
    until: float | None = None,
    last_days: float | None = None,
    step: float | None = None,
    labels: LabelMode = "preference",
) -> History:
    """Read the log over [since, until) (epoch s; `last_days`: only the last days of the log) onto a grid."""
    engine = open_engine(url)
    try:
        cat = read_catalog(engine, url)
        learning: LearningSettings = cat["learning"]
        step = float(step or learning.train.step_seconds)
        try:
            with engine.connect() as c:
                lo, hi = _span(c, since, until, last_days, step)
                rows = _read_readings(c, lo, hi)
                changes = c.execute(
                    select(device_changes).where(device_changes.c.ts < hi).order_by(device_changes.c.ts)
                ).all()
                flips = c.execute(
                    select(switches.c.ts, switches.c.value)
                    .where(switches.c.name == "pause_learning", switches.c.ts < hi)
                    .order_by(switches.c.ts)
                ).all()
                answered = _suggestions(c, hi)
        except SQLAlchemyError as e:
            raise HistoryError(
                f"cannot read database {_safe(url)} ({_first(e)}); is it the agent's database, and intact?"
            ) from None
    finally:
        engine.dispose()
    if not rows.ts.size:
        raise HistoryError(
            f"no readings in database {_safe(url)} in the span asked for ({_when(lo)} to {_when(hi)}); widen "
            "--since/--until, or let the agent observe first"
        )
    return _build(cat, learning, step, rows, changes, flips, labels, answered)


@dataclass
class _Readings:
    names: list[str]  # channel of each code
    code: np.ndarray  # int32 [R] channel code of each reading, grouped by channel, then by time
    ts: np.ndarray  # float64 [R]
    value: np.ndarray  # float64 [R]


def _read_readings(c: Any, lo: float, hi: float) -> _Readings:
    """Readings in [lo, hi), streamed in chunks (bounded memory: 20 bytes a reading, not a Row object)."""
    codes: dict[str, int] = {}
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    if math.isfinite(lo):
        q = (
            select(readings.c.channel, readings.c.ts, readings.c.value)
            .where(readings.c.ts >= lo, readings.c.ts < hi)
            .order_by(readings.c.ts)
        )
        res = c.execution_options(stream_results=True).execute(q)
        for part in res.partitions(READ_CHUNK):
            ch, t, v = zip(*part, strict=True)
            k = len(ch)
            parts.append(
                (
                    np.fromiter((codes.setdefault(x, len(codes)) for x in ch), np.int32, k),
                    np.fromiter(t, np.float64, k),
                    np.fromiter((np.nan if x is None else x for x in v), np.float64, k),
                )
            )
    if not parts:
        return _Readings([], np.zeros(0, np.int32), np.zeros(0), np.zeros(0))
    code, ts, value = (np.concatenate([p[i] for p in parts]) for i in range(3))
    order = np.argsort(code, kind="stable")  # by channel, time order kept
    return _Readings(list(codes), code[order], ts[order], value[order])


def _suggestions(c: Any, hi: float) -> Sequence[Any]:
    """Answered suggestions before `hi` (a log from before suggest mode has no such table: none)."""
    if not inspect(c).has_table(suggestions.name):
        return []
    q = select(suggestions).where(suggestions.c.created < hi).order_by(suggestions.c.created)
    return c.execute(q).all()


def _when(t: float) -> str:
    if not math.isfinite(t):
        return "-"
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _build(
    cat: dict[str, Any],
    learning: LearningSettings,
    step: float,
    rows: _Readings,
    changes: Sequence[Any],
    flips: Sequence[Any],
    mode: LabelMode,
    answered: Sequence[Any] = (),
) -> History:
    dev_cat: dict[str, dict[str, Any]] = cat.get("devices") or {}
    ch_cat: dict[str, dict[str, Any]] = cat.get("channels") or {}
    zone = str(cat.get("timezone") or "UTC")
    state_names = {state_channel(d) for d in dev_cat}
    ts, vals = rows.ts, rows.value
    t0 = math.floor(float(ts.min()) / step) * step
    n = int(round((math.floor(float(ts.max()) / step) * step - t0) / step)) + 1
    times = t0 + np.arange(n, dtype=np.float64) * step
    cuts = np.searchsorted(rows.code, np.arange(len(rows.names) + 1))
    bounds = {name: (int(cuts[i]), int(cuts[i + 1])) for i, name in enumerate(rows.names)}
    order = [c for c in ch_cat if c in bounds] + sorted(c for c in bounds if c not in ch_cat)
    order = [c for c in order if c not in state_names and c not in dev_cat and not c.startswith("calendar.")]
    cols: list[Column] = []
    cells: list[np.ndarray] = []
    for name in order:
        info = ch_cat.get(name) or {"kind": guess_kind(name), "unit": "", "room": room_of(name)}
        a, z = bounds[name]
        cols.append(Column(name, str(info["kind"]), str(info.get("unit") or ""), str(info.get("room") or "")))
        cells.append(_grid_cells(ts[a:z], vals[a:z], t0, step, n, info["kind"] in EVENT_KINDS))
    missing = [c for c in ch_cat if c not in bounds and c not in state_names]
    if missing:
        logger.warning("no reading in the span for channel(s) %s: left out", ", ".join(missing))
    devices = [
        DeviceInfo(
            d,
            str(v.get("kind") or "binary"),
            int(v.get("levels") or 2),
            str(v.get("unit") or ""),
            str(v.get("room") or room_of(d)),
        )
        for d, v in dev_cat.items()
    ]
    per_dev: dict[str, list[Change]] = {d.name: [] for d in devices}
    for r in changes:
        if r.device in per_dev:
            per_dev[r.device].append(
                Change(float(r.ts), float(r.value), str(r.source), bool(r.learning_paused))
            )
    ch_lists = [per_dev[d.name] for d in devices]
    events = {c.name: v for c, v in zip(cols, cells, strict=True) if c.kind in PRESENCE_KINDS}
    if not events and devices:
        logger.warning(
            "no motion or contact channel in the log: every row counts as occupied (unchanged states are "
            "labels everywhere); add a presence sensor for better labels"
        )
    occ = device_occupancy(
        times,
        step,
        events,
        {c.name: c.room for c in cols},
        [d.room for d in devices],
        learning.presence_seconds,
    )
    excluded = quiet_mask(times, zone, learning.quiet_spans) | switch_mask(
        times, step, [(float(f[0]), bool(f[1])) for f in flips]
    )
    lab = preference_labels(
        times, step, ch_lists, occ, excluded, learning.label_lead_seconds, learning.presence_seconds
    )
    per_sug: dict[str, list[SuggestionOutcome]] = {d.name: [] for d in devices}
    for r in answered:  # suggest mode: accepted / rejected suggestions fill rows no other rule labelled
        if r.device in per_sug:
            per_sug[r.device].append(
                SuggestionOutcome(float(r.created), float(r.value), r.basis, str(r.outcome))
            )
    sug = suggestion_labels(times, step, [per_sug[d.name] for d in devices], learning.label_lead_seconds)
    fill = np.isnan(lab.labels) & ~np.isnan(sug) & ~excluded[:, None]
    lab.labels[fill] = sug[fill]
    lab.labelled += fill.sum(axis=0).astype(np.int64)
    if mode == "naive":
        targets = naive_labels(times, step, ch_lists)
    else:
        targets = lab.labels
        for k, d in enumerate(devices):
            if np.isnan(lab.state[:, k]).all():  # never reported: no input (and no label)
                continue
            cols.append(Column(state_channel(d.name), "device_state", d.unit, d.room))
            cells.append(lab.state[:, k])
    values = np.stack(cells, axis=1) if cells else np.zeros((n, 0), np.float32)
    return History(times, step, zone, cols, values, devices, lab, targets, mode, learning, missing)
