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


def test_training_uses_the_budget_shaped_masks_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """`TrainConfig.budget_mask_frac` reaches the training loop: with it every full-model row of a step is
    budget-shaped (not the random dropout), and training stays finite."""
    import numpy as np

    import training.train as tt
    from training.sensorlog import ChannelInfo, DeviceInfo, SensorLog

    rng = np.random.default_rng(0)
    n = 400
    motion = (rng.random((n, 2)) < 0.1).astype(np.float32)
    lux = rng.normal(100, 20, (n, 2)).astype(np.float32)
    values = np.concatenate([motion[:, :1], lux[:, :1], motion[:, 1:], lux[:, 1:]], axis=1)
    chans = [
        ChannelInfo("a.motion", kind="motion"),
        ChannelInfo("a.lux", kind="illuminance"),
        ChannelInfo("b.motion", kind="motion"),
        ChannelInfo("b.lux", kind="illuminance"),
    ]
    log = SensorLog("t", 60.0, 0.0, values, motion[:, :1].copy(), chans, [DeviceInfo("a.light")])
    fed: list[tuple[float, torch.Tensor, torch.Tensor]] = []
    real = tt.BudgetShape.apply

    def spy(self: BudgetShape, mask: torch.Tensor, dropped: torch.Tensor, frac: float, gen: torch.Generator):  # type: ignore[no-untyped-def]
        out = real(self, mask, dropped, frac, gen)
        fed.append((frac, mask.clone(), out.clone()))
        return out

    monkeypatch.setattr(tt.BudgetShape, "apply", spy)
    cfg = tt.TrainConfig(
        window=16, patch=8, epochs=1, steps=3, batch=32, progress=False, budget_mask_frac=1.0
    )
    res = tt.train(log, log, cfg)
    assert len(fed) == 3 and all(f == 1.0 for f, _, _ in fed)
    for _, mask, out in fed:  # every row: both motions live, and one room whole (a.lux or b.lux with it)
        assert (out[:, [0, 2]] == mask[:, [0, 2]]).all()
        assert ((out[:, 1] == mask[:, 1]) | (out[:, 3] == mask[:, 3])).all()
    assert all(torch.isfinite(p).all() for p in res.full.parameters())
