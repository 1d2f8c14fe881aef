"""Governor unit tests: load traces on a fake clock (no sleeping, no psutil)."""

from __future__ import annotations

import logging
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from edge_agent.governor import Governor, GovernorSettings, TierChange
from edge_agent.stats import percentile

LADDER = ["full", "int8", "coarse", "focused", "sparse"]
CPU_ALONE = {"cpu_latency_fraction": None}  # the old rule: system CPU alone steps down (hysteresis mechanics)


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def run(
    gov: Governor, clock: Clock, seconds: float, *, step: float = 1.0, until_change: bool = False, **signals
) -> list[TierChange]:
    """Advance `seconds` in steps, observing `signals` (values or callables of time) before each update."""
    changes = []
    end = clock.t + seconds
    while clock.t < end - 1e-9 and not (until_change and changes):
        clock.t += step
        obs = {k: (v(clock.t) if callable(v) else v) for k, v in signals.items()}
        if "latency_ms" in obs and obs["latency_ms"] is not None:
            for _ in range(30):  # 30 decisions per second
                gov.observe(latency_ms=obs["latency_ms"])
            obs.pop("latency_ms")
        gov.observe(**obs)
        c = gov.update()
        if c is not None:
            changes.append(c)
    return changes


def test_load_trace_steps_down_fast_holds_and_steps_up_only_after_quiet_time():
    s = GovernorSettings(**CPU_ALONE)  # down > 85 % for 5 s, up < 60 % for 60 s, 10 s per tier, tau 3 s
    clock = Clock()
    gov = Governor(s, LADDER, clock)
    assert run(gov, clock, 60, cpu_percent=20.0) == []
    t_load = clock.t
    changes = run(gov, clock, 25, cpu_percent=97.0)
    assert changes, "no step down under load"
    first = changes[0]
    assert (first.old, first.new, first.signal) == ("full", "int8", "cpu")
    # EWMA 20 -> 97 crosses 85 after tau*ln(77/12) ~ 5.6 s, then 5 s held: reaction within ~12 s
    assert first.at - t_load <= 12.0
    assert first.value > 85.0 and "CPU" in first.reason
    # holds: load continues, only further steps down, never up
    changes += run(gov, clock, 120, cpu_percent=97.0)
    assert all(LADDER.index(c.new) == LADDER.index(c.old) + 1 for c in changes)
    assert gov.tier == "sparse"
    # load stops: no step up before the quiet time
    t_quiet = clock.t
    ups = run(gov, clock, 59, cpu_percent=10.0)
    assert ups == []
    ups = run(gov, clock, 20, cpu_percent=10.0)
    assert len(ups) == 1 and ups[0].new == "focused" and ups[0].signal == "quiet"
    assert ups[0].at - t_quiet >= 60.0
    # each further step up needs another full quiet time on the new tier
    more = run(gov, clock, 300, cpu_percent=10.0)
    assert [c.new for c in more] == ["coarse", "int8", "full"]
    gaps = [b.at - a.at for a, b in zip(ups + more, more, strict=False)]
    assert min(gaps) >= 60.0


def test_load_at_threshold_never_oscillates():
    rng = random.Random(5)
    for level in (85.0, 60.0, 72.0):
        clock = Clock()
        gov = Governor(GovernorSettings(**CPU_ALONE), LADDER, clock)
        if level == 60.0:  # start at the bottom so a step up is possible
            run(gov, clock, 100, cpu_percent=99.0)
            assert gov.tier == "sparse"
        changes = run(
            gov, clock, 4 * 3600, cpu_percent=lambda t, lv=level: min(100.0, max(0.0, lv + rng.gauss(0, 6)))
        )
        directions = {LADDER.index(c.new) - LADDER.index(c.old) for c in changes}
        assert len(directions) <= 1, f"oscillated at {level}%: {[(c.old, c.new) for c in changes]}"
        assert len(changes) <= len(LADDER) - 1
        if level == 85.0:
            assert directions == {1}  # a load at the down threshold pushes down, never back up
        else:
            assert 1 not in directions  # between or at the up threshold: never down


def test_bursty_load_shorter_than_quiet_time_does_not_flap():
    clock = Clock()
    gov = Governor(GovernorSettings(**CPU_ALONE), LADDER, clock)
    # 20 s busy, 40 s idle, repeated for an hour: the quiet time (60 s) is never reached
    changes = run(gov, clock, 3600, cpu_percent=lambda t: 98.0 if (t % 60) < 20 else 5.0)
    assert changes and all(c.signal == "cpu" for c in changes)


def test_pinned_tier_is_respected():
    clock = Clock()
    gov = Governor(GovernorSettings(pinned_tier="coarse"), LADDER, clock)
    assert gov.tier == "coarse"
    assert run(gov, clock, 300, cpu_percent=99.0, queue_depth=500, latency_ms=100.0) == []
    assert run(gov, clock, 600, cpu_percent=1.0, queue_depth=0) == []
    assert gov.tier == "coarse" and gov.state()["pinned"] is True


def test_pinned_tier_not_in_ladder_warns_once_and_uses_best(caplog):
    clock = Clock()
    with caplog.at_level(logging.WARNING, logger="edge_agent.governor"):
        gov = Governor(GovernorSettings(pinned_tier="turbo"), LADDER, clock)
        assert run(gov, clock, 120, cpu_percent=99.0) == []
    assert gov.tier == "full"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "turbo" in warnings[0].getMessage()


def test_disabled_stays_on_best_tier():
    clock = Clock()
    gov = Governor(GovernorSettings(enabled=False), LADDER, clock)
    assert run(gov, clock, 300, cpu_percent=99.0) == []
    assert gov.tier == "full"


def test_latency_triggers_step_down_and_cheap_tier_latency_does_not_bounce():
    clock = Clock()
    gov = Governor(GovernorSettings(), LADDER, clock)
    t0 = clock.t
    changes = run(gov, clock, 30, cpu_percent=30.0, latency_ms=40.0, until_change=True)
    assert len(changes) == 1 and changes[0].signal == "latency" and changes[0].value == pytest.approx(40.0)
    assert changes[0].at - t0 <= 7.0
    assert gov.tier == "int8"
    # on the cheaper tier latency is fine: it stays there (no step down, no immediate step up)
    changes = run(gov, clock, 55, cpu_percent=30.0, latency_ms=3.0)
    assert changes == [] and gov.tier == "int8"
    # and steps up once everything has been quiet long enough
    changes = run(gov, clock, 30, cpu_percent=30.0, latency_ms=3.0)
    assert [c.new for c in changes] == ["full"]


def test_latency_window_is_per_tier():
    clock = Clock()
    gov = Governor(GovernorSettings(), LADDER, clock)
    run(gov, clock, 30, latency_ms=40.0, until_change=True)
    assert gov.tier == "int8"
    assert gov.latency_p99_ms() is None  # the samples of `full` were dropped with the change


def test_latency_relative_to_tier_measured_p99():
    clock = Clock()
    gov = Governor(
        GovernorSettings(latency_tier_factor=20.0, latency_floor_ms=2.0),
        LADDER,
        clock,
        tier_p99_ms={"full": 0.5},
    )
    assert gov.latency_limit_ms() == pytest.approx(10.0)
    changes = run(gov, clock, 30, latency_ms=12.0, until_change=True)
    assert len(changes) == 1 and changes[0].signal == "latency"
    assert gov.tier == "int8" and gov.latency_limit_ms() == pytest.approx(
        25.0
    )  # no reference: absolute limit
    assert run(gov, clock, 30, latency_ms=12.0) == []


def test_latency_needs_enough_samples():
    clock = Clock()
    gov = Governor(GovernorSettings(latency_min_samples=50), LADDER, clock)
    for _ in range(60):
        clock.t += 1.0
        gov.observe(latency_ms=500.0)  # one slow decision a second: 10 in the window < 50
        assert gov.update() is None


def test_queue_depth_triggers_step_down():
    clock = Clock()
    gov = Governor(GovernorSettings(), LADDER, clock)
    assert run(gov, clock, 30, queue_depth=10) == []
    changes = run(gov, clock, 10, queue_depth=200)
    assert changes and changes[0].signal == "queue" and changes[0].value == 200.0


def test_ladder_of_one_never_changes():
    clock = Clock()
    gov = Governor(GovernorSettings(), ["int8"], clock)
    assert run(gov, clock, 600, cpu_percent=lambda t: 99.0 if t % 200 < 100 else 1.0) == []
    assert gov.tier == "int8"


def test_min_time_per_tier():
    clock = Clock()
    s = GovernorSettings(
        down_after_seconds=0,
        up_after_seconds=0,
        min_seconds_per_tier=30,
        cpu_smoothing_seconds=0,
        **CPU_ALONE,
    )
    gov = Governor(s, LADDER, clock)
    changes = run(gov, clock, 400, cpu_percent=lambda t: 99.0 if t % 100 < 50 else 1.0)
    assert len(changes) > 3
    gaps = [b.at - a.at for a, b in zip(changes, changes[1:], strict=False)]
    assert min(gaps) >= 30.0


def test_failed_step_up_backs_off():
    clock = Clock()
    s = GovernorSettings(cpu_smoothing_seconds=0, **CPU_ALONE)
    gov = Governor(s, LADDER, clock)
    run(gov, clock, 10, cpu_percent=99.0)
    assert gov.tier == "int8"
    up = run(gov, clock, 70, cpu_percent=10.0)
    assert [c.new for c in up] == ["full"]
    down = run(gov, clock, 15, cpu_percent=99.0)  # the upper tier did not hold
    assert [c.new for c in down] == ["int8"] and gov.state()["up_backoff"] == 2.0
    assert run(gov, clock, 100, cpu_percent=10.0) == []  # 60 s is no longer enough
    assert [c.new for c in run(gov, clock, 30, cpu_percent=10.0)] == ["full"]


def test_invalid_observations_are_ignored_with_one_warning(caplog):
    clock = Clock()
    gov = Governor(GovernorSettings(), LADDER, clock)
    with caplog.at_level(logging.WARNING, logger="edge_agent.governor"):
        for bad in (math.nan, -5.0, 250.0, "90"):
            gov.observe(cpu_percent=bad)
        gov.observe(latency_ms=math.inf)
        gov.observe(queue_depth=-1)
    assert gov.state()["cpu_percent"] is None and gov.state()["queue_depth"] is None
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 3  # one per signal
    assert gov.update() is None


def test_settings_validation():
    with pytest.raises(ValidationError, match="hysteresis"):
        GovernorSettings(cpu_down_percent=60, cpu_up_percent=70)
    with pytest.raises(ValidationError):
        GovernorSettings(cpu_down=90)  # unknown key
    with pytest.raises(ValueError):
        Governor(GovernorSettings(), [], Clock())
    for name, field in GovernorSettings.model_fields.items():
        assert field.description, name


def test_state_snapshot():
    clock = Clock()
    gov = Governor(GovernorSettings(), LADDER, clock)
    run(gov, clock, 5, cpu_percent=42.0, queue_depth=3, latency_ms=2.0)
    st_ = gov.state()
    assert st_["tier"] == "full" and st_["cpu_percent"] == pytest.approx(42.0)
    assert st_["queue_depth"] == 3 and st_["latency_p99_ms"] == pytest.approx(2.0)
    assert st_["last_reason"] == "start"


def test_percentile():
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile([5.0], 99) == 5.0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 100), st.integers(0, 200), st.floats(0, 80)), min_size=1, max_size=300)
)
def test_invariants_on_random_traces(trace):
    clock = Clock()
    s = GovernorSettings(min_seconds_per_tier=10)
    gov = Governor(s, LADDER, clock)
    changes = []
    for cpu, queue, lat in trace:
        clock.t += 1.0
        gov.observe(cpu_percent=cpu, queue_depth=queue, latency_ms=lat)
        c = gov.update()
        if c is not None:
            changes.append(c)
        assert gov.tier in LADDER
    for c in changes:
        assert abs(LADDER.index(c.new) - LADDER.index(c.old)) == 1
    for a, b in zip(changes, changes[1:], strict=False):
        assert b.at - a.at >= s.min_seconds_per_tier
        assert b.old == a.new


def test_latency_a_cheaper_tier_cannot_fix_is_not_chased_down(caplog):
    clock = Clock()
    gov = Governor(GovernorSettings(), LADDER, clock)
    changes = run(gov, clock, 30, cpu_percent=30.0, latency_ms=40.0, until_change=True)
    assert [c.signal for c in changes] == ["latency"] and gov.tier == "int8"
    # the same latency on the cheaper tier: not tier-bound, so no further step down ...
    with caplog.at_level(logging.INFO, logger="edge_agent.governor"):
        changes = run(gov, clock, 55, cpu_percent=30.0, latency_ms=39.0)
    assert changes == [] and gov.state()["latency_tier_bound"] is False
    assert sum("not tier-bound" in r.getMessage() for r in caplog.records) == 1
    # ... and it does not block the way back up once CPU and queue are quiet; back on `full` it stays
    changes = run(gov, clock, 20, cpu_percent=30.0, latency_ms=39.0)
    assert [c.new for c in changes] == ["full"]
    assert run(gov, clock, 120, cpu_percent=30.0, latency_ms=39.0) == []
    # once latency recovers, it steers again
    run(gov, clock, 12, cpu_percent=30.0, latency_ms=2.0)
    assert gov.state()["latency_tier_bound"] is True
    changes = run(gov, clock, 30, cpu_percent=30.0, latency_ms=40.0, until_change=True)
    assert [c.signal for c in changes] == ["latency"]


def test_latency_that_a_cheaper_tier_fixes_keeps_stepping():
    clock = Clock()
    gov = Governor(GovernorSettings(), LADDER, clock)
    lat = {"full": 60.0, "int8": 45.0, "coarse": 30.0, "focused": 14.0, "sparse": 10.0}
    changes = run(gov, clock, 120, cpu_percent=30.0, latency_ms=lambda t: lat[gov.tier])
    assert [c.new for c in changes] == ["int8", "coarse", "focused"]  # 14 ms < 25 ms limit: stops there
    assert gov.state()["latency_tier_bound"] is True


# ---- the signal is the agent falling behind, not the machine being busy ----------------------------------------


def test_busy_machine_whose_agent_meets_its_budget_keeps_the_best_tier():
    """System CPU at 97 % for ten minutes, the agent's p99 3 ms against a 25 ms budget: full stays, and the
    state says why (the reason is recorded either way)."""
    clock = Clock()
    gov = Governor(GovernorSettings(), LADDER, clock)
    assert run(gov, clock, 600, cpu_percent=97.0, latency_ms=3.0, queue_depth=0, own_cpu_percent=5.0) == []
    st_ = gov.state()
    assert gov.tier == "full" and st_["cpu_percent"] > 85
    assert "system CPU" in st_["reason"] and "keeps up" in st_["reason"] and "25.00 ms" in st_["reason"]
    # no decisions to measure at all (nothing happens in the home): high CPU alone costs nothing measurable
    gov2 = Governor(GovernorSettings(), LADDER, Clock())
    assert run(gov2, gov2._clock, 300, cpu_percent=99.0) == [] and gov2.tier == "full"  # type: ignore[arg-type]
    assert "no decisions measured" in gov2.state()["reason"]


def test_busy_machine_that_costs_the_agent_latency_steps_down_and_says_so():
    """p99 20 ms: within the 25 ms budget, above 0.8 x 25 = 20 ms only with the load: with system CPU high it
    steps down (signal cpu); the same latency on a quiet machine keeps the tier."""
    clock = Clock()
    gov = Governor(GovernorSettings(), LADDER, clock)
    assert run(gov, clock, 120, cpu_percent=30.0, latency_ms=21.0) == []
    assert gov.tier == "full"
    changes = run(gov, clock, 30, cpu_percent=97.0, latency_ms=21.0, until_change=True)
    assert [(c.old, c.new, c.signal) for c in changes] == [("full", "int8", "cpu")]
    assert "costing latency" in changes[0].reason and "p99 21.00 ms" in changes[0].reason
    assert gov.state()["reason"].startswith("full -> int8: system CPU")


def test_while_a_bad_signal_waits_its_time_the_reason_says_so():
    clock = Clock()
    gov = Governor(GovernorSettings(), LADDER, clock)
    run(gov, clock, 2, cpu_percent=30.0, latency_ms=40.0)  # 2 s of a 5 s down_after
    assert gov.tier == "full" and "for now" in gov.state()["reason"] and "budget" in gov.state()["reason"]


def test_the_agents_own_cpu_steps_down_and_blocks_the_way_up():
    """The agent process using a whole core (own CPU 98 % of one core) steps down even on an idle machine
    with fast decisions; while it stays above own_cpu_up_percent nothing steps back up."""
    clock = Clock()
    s = GovernorSettings(cpu_smoothing_seconds=0)
    gov = Governor(s, LADDER, clock)
    changes = run(gov, clock, 30, cpu_percent=40.0, latency_ms=2.0, own_cpu_percent=98.0, until_change=True)
    assert [(c.new, c.signal) for c in changes] == [("int8", "own_cpu")] and "agent CPU 98.0%" in changes[
        0
    ].reason
    assert gov.state()["own_cpu_percent"] == pytest.approx(98.0)
    assert run(gov, clock, 300, cpu_percent=10.0, latency_ms=2.0, own_cpu_percent=70.0) == []
    ups = run(gov, clock, 120, cpu_percent=10.0, latency_ms=2.0, own_cpu_percent=10.0)
    assert [c.new for c in ups] == ["full"]
    with pytest.raises(ValidationError, match="own_cpu_up_percent"):
        GovernorSettings(own_cpu_down_percent=50, own_cpu_up_percent=60)


def test_a_load_whose_latency_a_cheaper_tier_cannot_fix_is_not_chased_down():
    """CPU-with-latency steps down once; if the cheaper tier does not cut the p99 (scheduling, not the
    model), the ladder is not run down to the bottom."""
    clock = Clock()
    gov = Governor(GovernorSettings(), LADDER, clock)
    changes = run(gov, clock, 200, cpu_percent=97.0, latency_ms=22.0)
    assert [c.signal for c in changes] == ["cpu"] and gov.tier == "int8"
    assert gov.state()["latency_tier_bound"] is False
