"""The `learning:` section of the config: who else changes devices, when changes are not labels, readiness.

A model must learn the person, not another automation and not a party: `automations` names the other
sources that switch devices (a thermostat's own schedule, a Home Assistant automation), `quiet_spans` the
hours whose changes are never labels, and `readiness` the thresholds a device must meet before it may leave
`observe`. `train` bounds the training subprocess (time, memory, held-out days); `retrain` schedules the
nightly retrain and sets its champion/challenger gate (edge_agent.retrain, edge_agent.promotion);
`shadow_score` sets shadow decisions beside what the person then did (edge_agent.shadow_score).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def minutes_of(hhmm: str) -> int:
    """'06:30' -> 390 (ValueError with the fix otherwise)."""
    m = _HHMM.fullmatch(hhmm.strip())
    if m is None:
        raise ValueError(f"{hhmm!r} is not a time of day; write HH:MM, e.g. '06:30'")
    return int(m.group(1)) * 60 + int(m.group(2))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AutomationSource(_Strict):
    name: str = Field(description="A name for the other automation, e.g. 'thermostat schedule'")
    devices: list[str] = Field(min_length=1, description="Devices it switches (names from `devices`)")
    topic: str | None = Field(
        default=None,
        description="A topic it publishes on when it acts (e.g. an HA automation's 'script/fired'): a change "
        "of one of its devices within window_seconds after a message there is the automation's",
    )
    at: list[str] = Field(
        default_factory=list,
        description="Local times it acts at ('06:30'): a change within window_seconds of one is the automation's",
    )
    always: bool = Field(
        default=False, description="Every change of its devices that is not the agent's is the automation's"
    )
    window_seconds: float = Field(default=120.0, gt=0, description="How close a change must be to count")

    @field_validator("at")
    @classmethod
    def _times(cls, v: list[str]) -> list[str]:
        for t in v:
            minutes_of(t)
        return v

    @model_validator(mode="after")
    def _some_rule(self) -> AutomationSource:
        if self.topic is None and not self.at and not self.always:
            raise ValueError(
                f"automation {self.name!r} needs a way to tell its changes: set topic, at, or always: true"
            )
        return self


class QuietSpan(_Strict):
    start: str = Field(description="Local start time, HH:MM")
    end: str = Field(description="Local end time, HH:MM (before start = the span runs past midnight)")
    days: list[Weekday] = Field(
        default_factory=lambda: list(WEEKDAYS), description="Weekdays the span starts on (mon..sun)"
    )

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        minutes_of(v)
        return v


class ReadinessSettings(_Strict):
    shadow_min_labels: int = Field(default=10, ge=0, description="Labelled events before `shadow`")
    suggest_min_labels: int = Field(default=30, ge=0, description="Labelled events before `suggest`")
    suggest_min_agreement: float = Field(
        default=0.85, ge=0, le=1, description="Held-out agreement with the person before `suggest`"
    )
    auto_min_labels: int = Field(default=50, ge=0, description="Labelled events before `auto`")
    auto_min_agreement: float = Field(
        default=0.93, ge=0, le=1, description="Held-out agreement with the person before `auto`"
    )


class TrainJobSettings(_Strict):
    budget_seconds: float = Field(default=600.0, gt=0, description="Wall-clock limit of one training run")
    memory_mb: int = Field(default=1024, ge=256, description="Address-space limit of the training process")
    holdout_days: float = Field(default=2.0, gt=0, description="The most recent days kept out for evaluation")
    history_days: float = Field(default=30.0, gt=0, description="Days of the log a training run reads")
    epochs: int = Field(default=12, ge=1, description="Most passes over the training windows")
    step_seconds: float = Field(default=60.0, ge=1, description="Time step of the training grid")
    window: int = Field(default=64, ge=8, description="Steps per model window (multiple of 8)")
    keep_versions: int = Field(default=5, ge=1, description="Bundle versions kept in the store")

    @field_validator("window")
    @classmethod
    def _multiple_of_8(cls, v: int) -> int:
        if v % 8:
            raise ValueError(f"{v} is not a multiple of 8; use e.g. 64")
        return v


class RetrainSettings(_Strict):
    enabled: bool = Field(default=True, description="Retrain on the schedule (on demand works either way)")
    cron: str = Field(
        default="30 3 * * *",
        description="When to retrain: a crontab expression 'minute hour day month weekday' in the home's "
        "`timezone` (default 03:30 every night)",
    )
    misfire_grace_seconds: float = Field(
        default=6 * 3600.0,
        gt=0,
        description="A run missed (hub off or busy at the scheduled time) still runs if this late at most",
    )
    coalesce: bool = Field(default=True, description="Several missed runs fold into one")
    max_instances: Literal[1] = Field(default=1, description="Never two retrains at once (fixed at 1)")
    min_new_labels: int = Field(
        default=5,
        ge=0,
        description="Skip the retrain (reason recorded) with fewer of the person's changes since the end of "
        "the data the model in service was trained on",
    )
    margin: float = Field(
        default=0.005,
        ge=0,
        le=1,
        description="Overall held-out agreement the challenger must gain to be promoted",
    )
    tolerance: float = Field(
        default=0.01, ge=0, le=1, description="Held-out agreement any one device may lose in a promotion"
    )
    min_device_labels: int = Field(
        default=10, ge=1, description="Held-out labelled rows a device needs to count in the comparison"
    )
    half_life_days: float | None = Field(
        default=14.0,
        gt=0,
        description="Recency of the labels a training run learns from: a preference this many days older "
        "counts half as much (a change of habit wins over old history); null = all days alike",
    )

    @field_validator("cron")
    @classmethod
    def _crontab(cls, v: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(v, timezone="UTC")
        except ValueError as e:
            raise ValueError(
                f"{v!r} is not a crontab expression ({e}); e.g. '30 3 * * *' for 03:30"
            ) from None
        return v


class ShadowScoreSettings(_Strict):
    horizon_seconds: float = Field(
        default=900.0,
        gt=0,
        description="A shadow decision is compared with the person's next change within this long (and a "
        "person's change with the shadow decision this long before it)",
    )
    days: float = Field(default=7.0, gt=0, description="Days of the log the shadow score covers")
    interval_seconds: float = Field(
        default=900.0, ge=60, description="How often the running agent recomputes it for the stats topic"
    )


class LearningSettings(_Strict):
    automations: list[AutomationSource] = Field(
        default_factory=list,
        description="Other automations that switch devices: their changes are not labels",
    )
    quiet_spans: list[QuietSpan] = Field(
        default_factory=list, description="Local time spans whose device changes are never labels"
    )
    label_lead_seconds: float = Field(
        default=180.0,
        ge=0,
        description="Before a person's change, this long is labelled with the new value (they wanted it, "
        "then acted): the model's window ends before the change",
    )
    presence_seconds: float = Field(
        default=900.0,
        gt=0,
        description="A room counts as occupied this long after its last motion/occupancy/contact event "
        "(unchanged states are labels only while occupied)",
    )
    recording_step_seconds: float = Field(
        default=60.0, ge=1, description="Step of the recorded readings when no model is loaded"
    )
    readiness: ReadinessSettings = Field(default_factory=ReadinessSettings, description="Mode thresholds")
    train: TrainJobSettings = Field(default_factory=TrainJobSettings, description="The training subprocess")
    retrain: RetrainSettings = Field(
        default_factory=RetrainSettings, description="Nightly retrain: schedule and champion/challenger gate"
    )
    shadow_score: ShadowScoreSettings = Field(
        default_factory=ShadowScoreSettings,
        description="Shadow decisions set beside what the person then did (edge-agent shadow-score)",
    )
