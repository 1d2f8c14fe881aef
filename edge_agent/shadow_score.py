"""The shadow comparison: each shadow-mode decision set beside what the person then did (pure).

In `shadow` the model decides and nothing is sent, so the home shows what the person wants without the agent's
influence. Two questions per device, both over what the log holds:

* **Precision of would-be commands.** A run of shadow decisions that would have commanded the same target
  (policy reason 'change', nothing sent) is one *would-command*, started at its first decision. It is
  *confirmed* when the device's next change within `horizon_s` is the person's, to that target; *contradicted*
  when the next change is the person's, to another value; *unanswered* when nothing changed within the horizon
  (the person did not want it). A next change by anyone else (an automation, a change with learning paused) is
  not scored.
* **Recall of the person's changes.** A person's change (learning not paused) is *anticipated* when the
  device's latest decision within `horizon_s` before it was a shadow decision for that value, *missed* when
  it was a shadow decision for another value; a change with no shadow decision before it is not scored.

Values agree within `tolerance[device]` (binary and level: exact, setpoints: half a setpoint step). The
figures go on the stats topic (`shadow_score`), into `edge-agent shadow-score`, and tell a person whether a
device is ready to leave shadow; they are not labels themselves (the labels of the same log are
`edge_agent.labels`' rules a and b).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

WOULD_COMMAND = "change"  # the policy's reason when it would send (edge_agent.policy.PolicyResult)
SHADOW = "shadow"
EXACT = 1e-6  # binary and level values agree exactly


class ShadowDecision(NamedTuple):
    """One row of `decisions` (any mode, so the latest decision before a change is known)."""

    ts: float
    device: str
    target: float
    mode: str
    reason: str


class StateChange(NamedTuple):
    """One row of `device_changes`."""

    ts: float
    device: str
    value: float
    source: str
    learning_paused: bool


@dataclass(frozen=True, slots=True)
class DeviceShadowScore:
    device: str
    would_commands: int = 0
    confirmed: int = 0
    contradicted: int = 0
    unanswered: int = 0
    person_changes: int = 0  # scored ones: a shadow decision came before
    anticipated: int = 0

    @property
    def precision(self) -> float | None:
        scored = self.confirmed + self.contradicted + self.unanswered
        return self.confirmed / scored if scored else None

    @property
    def recall(self) -> float | None:
        return self.anticipated / self.person_changes if self.person_changes else None

    def as_dict(self) -> dict[str, object]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 4)

        return {
            "would_commands": self.would_commands,
            "confirmed": self.confirmed,
            "contradicted": self.contradicted,
            "unanswered": self.unanswered,
            "person_changes": self.person_changes,
            "anticipated": self.anticipated,
            "precision": r(self.precision),
            "recall": r(self.recall),
        }


def _would_commands(decisions: list[ShadowDecision], changes: list[StateChange]) -> list[tuple[float, float]]:
    """(start ts, target) of each run of shadow decisions wanting the same target with no change of the
    device in between (after a change the policy compares with the new state: a new want), in order."""
    runs: list[tuple[float, float]] = []
    open_target: float | None = None
    ci = 0
    for d in decisions:
        while ci < len(changes) and changes[ci].ts <= d.ts:
            ci += 1
            open_target = None
        if d.mode == SHADOW and d.reason == WOULD_COMMAND:
            if open_target is None or abs(d.target - open_target) > EXACT:
                runs.append((d.ts, d.target))
                open_target = d.target
        else:
            open_target = None  # the model stopped wanting it (or left shadow): a later want is a new run
    return runs


def _score_device(
    device: str,
    decisions: list[ShadowDecision],
    changes: list[StateChange],
    horizon_s: float,
    tol: float,
) -> DeviceShadowScore:
    confirmed = contradicted = unanswered = 0
    runs = _would_commands(decisions, changes)
    ci = 0
    for start, target in runs:
        while ci < len(changes) and changes[ci].ts <= start:
            ci += 1
        nxt = changes[ci] if ci < len(changes) else None
        if nxt is None or nxt.ts > start + horizon_s:
            unanswered += 1
        elif nxt.source != "person" or nxt.learning_paused:
            continue  # someone else acted first: says nothing about the person
        elif abs(nxt.value - target) <= tol:
            confirmed += 1
        else:
            contradicted += 1
    person = anticipated = 0
    di = 0
    for c in changes:
        if c.source != "person" or c.learning_paused:
            continue
        while di < len(decisions) and decisions[di].ts < c.ts:
            di += 1
        last = decisions[di - 1] if di else None
        if last is None or last.mode != SHADOW or last.ts < c.ts - horizon_s:
            continue
        person += 1
        if abs(last.target - c.value) <= tol:
            anticipated += 1
    return DeviceShadowScore(
        device,
        would_commands=len(runs),
        confirmed=confirmed,
        contradicted=contradicted,
        unanswered=unanswered,
        person_changes=person,
        anticipated=anticipated,
    )


def score_shadow(
    decisions: Iterable[ShadowDecision],
    changes: Iterable[StateChange],
    *,
    horizon_s: float,
    tolerance: Mapping[str, float] | None = None,
) -> dict[str, DeviceShadowScore]:
    """Per device with at least one shadow decision: its shadow score (see the module docstring).

    Rows may come in any order; `tolerance` maps device -> agreement tolerance (missing: exact)."""
    by_dev: dict[str, list[ShadowDecision]] = {}
    for d in decisions:
        by_dev.setdefault(d.device, []).append(d)
    ch_dev: dict[str, list[StateChange]] = {}
    for c in changes:
        ch_dev.setdefault(c.device, []).append(c)
    tol = tolerance or {}
    out: dict[str, DeviceShadowScore] = {}
    for dev, rows in sorted(by_dev.items()):
        if not any(r.mode == SHADOW for r in rows):
            continue
        rows.sort(key=lambda r: r.ts)
        chs = sorted(ch_dev.get(dev, []), key=lambda c: c.ts)
        out[dev] = _score_device(dev, rows, chs, horizon_s, max(tol.get(dev, EXACT), EXACT))
    return out
