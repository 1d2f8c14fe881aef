"""Budget-shaped training masks (training.budgetmask): the subsets a budgeted tier is fed at run time."""

from __future__ import annotations

import pytest
import torch

from edge_agent.focus import room_groups
from training.budgetmask import BudgetShape

NAMES = [
    "living.motion",
    "living.illuminance",
    "living.temperature",
    "kitchen.motion",
    "kitchen.illuminance",
    "hall.door",
    "house.power",
    "outdoor.temperature",
    "calendar.tod_sin",
    "calendar.tod_cos",
]
KINDS = [
    "motion",
    "illuminance",
    "temperature",
    "motion",
    "illuminance",
    "contact",
    "power",
    "temperature",
] + ["calendar"] * 2
FAST, CAL = [0, 3, 5], [8, 9]


def test_every_draw_feeds_fast_calendar_a_triggers_room_and_the_extra_slots() -> None:
    shape = BudgetShape(NAMES, KINDS, budget=5)  # 3 fast channels: 2 extra slots
    keep = shape.keep(400, torch.Generator().manual_seed(1))  # [400, C]
    assert keep[:, FAST + CAL].all()
    rooms = room_groups(NAMES, KINDS)
    for row in keep.tolist():
        live = {i for i, v in enumerate(row) if v}
        assert any(set(rooms[t]) <= live for t in FAST)  # at least one triggering channel's room whole
        room_part = set().union(*(set(rooms[t]) for t in FAST if set(rooms[t]) <= live))
        assert len(live - room_part - set(CAL) - set(FAST)) <= 2  # the extra slots, never more
    assert not keep.all(1).all()  # not the whole home: these rows are subsets
    assert keep[:, 6].any() and not keep[:, 6].all()  # an extra slot is sometimes the power, sometimes not


def test_apply_replaces_a_share_of_rows_and_keeps_missing_channels_missing() -> None:
    shape = BudgetShape(NAMES, KINDS, budget=5)
    gen = torch.Generator().manual_seed(2)
    mask = torch.ones(2000, len(NAMES))
    mask[:, 1] = 0.0  # living.illuminance missing: a budget draw never revives it
    dropped = mask.clone()
    out = shape.apply(mask, dropped, 0.3, gen)
    changed = (out != dropped).any(1).float().mean().item()
    assert 0.2 < changed < 0.4  # about the share asked for (a replaced row may equal the dropout row)
    assert (out[:, 1] == 0).all()
    assert torch.equal(shape.apply(mask, dropped, 0.0, gen), dropped)
    with pytest.raises(ValueError, match="channels"):
        shape.apply(torch.ones(2, 3), torch.ones(2, 3), 0.5, gen)


def test_a_row_whose_draw_has_nothing_live_stays_whole() -> None:
    shape = BudgetShape(NAMES, KINDS, budget=3)  # no extra slot
    mask = torch.zeros(50, len(NAMES))
    mask[:, 6] = 1.0  # only the house power is live, never in a budget draw without extra slots
    out = shape.apply(mask, torch.zeros_like(mask), 1.0, torch.Generator().manual_seed(3))
    assert torch.equal(out, mask)


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="kinds"):
        BudgetShape(NAMES, KINDS[:-1], 5)
    with pytest.raises(ValueError, match="budget"):
        BudgetShape(NAMES, KINDS, 0)
