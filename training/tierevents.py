"""Every tier's answer to the event that triggered it: the event test of the tier ladder.

A cheaper tier may be somewhat less accurate on slow decisions; it must never ignore the event that triggered
a decision nor answer it wrongly (a light switched on when motion stops). Window accuracy cannot show that, so
each tier is pinned in turn and drives the simulated home in closed loop through the runtime's own
`Controller` (`training.closedloop`); at every event-triggered decision (a motion or contact change) the full
tier is run on the very same window, and per device the tier's target is compared with the full tier's,
both with the device's hysteresis relative to the state in effect just before the event (setpoints agree
within one rounding step, `setpoint_step`)
(`edge_agent.policy.target_value`). A (decision, device) pair is *relevant* when the event mattered to it:
the full tier's or this tier's answer on the same window with the triggering channels as they were before
the event (the counterfactual) differs from the answer with it; the slow drift of a setpoint decided at an
event's moment is not an answer to the event.
On the relevant pairs:

* `full_commands`: the full tier would command a change here;
* `missed`: the full tier commands, this tier does not follow (no command, or another value);
* `wrong`: this tier commands where the full tier does not (e.g. ON when motion stops);
* `agreement_relevant`: the fraction whose targets agree (setpoints within
  `training.decisions.SETPOINT_AGREE`); `agreement` is the same over every pair.

A tier passes with `agreement_relevant >= EVENT_MIN_AGREEMENT` and `missed + wrong <= EVENT_MAX_BAD_FRACTION` of the
full tier's event commands. `mark_ladder` writes the result into the manifest (`TierSpec.event_check`,
`offered`): the runtime's ladder (`Manifest.ladder`) skips a tier that failed. The full tier is the
reference (it always passes against itself; its own accuracy is the closed-loop agreement's business).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.controller import Controller
from edge_agent.effects import Effects
from edge_agent.manifest import EventCheck, Manifest, read_manifest, write_manifest
from edge_agent.policy import target_value
from edge_agent.tiering import run_tier, select_channels
from training.closedloop import closed_loop
from training.decisions import SETPOINT_AGREE

logger = logging.getLogger(__name__)

EVENT_MIN_AGREEMENT = 0.99  # of event-triggered (decision, device) pairs agreeing with the full tier
EVENT_MAX_BAD_FRACTION = 0.01  # missed + wrong, as a fraction of the full tier's event commands
EVENT_HOURS = 24.0  # closed-loop hours per tier and start
EVENT_STARTS = ("2023-01-16T06:00", "2023-06-19T06:00")  # a winter and a summer day (the demo's seasons)
EVENT_SEED = 101  # the demo closed loop's household (not the training history's)


@dataclass
class Tally:
    """Counts of one tier over its closed loops, in total and per device."""

    decisions: int = 0
    relevant: int = 0
    full_commands: int = 0
    missed: int = 0
    wrong: int = 0
    agreed: int = 0
    agreed_relevant: int = 0
    per_device: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(
        self, device: str, *, relevant: bool, ref_change: bool, missed: bool, wrong: bool, agreed: bool
    ) -> None:
        d = self.per_device.setdefault(
            device, {"decisions": 0, "relevant": 0, "full_commands": 0, "missed": 0, "wrong": 0, "agreed": 0}
        )
        self.decisions += 1
        d["decisions"] += 1
        self.relevant += relevant
        d["relevant"] += relevant
        self.agreed_relevant += relevant and agreed
        d["agreed"] += agreed
        self.full_commands += ref_change
        d["full_commands"] += ref_change
        self.missed += missed
        d["missed"] += missed
        self.wrong += wrong
        d["wrong"] += wrong
        self.agreed += agreed

    @property
    def agreement(self) -> float:
        return self.agreed / self.decisions if self.decisions else 1.0

    @property
    def agreement_relevant(self) -> float:
        return self.agreed_relevant / self.relevant if self.relevant else 1.0

    def passed(self) -> bool:
        bad_ok = self.missed + self.wrong <= EVENT_MAX_BAD_FRACTION * self.full_commands
        return self.agreement_relevant >= EVENT_MIN_AGREEMENT and bad_ok

    def check(self) -> EventCheck:
        return EventCheck(
            decisions=self.decisions,
            relevant=self.relevant,
            full_commands=self.full_commands,
            missed=self.missed,
            wrong=self.wrong,
            agreement=round(self.agreement, 5),
            agreement_relevant=round(self.agreement_relevant, 5),
            passed=self.passed(),
        )

    def as_dict(self) -> dict[str, Any]:
        return self.check().model_dump() | {"devices": self.per_device}


def _same(kind: str, a: float | None, b: float | None, step: float = 0.0) -> bool:
    """Equal targets; setpoints within one rounding step (`setpoint_step`, at least SETPOINT_AGREE)."""
    if a is None or b is None:
        return a is b
    if kind == "setpoint":
        return abs(a - b) <= max(SETPOINT_AGREE, step) + 1e-9
    return a == b


def _changes(kind: str, target: float, current: float | None) -> bool:
    """Would `target` be a command from `current`? (the policy's no-change rule)"""
    return current is None or not (abs(target - current) < 1e-9 if kind == "setpoint" else target == current)


class EventWatch:
    """The closed loop's watch (`training.closedloop.Watch`): tallies one tier's event decisions vs full."""

    def __init__(self, man: Manifest, tier: str) -> None:
        self.man = man
        self.tier = man.tier(tier)
        self.tally = Tally()

    def before(self, ctrl: Controller, now: float) -> tuple[dict[str, float | None], np.ndarray, np.ndarray]:
        """The state in effect per device and the window just before the batch."""
        state = {
            d.name: d.tracker.reported if d.tracker.reported is not None else d.last_target
            for d in ctrl.devices
        }
        x, mask = ctrl.window.snapshot(now)
        return state, x[: ctrl.n_model], mask[: ctrl.n_model]

    def after(self, ctrl: Controller, fx: Effects, before: object, now: float) -> None:
        events = [d for d in fx.decisions if d.trigger.startswith("event:")]
        if not events or ctrl.bundle is None or ctrl.focus is None:
            return
        state, xb, mb = before  # type: ignore[misc]
        n = ctrl.n_model
        xa, ma = (a[:n] for a in ctrl.window.snapshot(now))  # the window the tier decided on
        every = np.arange(n, dtype=np.int64)
        full_a = ctrl.bundle.run("full", xa, ma, every).devices  # the reference, on the same window
        names = events[0].trigger.removeprefix("event:").split(",")
        triggered = [ctrl.index[c] for c in names if c in ctrl.index]
        xc, mc = xa.copy(), ma.copy()  # the counterfactual: the same window without the event's change
        xc[triggered], mc[triggered] = xb[triggered], mb[triggered]
        full_b = ctrl.bundle.run("full", xc, mc, every).devices
        ids = select_channels(self.tier, n, ctrl.focus, triggered)
        own_b = run_tier(ctrl.bundle, self.tier, xc, mc, ids).devices  # this tier without the event
        by_name = {d.name: d for d in ctrl.devices}
        for dec in events:
            dev = by_name[dec.device]
            assert dev.index is not None
            spec, k = self.man.devices[dev.index], dev.index
            dcfg = ctrl.cfg.devices[dev.cfg_index]
            current = state[dec.device]
            ref = target_value(spec, dcfg, float(full_a[k]), current)
            ref_b = target_value(spec, dcfg, float(full_b[k]), current)
            own_before = target_value(spec, dcfg, float(own_b[k]), current)
            step = dcfg.setpoint_step
            agreed = _same(spec.kind, dec.value, ref, step)
            # the event mattered to this device: it changed the full tier's answer or this tier's
            relevant = not _same(spec.kind, ref, ref_b) or not _same(spec.kind, dec.value, own_before)
            ref_change = _changes(spec.kind, ref, current)
            own_change = _changes(spec.kind, dec.value, current)
            self.tally.add(
                dec.device,
                relevant=relevant,
                ref_change=relevant and ref_change,
                missed=relevant and ref_change and not agreed,
                wrong=relevant and own_change and not ref_change and not agreed,
                agreed=agreed,
            )


def tier_event_response(
    bundle: Path,
    man: Manifest,
    tier: str,
    *,
    hours: float = EVENT_HOURS,
    starts: tuple[str, ...] = EVENT_STARTS,
    seed: int = EVENT_SEED,
) -> Tally:
    """`tier` pinned in closed loop for `hours` from each of `starts`: its event decisions vs the full tier's."""
    watch = EventWatch(man, tier)
    for start in starts:
        closed_loop(bundle, man, tier, hours=hours, seed=seed, start=start, watch=(watch.before, watch.after))
    return watch.tally


def event_report(
    bundle: Path,
    man: Manifest | None = None,
    *,
    hours: float = EVENT_HOURS,
    starts: tuple[str, ...] = EVENT_STARTS,
) -> dict[str, dict[str, Any]]:
    """Per tier of the bundle: its event response (`Tally.as_dict`)."""
    man = man or read_manifest(bundle)
    out = {}
    for t in man.tiers:
        tally = tier_event_response(bundle, man, t.name, hours=hours, starts=starts)
        out[t.name] = tally.as_dict()
        logger.info(
            "event test %s: %d event decisions, full commands %d, missed %d, wrong %d, agreement %.4f -> %s",
            t.name,
            tally.decisions,
            tally.full_commands,
            tally.missed,
            tally.wrong,
            tally.agreement,
            "passed" if tally.passed() else "FAILED (not offered)",
        )
    return out


def mark_ladder(bundle: Path, report: dict[str, dict[str, Any]]) -> Manifest:
    """Record each tier's event check in the bundle's manifest; a tier that failed is not offered."""
    man = read_manifest(bundle)
    tiers = []
    for i, t in enumerate(man.tiers):
        r = report.get(t.name)
        if r is None:
            tiers.append(t)
            continue
        check = EventCheck.model_validate({k: v for k, v in r.items() if k != "devices"})
        offered = (check.passed and not t.unpaid_int8) or i == 0  # the reference tier stays
        tiers.append(t.model_copy(update={"event_check": check, "offered": offered}))
    man = man.model_copy(update={"tiers": tiers})
    write_manifest(bundle, man)
    return man


def summary(report: dict[str, dict[str, Any]]) -> str:
    parts = []
    for name, r in report.items():
        agree = r["agreement"] * 100 if math.isfinite(r["agreement"]) else float("nan")
        verdict = "ok" if r["passed"] else "FAIL"
        parts.append(f"{name} {r['missed']}/{r['wrong']} of {r['full_commands']} ({agree:.2f}%) {verdict}")
    return "event test (missed/wrong of full's commands, agreement): " + "; ".join(parts)


def simhome_report(bundle: Path, man: Manifest) -> dict[str, dict[str, Any]] | None:
    """`event_report` for a bundle over the simulated home's channels and devices (the demo's); None for
    any other bundle (a real home's log has no simulator to close the loop with)."""
    from simhome.layout import CHANNELS, DEVICES

    sim_channels, sim_devices = {c.name for c in CHANNELS}, {d.name for d in DEVICES}
    fits = {c.name for c in man.channels if c.kind != "calendar"} <= sim_channels and {
        d.name for d in man.devices
    } <= sim_devices
    return event_report(bundle, man) if fits else None
