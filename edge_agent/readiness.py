"""Per-device readiness: which modes a device may enter with the bundle in service, and why (pure).

A bundle trained on this home's log carries, per device d, `label_events.<d>` (the person's changes it
learned from) and `holdout_agreement.<d>` (its agreement with the person on the most recent held-out days)
in its manifest metrics. Those decide the highest mode the device may run in, by `learning.readiness`:
observe (too few labels) -> shadow -> suggest -> auto. A device the bundle does not decide stays in observe.
A bundle trained elsewhere (no such figures: the demo's, one imported by hand) is not capped: the person
chose it. The effective mode is the more restrictive of this cap and the configured mode.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.learning_config import ReadinessSettings
from edge_agent.manifest import Manifest


@dataclass(frozen=True, slots=True)
class Readiness:
    max_mode: str  # observe | shadow | suggest | auto
    reason: str
    label_events: int | None = None
    agreement: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "max_mode": self.max_mode,
            "reason": self.reason,
            "label_events": self.label_events,
            "agreement": self.agreement,
        }


def device_readiness(device: str, manifest: Manifest | None, s: ReadinessSettings) -> Readiness:
    if manifest is None:
        return Readiness("observe", "no model yet: observing (train one with `edge-agent train`)")
    if device not in {d.name for d in manifest.devices}:
        return Readiness("observe", f"model {manifest.version} does not decide this device (too few labels?)")
    m = manifest.metrics
    n_raw = m.get(f"label_events.{device}")
    if n_raw is None:
        return Readiness("auto", f"model {manifest.version} was not trained on this home's log: not capped")
    n = int(n_raw)
    a = m.get(f"holdout_agreement.{device}")
    shown = "no held-out agreement" if a is None else f"held-out agreement {a:.1%}"
    if n < s.shadow_min_labels:
        return Readiness("observe", f"{n} labelled events, need {s.shadow_min_labels} for shadow", n, a)
    if n < s.suggest_min_labels or a is None or a < s.suggest_min_agreement:
        return Readiness(
            "shadow",
            f"{n} labelled events ({s.suggest_min_labels} needed), {shown} "
            f"({s.suggest_min_agreement:.0%} needed) for suggest",
            n,
            a,
        )
    if n < s.auto_min_labels or a < s.auto_min_agreement:
        return Readiness(
            "suggest",
            f"{n} labelled events ({s.auto_min_labels} needed), {shown} ({s.auto_min_agreement:.0%} needed) "
            "for auto",
            n,
            a,
        )
    return Readiness("auto", f"ready: {n} labelled events, {shown}", n, a)
