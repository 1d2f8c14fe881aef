"""The channel budget of focused/sparse: top-k by attention + the triggering channels + the calendar (free)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.focus import AttentionTracker, free_channels, room_groups, runtime_tracker
from edge_agent.manifest import TierSpec, read_manifest
from edge_agent.tiering import select_channels


def _tier(budget: int | None) -> TierSpec:
    return TierSpec(name="focused", file="c.onnx", sha256="0" * 64, precision="int8", channel_budget=budget)


def test_free_channels_are_the_calendar_rows() -> None:
    assert free_channels(["motion", "calendar", "temperature", "calendar"]) == [1, 3]
    assert free_channels(["motion"]) == []


def test_budget_feeds_the_calendar_on_top_of_k_and_the_trigger() -> None:
    t = AttentionTracker(8, always=[0], free=[6, 7])
    att = np.zeros((2, 8))
    att[0, 1], att[1, 2] = 0.9, 0.8  # channels 1 and 2 lead the running mean
    for _ in range(50):
        t.update(att, np.arange(8))
    ids = select_channels(_tier(3), 8, t, [5]).tolist()
    assert ids == [0, 1, 2, 5, 6, 7]  # always 0, top 1 and 2, triggered 5, free 6 and 7
    assert select_channels(_tier(None), 8, t, []).tolist() == list(range(8))
    with pytest.raises(ValueError, match="free channels"):
        AttentionTracker(4, free=[4])


def test_runtime_tracker_of_the_demo_bundle_frees_its_calendar() -> None:
    from pathlib import Path

    import simhome

    man = read_manifest(Path(simhome.__file__).parent / "demo_bundle")
    tr = runtime_tracker(man)
    cal = [i for i, c in enumerate(man.channels) if c.kind == "calendar"]
    assert cal and tr.free == cal
    ids = select_channels(man.tier("focused"), len(man.channels), tr, ()).tolist()
    assert set(cal) <= set(ids)


def test_per_device_top_channel_is_kept_though_the_max_ranks_it_last() -> None:
    """Device 0 leans on channel 3 a little; device 1 strongly on 1 and 2: ranked by the max alone the budget of 3
    would be [0, 1, 2]; per device, device 0's own top channel (beyond the always-fed 0) gets a slot."""
    n = 6
    att = np.zeros((2, n))
    att[0, 0], att[0, 3] = 0.7, 0.3  # device 0: motion (always fed) then channel 3
    att[1, 1], att[1, 2] = 0.5, 0.5
    plain = AttentionTracker(n, always=[0])
    per = AttentionTracker(n, always=[0], per_device=True)
    for _ in range(60):
        plain.update(att, np.arange(n))
        per.update(att, np.arange(n))
    assert plain.top_k(3) == [0, 1, 2]
    assert per.top_k(3) == [0, 1, 3]
    # persisted and restored: the same picks
    back = AttentionTracker.from_json(per.to_json(), n, always=[0], per_device=True)
    assert back.dev_mean is not None and back.top_k(3) == [0, 1, 3]
    # a corrupt per-device part is dropped alone (the max-over-devices mean stays)
    state = per.to_json().replace('"dev_mean": [[', '"dev_mean": [["x", ')
    assert AttentionTracker.from_json(state, n, always=[0], per_device=True).dev_mean is None


def test_room_groups_by_name_prefix_calendar_and_bare_names_alone() -> None:
    names = [
        "living.motion",
        "living.illuminance",
        "kitchen.motion",
        "calendar.tod_sin",
        "power",
        "living.co2",
    ]
    kinds = ["motion", "illuminance", "motion", "calendar", "power", "co2"]
    assert room_groups(names, kinds) == [[0, 1, 5], [0, 1, 5], [2], [3], [4], [0, 1, 5]]


def test_a_triggering_channel_brings_its_whole_room_into_the_budget() -> None:
    """The demo's event test: living.motion fired, the budget had ranked the living room's light level out,
    and the light was switched on in daylight; the trigger's room is fed whole, on top of k."""
    names = [
        "living.motion",
        "living.illuminance",
        "kitchen.motion",
        "kitchen.temperature",
        "outdoor.temperature",
    ]
    kinds = ["motion", "illuminance", "motion", "temperature", "temperature"]
    t = AttentionTracker(5, always=[0, 2], rooms=room_groups(names, kinds))
    att = np.zeros((1, 5))
    att[0, 3], att[0, 4] = 0.5, 0.4  # the temperatures lead the running mean, illuminance is last
    for _ in range(50):
        t.update(att, np.arange(5))
    assert select_channels(_tier(3), 5, t, []).tolist() == [0, 2, 3]
    assert select_channels(_tier(3), 5, t, [0]).tolist() == [0, 1, 2, 3]  # + living.illuminance
    assert select_channels(_tier(3), 5, t, [2]).tolist() == [0, 2, 3]  # the kitchen's room is in already
    with pytest.raises(ValueError, match="room groups"):
        AttentionTracker(3, rooms=[[0], [1]])
    with pytest.raises(ValueError, match="room channels"):
        AttentionTracker(2, rooms=[[0, 5], [1]])
