"""The champion/challenger gate: promote a retrained model only when it agrees better with the person.

Pure: plain metric dicts in, a `Verdict` (promote or keep, and why) out. Both models are scored on the same
time-ordered held-out days of the challenger's training run (the most recent days, never trained on):
the challenger's manifest carries its own `holdout_agreement.<d>` / `holdout_labels.<d>` and, computed in the
same training child on the same rows, the champion's `champion_holdout_agreement.<d>` /
`champion_holdout_labels.<d>` (training.champion). Agreement = share of labelled held-out rows where the
decision equals the person's actual choice.

Rule: overall agreement (label-weighted over the devices both decide, each with at least
`min_device_labels` held-out labels) must beat the champion's by at least `margin`, and no such device may be
worse than the champion's by more than `tolerance`. A device the champion decides and the challenger
does not is a regression (keep); a device only the challenger decides is new (reported, not scored). No
champion in service -> promote. Champion not scored on the held-out days -> keep (say how to replace it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

AGREEMENT = "holdout_agreement."
LABELS = "holdout_labels."
CHAMPION = "champion_"
EVALUATED = "champion_evaluated"


@dataclass(frozen=True)
class GateSettings:
    margin: float = 0.005  # overall agreement the challenger must gain
    tolerance: float = 0.01  # agreement any one device may lose
    min_device_labels: int = 10  # held-out labels a device needs to be scored


@dataclass(frozen=True)
class DeviceScore:
    device: str
    champion: float | None
    challenger: float | None
    labels: int  # held-out labelled rows (the challenger's count; both are scored on the same rows)

    @property
    def delta(self) -> float | None:
        if self.champion is None or self.challenger is None:
            return None
        return self.challenger - self.champion


@dataclass(frozen=True)
class Verdict:
    promote: bool
    reason: str  # one short line
    champion_overall: float | None = None
    challenger_overall: float | None = None
    devices: tuple[DeviceScore, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, object]:
        return {
            "promote": self.promote,
            "reason": self.reason,
            "champion_overall": self.champion_overall,
            "challenger_overall": self.challenger_overall,
            "devices": {
                d.device: {"champion": d.champion, "challenger": d.challenger, "labels": d.labels}
                for d in self.devices
            },
        }


def scores(metrics: Mapping[str, float], prefix: str = "") -> dict[str, tuple[float, int]]:
    """device -> (held-out agreement, held-out labels) from flat manifest metrics (keys `prefix` + ...)."""
    out: dict[str, tuple[float, int]] = {}
    a, n = prefix + AGREEMENT, prefix + LABELS
    for key, value in metrics.items():
        if key.startswith(a):
            dev = key[len(a) :]
            out[dev] = (float(value), int(metrics.get(n + dev, 0)))
    return out


def _overall(pairs: list[tuple[float, int]]) -> float | None:
    total = sum(n for _, n in pairs)
    return None if total == 0 else sum(a * n for a, n in pairs) / total


def judge(challenger_metrics: Mapping[str, float], *, has_champion: bool, settings: GateSettings) -> Verdict:
    """Promote or keep the challenger whose manifest metrics are `challenger_metrics` (module docstring)."""
    chal = scores(challenger_metrics)
    if not has_champion:
        return Verdict(True, "no model in service: the first model is promoted")
    if not chal:
        return Verdict(False, "the challenger has no held-out agreement (no labelled held-out rows)")
    if challenger_metrics.get(EVALUATED, 0.0) != 1.0:
        return Verdict(
            False,
            "the champion could not be scored on the new held-out days; "
            "`edge-agent train` replaces it without the gate",
        )
    champ = scores(challenger_metrics, CHAMPION)
    rows: list[DeviceScore] = []
    for dev in sorted(set(chal) | set(champ)):
        c, h = champ.get(dev), chal.get(dev)
        labels = h[1] if h is not None else (c[1] if c is not None else 0)
        rows.append(DeviceScore(dev, None if c is None else c[0], None if h is None else h[0], labels))
    scored = [r for r in rows if r.delta is not None and r.labels >= settings.min_device_labels]
    lost = [r.device for r in rows if r.champion is not None and r.challenger is None]
    new = [r.device for r in rows if r.champion is None and r.challenger is not None]
    ch = _overall([(r.champion, r.labels) for r in scored if r.champion is not None])
    cl = _overall([(r.challenger, r.labels) for r in scored if r.challenger is not None])
    devices = tuple(rows)

    def verdict(promote: bool, reason: str) -> Verdict:
        return Verdict(promote, reason, ch, cl, devices)

    if lost:
        return verdict(False, f"the challenger does not decide {', '.join(lost)} (too few labels)")
    if ch is None or cl is None:
        if new:
            return verdict(True, f"the challenger also decides {', '.join(new)}; no device to compare")
        return verdict(False, f"no device has {settings.min_device_labels} held-out labels to compare on")
    worse = [r for r in scored if r.delta is not None and r.delta < -settings.tolerance]
    if worse:
        w = min(worse, key=lambda r: r.delta or 0.0)
        return verdict(
            False,
            f"{w.device} worse: {w.challenger:.3f} vs {w.champion:.3f} "
            f"(tolerance {settings.tolerance:.3f}); overall {cl:.3f} vs {ch:.3f}",
        )
    gain = cl - ch
    if gain <= 0 or gain < settings.margin:
        return verdict(
            False, f"not better by the margin: overall {cl:.3f} vs {ch:.3f} (margin {settings.margin:.3f})"
        )
    extra = f"; also decides {', '.join(new)}" if new else ""
    return verdict(True, f"better: overall {cl:.3f} vs {ch:.3f} (+{gain:.3f}), no device worse{extra}")
