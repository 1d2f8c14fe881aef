"""Suggest mode: what the agent would do, offered to a person, carried out only if they accept in time (pure).

In `suggest` a decision that would send a command sends none: the controller `offer`s it here. A new
suggestion is published as a Home Assistant event (`edge-agent/<id>/suggest/<device>`, JSON with
`event_type` suggested | accepted | rejected | expired | refused) and its decision payload carries
`"suggested": true` and a short `reason`. A person answers on `edge-agent/<id>/suggest/<device>/accept` or
`.../reject` (any payload; HA buttons send PRESS). An accept is carried out only on a fresh basis:

* the suggestion is not older than `suggest.expiry_seconds`,
* the device has not changed since it was made (a person's or another automation's change),
* and (checked by the controller) no hold, pause control off, the device still in suggest (or auto) mode,
  the rate limit not reached, the broker link up.

Otherwise one line says why and nothing is sent. Every answered or unanswered suggestion is a
`SuggestionRecord` (`suggestions` table): accepted, rejected, ignored (expired unanswered, or replaced by a
newer one), stale (accepted too late or on a changed basis). `edge_agent.labels.suggestion_labels` turns
them into training labels. After a rejection the same value is not offered again for
`suggest.quiet_after_reject_seconds`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from edge_agent.effects import Effects, Publication, Record, dumps
from edge_agent.ha_settings import SuggestSettings

logger = logging.getLogger(__name__)

EVENT_TYPES: tuple[str, ...] = ("suggested", "accepted", "rejected", "expired", "refused")
REASON_CHARS = 160  # a suggestion's reason: short (an entity attribute, one line in a phone notification)


@dataclass(frozen=True, slots=True)
class SuggestionRecord(Record):
    """One suggestion and what became of it: a label when accepted (the value) or rejected (the basis)."""

    TABLE: ClassVar[str] = "suggestions"
    URGENT: ClassVar[bool] = True
    ts: float  # when the outcome happened
    device: str
    created: float  # when the suggestion was made (the model's window ended then)
    value: float  # what the agent suggested
    basis: float | None  # the device's reported state when suggested
    outcome: str  # accepted | rejected | ignored | stale
    reason: str
    model_version: str


@dataclass
class Suggestion:
    device: str
    value: float
    created: float
    basis: float | None
    reason: str
    model_version: str
    changed: bool = False  # the device changed after the suggestion was made


def value_text(kind: str, values: list[Any] | None, unit: str, value: float) -> str:
    """A device value as a person reads it: the payload value (ON, high) or the setpoint with its unit."""
    if kind != "setpoint" and values is not None and 0 <= int(value) < len(values):
        return str(values[int(value)])
    return f"{value:g}{unit}"


def reason_text(target: str, top: list[tuple[str, float]]) -> str:
    """'ON: living.motion 62%, living.illuminance 28%' (at most REASON_CHARS characters)."""
    drivers = ", ".join(f"{c} {w:.0%}" for c, w in top if w >= 0.005)  # no "0%" drivers
    text = f"{target}: {drivers}" if drivers else target
    return text[:REASON_CHARS]


class SuggestionBook:
    """The pending suggestion per device, the recent rejections, and what to publish and record."""

    def __init__(self, settings: SuggestSettings, agent_id: str, devices: list[str]) -> None:
        self.settings = settings
        self.base = f"edge-agent/{agent_id}/suggest"
        self.pending: dict[str, Suggestion] = {}
        self._quiet: dict[str, tuple[float, float]] = {}  # device -> (rejected value, until)
        self.answer_topics: dict[str, tuple[str, str]] = {}
        for d in devices:
            self.answer_topics[f"{self.base}/{d}/accept"] = (d, "accept")
            self.answer_topics[f"{self.base}/{d}/reject"] = (d, "reject")

    def event_topic(self, device: str) -> str:
        return f"{self.base}/{device}"

    def _event(self, fx: Effects, s: Suggestion, event_type: str, **extra: Any) -> None:
        body = {"event_type": event_type, "device": s.device, "value": s.value, "reason": s.reason}
        body.update(created=s.created, model_version=s.model_version, **extra)
        fx.publications.append(Publication(self.event_topic(s.device), dumps(body).encode(), retain=False))

    def _close(self, s: Suggestion, outcome: str, now: float, fx: Effects) -> None:
        self.pending.pop(s.device, None)
        fx.records.append(
            SuggestionRecord(now, s.device, s.created, s.value, s.basis, outcome, s.reason, s.model_version)
        )

    def fresh(self, s: Suggestion, now: float) -> bool:
        return now - s.created <= self.settings.expiry_seconds and not s.changed

    # ---- the controller's side -------------------------------------------------------------------------
    def offer(
        self,
        device: str,
        value: float,
        basis: float | None,
        reason: str,
        version: str,
        now: float,
        fx: Effects,
    ) -> bool:
        """The agent would send `value`: True when it stands as a suggestion (new ones are published), False
        when a person rejected that value too recently to ask again."""
        quiet = self._quiet.get(device)
        if quiet is not None and quiet[0] == value and now < quiet[1]:
            return False
        p = self.pending.get(device)
        if p is not None and p.value == value and self.fresh(p, now):
            return True  # still standing: not published again
        if p is not None:  # replaced by a newer one (another value, or its basis moved): nobody answered it
            self._close(p, "ignored", now, fx)
        s = Suggestion(device, value, now, basis, reason, version)
        self.pending[device] = s
        self._event(fx, s, "suggested")
        logger.info("suggestion for %s: %s (accept on %s/%s/accept)", device, reason, self.base, device)
        return True

    def device_changed(self, device: str) -> None:
        """The device's state changed (not a repeat): a pending suggestion's basis is gone."""
        p = self.pending.get(device)
        if p is not None:
            p.changed = True

    def expire(self, now: float, fx: Effects) -> None:
        """Suggestions nobody answered within the expiry: recorded as ignored, an `expired` event each."""
        for s in [s for s in self.pending.values() if now - s.created > self.settings.expiry_seconds]:
            self._close(s, "ignored", now, fx)
            self._event(fx, s, "expired")

    def reject(self, device: str, now: float, fx: Effects) -> None:
        s = self.pending.get(device)
        if s is None:
            logger.info("suggest: reject for %s, but nothing is suggested for it; ignored", device)
            return
        self._close(s, "rejected", now, fx)
        self._quiet[device] = (s.value, now + self.settings.quiet_after_reject_seconds)
        self._event(fx, s, "rejected")
        logger.info("suggestion for %s rejected: %s", device, s.reason)

    def basis_problem(self, device: str, now: float) -> str | None:
        """Why an accept for `device` cannot be carried out by this book's own checks (None: it can)."""
        s = self.pending.get(device)
        if s is None:
            return "nothing is suggested for it"
        age = now - s.created
        if age > self.settings.expiry_seconds:
            return (
                f"the suggestion is {age:.0f}s old (suggest.expiry_seconds={self.settings.expiry_seconds:g})"
            )
        if s.changed:
            return "the device changed since the suggestion was made"
        return None

    def accepted(self, device: str, now: float, fx: Effects) -> Suggestion:
        s = self.pending[device]
        self._close(s, "accepted", now, fx)
        self._event(fx, s, "accepted")
        return s

    def refused(self, device: str, why: str, now: float, fx: Effects) -> None:
        """An accept that cannot be carried out: one line, the suggestion closed as stale, nothing sent."""
        logger.warning("suggest: accept for %s not carried out: %s; nothing sent", device, why)
        s = self.pending.get(device)
        if s is not None:
            self._close(s, "stale", now, fx)
            self._event(fx, s, "refused", why=why)


def accept_problem(
    *, held_for: float, mode: str, paused: bool, sent_last_hour: int, max_per_hour: int, link_up: bool
) -> str | None:
    """Why the controller must not carry out an accept now (None: it may), besides the book's own checks."""
    if held_for > 0:
        return f"a person's change holds the device for another {held_for:.0f}s"
    if mode not in ("suggest", "auto"):
        return f"the device is in {mode} mode now"
    if paused:
        return "pause control is on"
    if sent_last_hour >= max_per_hour:
        return f"{max_per_hour} commands in the last hour (max_commands_per_hour)"
    if not link_up:
        return "the broker link is down"
    return None
