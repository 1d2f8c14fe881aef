"""What a device's state report means, once the tracker has classified it (pure): who changed it, whether it
is a label, and the records that say so.

Every change but a repeat is a `DeviceChangeRecord` attributed to the agent (echo), the initial report, a
person, or another automation (`edge_agent.attribution`); it may be a label unless learning is paused. A
change that is not the agent's holds the device (the agent fights neither a person nor another automation);
a person's is also an `OverrideRecord` (the preference, with what the agent had decided) and is counted as a
label collected. The caller appends the durable hold record right after these.
"""

from __future__ import annotations

import logging

from edge_agent.attribution import PERSON, Attributor
from edge_agent.devices import DeviceRuntime, StateEvent
from edge_agent.effects import DeviceChangeRecord, OverrideRecord, Record
from edge_agent.ingest import LogLimiter
from edge_agent.switches import PauseSwitches

logger = logging.getLogger(__name__)


class DeviceReports:
    def __init__(
        self, attributor: Attributor, switches: PauseSwitches, labels_collected: dict[str, int]
    ) -> None:
        self.attributor = attributor
        self.switches = switches
        self.labels_collected = labels_collected
        self._limiter = LogLimiter(60.0)

    def records(
        self, dev: DeviceRuntime, ev: StateEvent, now: float, hold_seconds: float, version: str | None
    ) -> tuple[list[Record], bool]:
        """(records, held): `held` = the device is now held (a person's or an automation's change)."""
        source = {"initial": "initial", "echo": "agent"}.get(ev.kind) or self.attributor.source(dev.name, now)
        paused = self.switches.learning_paused
        out: list[Record] = [DeviceChangeRecord(now, dev.name, ev.value, ev.previous, source, paused)]
        if ev.kind != "override":
            return out, False
        dev.policy.note_change(now)
        if source != PERSON:
            if self._limiter.allow(f"automation:{dev.name}", now):
                logger.info(
                    "%s set to %g by %s; held for %.0fs (not a label)",
                    dev.name,
                    ev.value,
                    source,
                    hold_seconds,
                )
            return out, True
        if not paused:
            self.labels_collected[dev.name] = self.labels_collected.get(dev.name, 0) + 1
        last = dev.last
        if self._limiter.allow(f"override:{dev.name}", now):
            logger.info(
                "override: %s set to %g by a person (agent's value %s); held for %.0fs",
                dev.name,
                ev.value,
                None if last is None else last.value,
                hold_seconds,
            )
        out.append(
            OverrideRecord(
                ts=now,
                device=dev.name,
                value=ev.value,
                previous=ev.previous,
                agent_target=None if last is None else last.value,
                agent_output=None if last is None else last.output,
                decision_ts=None if last is None else last.time,
                model_version=version,
                hold_until=dev.tracker.held_until,
            )
        )
        return out, True
