"""Training labels from a home's own log: what the person wanted, not the device's own footprint (pure numpy).

Why: a lamp raises its room's illuminance, a heater its temperature. A model trained on "state in effect"
learns to mirror the device through its footprint ("lamp light seen -> keep it on, none -> keep it off") and
never switches it on for a person sitting in the dark (training/simexplore.py). So the labels are:

a. **A person's change** at t_c to v: the rows whose data ends in (t_c - lead, t_c] get label v (the model's
   window ends before the change: it must anticipate it), back to the device's previous change at most, and
   only rows while the device's room is occupied: the person wanted the kitchen light once in the kitchen, not
   while still walking through the living room (labelling those taught a model to switch lights on in rooms
   nobody had entered yet).
b. Otherwise a row is labelled with **the state in effect** when the row is not excluded and the state was set
   by 'person' or 'initial' (what the person left, also in an empty room: "nobody there, light off" is a
   preference too — without it a model is undefined for empty rooms and leaves lights on), or, while the room
   is occupied, by 'agent' (an agent command nobody changed back while there is accepted; one a person set back to the previous value within `reject_seconds`, the caller's
   presence time, is a rejection: no label, and rule a labels the rows before the person's change). Never
   while the state
   was set by 'automation:<name>' (a thermostat's own schedule is not the person), or by a change recorded
   with learning paused, until the device's next change.
c. A change with `learning_paused`, or inside an excluded row, is never a label (rule a skips it); excluded
   rows carry no label at all.

From the agent's life (issue 16): a person's override of an agent command is rule a (a strong label: its
windows are among the transition windows training oversamples, `--transition-frac`); an agent command nobody
set back while the room was occupied is rule b (an agreement label); one set back within `reject_seconds` is
a rejection. Shadow decisions send nothing, so what the person then did is labelled by rules a/b as without a
model. Recency: training draws a window `half_life_days` older half as often (learning.retrain). Seam for
suggestions (suggest mode, another module): an accepted suggestion is carried out as an agent command (rule
b once nobody reverts it); a rejected one changes nothing, so the state the person left stays the label (rule
b). A source of its own (e.g. 'suggest:accept') would be added to LABEL_SOURCES.

The state in effect is also the model input channel `<device>.state` (edge_agent.kinds.state_channel): with
it the model learns transitions ("off, and the person came home -> on") instead of persistence.

Row convention: `times[i]` is the start of row i's step (the recorder's `readings.ts`); the row holds data of
[times[i], times[i] + step) and "sees" every change with ts < times[i] + step (the row's end).

`occupied`: a room is occupied for `presence_seconds` after any motion/contact event (value 1, counted from
the event row's time) of a channel in that room; a room with no such channel uses every such channel of the
home; a home with none counts as always occupied (the caller says so once). `excluded`: the pause-learning
switch was on during the row, or the row starts inside a configured quiet span (local time, home's zone).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from edge_agent.calendar_features import load_zone, local_seconds
from edge_agent.learning_config import WEEKDAYS, QuietSpan, minutes_of

LABEL_SOURCES = frozenset({"person", "initial", "agent"})  # states that may be labels (rule b)
PRESENCE_KINDS = frozenset({"motion", "contact"})


class Change(NamedTuple):
    """One row of `device_changes` (sorted by ts per device)."""

    ts: float
    value: float
    source: str  # initial | agent | person | automation:<name>
    learning_paused: bool = False


@dataclass
class Labels:
    """Labels of D devices on an N-row grid."""

    labels: np.ndarray  # float32 [N, D] preference label, NaN = no label
    state: np.ndarray  # float32 [N, D] state in effect at each row's end, NaN before the first report
    event_rows: np.ndarray  # bool [N, D] rows labelled by rule a (a person's change follows)
    events: np.ndarray  # int64 [D] person changes usable as labels (>= 1 rule-a row on the grid)
    labelled: np.ndarray  # int64 [D] labelled rows
    event_ts: list[np.ndarray] = field(default_factory=list)  # per device: float64 times of those changes


def row_ends(times: np.ndarray, step: float) -> np.ndarray:
    """float64 [N]: the instant each row's data ends (exclusive)."""
    return np.asarray(times, dtype=np.float64) + float(step)


def state_in_effect(
    times: np.ndarray, step: float, changes: Sequence[Change]
) -> tuple[np.ndarray, np.ndarray]:
    """(state float32 [N], index int64 [N] of the change in effect, -1 before the first) at each row's end."""
    ends = row_ends(times, step)
    ts = np.array([c.ts for c in changes], dtype=np.float64)
    idx = np.searchsorted(ts, ends, side="left") - 1  # last change with ts < end
    vals = np.array([c.value for c in changes], dtype=np.float32)
    state = np.full(ends.size, np.nan, dtype=np.float32)
    ok = idx >= 0
    state[ok] = vals[idx[ok]]
    return state, idx.astype(np.int64)


def naive_labels(times: np.ndarray, step: float, changes: Sequence[Sequence[Change]]) -> np.ndarray:
    """float32 [N, D]: the state in effect everywhere (the comparison baseline that mirrors footprints)."""
    out = np.full((len(times), len(changes)), np.nan, dtype=np.float32)
    for d, ch in enumerate(changes):
        out[:, d] = state_in_effect(times, step, ch)[0]
    return out


def _row_of(times: np.ndarray, step: float, t: float) -> int:
    """Index of the row holding instant t (clipped to the grid)."""
    if times.size == 0:
        return -1
    return int(np.clip(np.floor((t - times[0]) / step), 0, times.size - 1))


def preference_labels(
    times: np.ndarray,
    step: float,
    changes: Sequence[Sequence[Change]],
    occupied: np.ndarray,
    excluded: np.ndarray,
    lead_seconds: float,
    reject_seconds: float = 0.0,
) -> Labels:
    """Rules a, b, c (module docstring) for D devices: `changes[d]` sorted, occupied bool [N, D], excluded [N].

    `reject_seconds`: an agent command that a person reverted within this long is no label (rule b)."""
    times = np.asarray(times, dtype=np.float64)
    n, n_dev = times.size, len(changes)
    ends = row_ends(times, step)
    excluded = np.asarray(excluded, dtype=bool)
    labels = np.full((n, n_dev), np.nan, dtype=np.float32)
    state = np.full((n, n_dev), np.nan, dtype=np.float32)
    event_rows = np.zeros((n, n_dev), dtype=bool)
    events = np.zeros(n_dev, dtype=np.int64)
    event_ts: list[np.ndarray] = []
    for d, ch in enumerate(changes):
        used: list[float] = []
        st, idx = state_in_effect(times, step, ch)
        state[:, d] = st
        ok_source = np.array(
            [c.source in LABEL_SOURCES and not c.learning_paused for c in ch] or [False], dtype=bool
        )
        for k in _reverted(ch, reject_seconds):
            ok_source[k] = False
        # an empty room's state is a label only if the person (or the initial state) left it so: what an agent
        # set while nobody was there to object is not accepted (it would teach its own mistakes back)
        left_by_person = ok_source & np.array([c.source != "agent" for c in ch] or [False], dtype=bool)
        occ = np.asarray(occupied[:, d], dtype=bool)
        src = np.maximum(idx, 0)
        b = (idx >= 0) & ~excluded & ((occ & ok_source[src]) | (~occ & left_by_person[src]))
        labels[b, d] = st[b]
        for k, c in enumerate(ch):  # rule a, c
            if c.source != "person" or c.learning_paused or n == 0:
                continue
            if excluded[_row_of(times, step, c.ts)]:
                continue
            lo = max(c.ts - lead_seconds, ch[k - 1].ts if k else -np.inf)
            i0 = int(np.searchsorted(ends, lo, side="right"))  # first row ending after lo
            i1 = int(np.searchsorted(ends, c.ts, side="right"))  # rows ending at or before t_c
            rows = np.arange(i0, i1)
            rows = rows[~excluded[rows] & occ[rows]]  # they wanted it once there, not before they came
            if rows.size:
                labels[rows, d] = c.value
                event_rows[rows, d] = True
                events[d] += 1
                used.append(c.ts)
        event_ts.append(np.array(used, dtype=np.float64))
    labelled = (~np.isnan(labels)).sum(axis=0).astype(np.int64)
    return Labels(labels, state, event_rows, events, labelled, event_ts)


def _reverted(ch: Sequence[Change], within: float) -> list[int]:
    """Indices of agent changes a person set back to the previous value within `within` seconds."""
    out = []
    for k in range(1, len(ch) - 1):
        c, nxt = ch[k], ch[k + 1]
        back = nxt.source == "person" and nxt.value == ch[k - 1].value and nxt.ts - c.ts <= within
        if c.source == "agent" and back:
            out.append(k)
    return out


def presence(times: np.ndarray, step: float, events: np.ndarray, presence_seconds: float) -> np.ndarray:
    """bool [N]: occupied at each row's end, for `presence_seconds` after an event row (events bool [N])."""
    times = np.asarray(times, dtype=np.float64)
    idx = np.where(np.asarray(events, dtype=bool), np.arange(times.size), -1)
    last = np.maximum.accumulate(idx) if idx.size else idx
    since = row_ends(times, step) - times[np.maximum(last, 0)]
    return (last >= 0) & (since <= presence_seconds)


def device_occupancy(
    times: np.ndarray,
    step: float,
    event_values: Mapping[str, np.ndarray],
    channel_rooms: Mapping[str, str],
    device_rooms: Sequence[str],
    presence_seconds: float,
) -> np.ndarray:
    """bool [N, D]: each device's room occupied (`event_values`: motion/contact channel -> values [N], 1 = event).

    A room without a motion/contact channel uses all of the home's; a home without any is always occupied.
    """
    n = len(times)
    fired = {
        c: np.nan_to_num(np.asarray(v, dtype=np.float64), nan=0.0) >= 0.5 for c, v in event_values.items()
    }
    if not fired:
        return np.ones((n, len(device_rooms)), dtype=bool)
    home = np.logical_or.reduce(list(fired.values()))
    out = np.zeros((n, len(device_rooms)), dtype=bool)
    cache: dict[str, np.ndarray] = {}
    for d, room in enumerate(device_rooms):
        if room not in cache:
            mine = [v for c, v in fired.items() if channel_rooms.get(c) == room]
            ev = np.logical_or.reduce(mine) if mine else home
            cache[room] = presence(times, step, ev, presence_seconds)
        out[:, d] = cache[room]
    return out


def quiet_mask(times: np.ndarray, timezone: str, spans: Sequence[QuietSpan]) -> np.ndarray:
    """bool [N]: row start inside a quiet span, in the home's local wall-clock time (DST exact).

    A span belongs to the weekday it starts on; end before start runs past midnight; end == start = 24 h.
    """
    times = np.asarray(times, dtype=np.float64)
    out = np.zeros(times.size, dtype=bool)
    if not spans or times.size == 0:
        return out
    local = local_seconds(times, load_zone(timezone))
    for sp in spans:
        start = minutes_of(sp.start) * 60.0
        length = ((minutes_of(sp.end) - minutes_of(sp.start)) % 1440 or 1440) * 60.0
        shifted = local - start  # seconds since the span's start on its own day
        day = np.floor(shifted / 86400.0)
        into = shifted - day * 86400.0
        weekday = np.mod(day + 3.0, 7.0).astype(np.int64)  # 1970-01-01 was a Thursday (Monday = 0)
        days = np.array([d in sp.days for d in WEEKDAYS], dtype=bool)
        out |= (into < length) & days[weekday]
    return out


def switch_mask(times: np.ndarray, step: float, flips: Sequence[tuple[float, bool]]) -> np.ndarray:
    """bool [N]: a switch (sorted (ts, on) flips, off before the first) was on at any time during the row."""
    times = np.asarray(times, dtype=np.float64)
    out = np.zeros(times.size, dtype=bool)
    if not flips or times.size == 0:
        return out
    ts = np.array([f[0] for f in flips], dtype=np.float64)
    on = np.array([bool(f[1]) for f in flips], dtype=bool)
    at_start = np.searchsorted(ts, times, side="right") - 1  # flip in effect at the row's start
    out |= (at_start >= 0) & on[np.maximum(at_start, 0)]
    ends = row_ends(times, step)
    for t in ts[on]:  # switched on during a row
        i0 = int(np.searchsorted(ends, t, side="right"))
        if i0 < times.size and times[i0] <= t:
            out[i0] = True
    return out


# ---- suggest mode: a person's answer to a suggestion is a label (edge_agent.suggest) --------------------
class SuggestionOutcome(NamedTuple):
    """One row of `suggestions` (per device)."""

    created: float  # when it was suggested: the model's window ended then
    value: float  # what was suggested
    basis: float | None  # the device's state then
    outcome: str  # accepted | rejected | ignored | stale


def suggestion_labels(
    times: np.ndarray, step: float, outcomes: Sequence[Sequence[SuggestionOutcome]], lead_seconds: float
) -> np.ndarray:
    """float32 [N, D]: like rule a, the rows whose data ends in (created - lead, created] of each answered
    suggestion get what the person chose: the suggested value when accepted, the state they kept (the basis)
    when rejected. Ignored and stale suggestions say nothing about the person: no label. NaN elsewhere."""
    times = np.asarray(times, dtype=np.float64)
    ends = row_ends(times, step)
    out = np.full((times.size, len(outcomes)), np.nan, dtype=np.float32)
    for d, rows in enumerate(outcomes):
        for s in rows:
            label = s.value if s.outcome == "accepted" else s.basis if s.outcome == "rejected" else None
            if label is None:
                continue
            i0 = int(np.searchsorted(ends, s.created - lead_seconds, side="right"))
            i1 = int(np.searchsorted(ends, s.created, side="right"))
            out[i0:i1, d] = label
    return out
