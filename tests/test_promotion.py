"""The champion/challenger gate (edge_agent.promotion), pure: metric dicts in, a verdict and its reason out."""

from __future__ import annotations

from edge_agent.promotion import GateSettings, judge, scores

S = GateSettings(margin=0.01, tolerance=0.02, min_device_labels=10)


def metrics(
    chal: dict[str, tuple[float, int]], champ: dict[str, tuple[float, int]] | None
) -> dict[str, float]:
    m: dict[str, float] = {}
    for d, (a, n) in chal.items():
        m[f"holdout_agreement.{d}"], m[f"holdout_labels.{d}"] = a, n
    if champ is not None:
        m["champion_evaluated"] = 1.0
        for d, (a, n) in champ.items():
            m[f"champion_holdout_agreement.{d}"], m[f"champion_holdout_labels.{d}"] = a, n
    return m


def test_scores_read_both_prefixes() -> None:
    m = metrics({"a.light": (0.9, 100)}, {"a.light": (0.8, 100)})
    assert scores(m) == {"a.light": (0.9, 100)}
    assert scores(m, "champion_") == {"a.light": (0.8, 100)}


def test_first_model_is_promoted() -> None:
    v = judge(metrics({"a.light": (0.5, 100)}, None), has_champion=False, settings=S)
    assert v.promote and "first model" in v.reason


def test_better_overall_and_no_device_worse_promotes() -> None:
    m = metrics(
        {"a.light": (0.95, 300), "b.heat": (0.90, 100)}, {"a.light": (0.85, 300), "b.heat": (0.90, 100)}
    )
    v = judge(m, has_champion=True, settings=S)
    assert v.promote, v.reason
    assert v.challenger_overall is not None and v.champion_overall is not None
    assert abs(v.challenger_overall - (0.95 * 300 + 0.90 * 100) / 400) < 1e-9
    assert "better" in v.reason


def test_one_device_worse_beyond_tolerance_keeps_the_champion() -> None:
    m = metrics(
        {"a.light": (0.99, 300), "b.heat": (0.85, 100)}, {"a.light": (0.85, 300), "b.heat": (0.90, 100)}
    )
    v = judge(m, has_champion=True, settings=S)
    assert not v.promote
    assert v.reason.startswith("b.heat worse")


def test_worse_within_tolerance_is_allowed() -> None:
    m = metrics(
        {"a.light": (0.99, 300), "b.heat": (0.89, 100)}, {"a.light": (0.85, 300), "b.heat": (0.90, 100)}
    )
    assert judge(m, has_champion=True, settings=S).promote


def test_not_better_by_the_margin_keeps() -> None:
    m = metrics({"a.light": (0.905, 300)}, {"a.light": (0.90, 300)})
    v = judge(m, has_champion=True, settings=S)
    assert not v.promote and "margin" in v.reason
    same = judge(
        metrics({"a.light": (0.9, 300)}, {"a.light": (0.9, 300)}),
        has_champion=True,
        settings=GateSettings(margin=0.0, tolerance=0.0),
    )
    assert not same.promote  # equal is not better


def test_a_device_the_challenger_dropped_keeps() -> None:
    m = metrics({"a.light": (0.99, 300)}, {"a.light": (0.80, 300), "b.heat": (0.9, 50)})
    v = judge(m, has_champion=True, settings=S)
    assert not v.promote and "b.heat" in v.reason


def test_devices_with_few_labels_are_not_scored() -> None:
    m = metrics({"a.light": (0.95, 300), "b.heat": (0.0, 3)}, {"a.light": (0.90, 300), "b.heat": (1.0, 3)})
    assert judge(m, has_champion=True, settings=S).promote


def test_champion_not_evaluated_keeps_with_the_fix() -> None:
    m = metrics({"a.light": (0.99, 300)}, None)
    v = judge(m, has_champion=True, settings=S)
    assert not v.promote and "edge-agent train" in v.reason


def test_no_heldout_labels_keeps() -> None:
    v = judge({"champion_evaluated": 1.0}, has_champion=True, settings=S)
    assert not v.promote and "held-out" in v.reason


def test_verdict_as_dict_is_plain() -> None:
    m = metrics({"a.light": (0.95, 300)}, {"a.light": (0.85, 300)})
    d = judge(m, has_champion=True, settings=S).as_dict()
    assert d["promote"] is True and d["devices"] == {
        "a.light": {"champion": 0.85, "challenger": 0.95, "labels": 300}
    }
