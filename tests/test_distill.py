"""training.distill: event windows, counterfactuals, runtime-shaped channel budgets, the loss, and a bounded run."""

from __future__ import annotations

import math

import numpy as np
import torch

from training.data import WindowSampler, channel_moments
from training.distill import (
    DistillConfig,
    budget_masks,
    counterfactual,
    distill_coarse,
    distill_loss,
    distill_steps,
    event_ends,
    random_masks,
)
from training.model import CatVsn, DeviceHead, ModelConfig
from training.sensorlog import ChannelInfo, DeviceInfo, SensorLog
from training.train import TrainConfig


def _log(n: int = 600, seed: int = 0) -> SensorLog:
    rng = np.random.default_rng(seed)
    motion = (rng.random(n) < 0.1).astype(np.float32)
    lux = rng.normal(100, 20, n).astype(np.float32)
    temp = np.cumsum(rng.normal(0, 0.05, n)).astype(np.float32) + 20
    values = np.stack([motion, lux, temp], axis=1)
    labels = np.stack([motion, np.clip(temp, 17, 21)], axis=1).astype(np.float32)
    return SensorLog(
        "t",
        60.0,
        0.0,
        values,
        labels,
        [
            ChannelInfo("a.motion", kind="motion"),
            ChannelInfo("a.lux", kind="illuminance"),
            ChannelInfo("a.t", kind="temperature"),
        ],
        [DeviceInfo("a.light"), DeviceInfo("a.heat", kind="setpoint", unit="C")],
    )


def test_event_ends_are_the_windows_whose_newest_step_changed_an_event_channel() -> None:
    log = _log()
    s = WindowSampler(log, 16)
    ends = event_ends(s, np.array([True, False, False]))
    m = log.values[:, 0]
    expected = [e for e in s.ends if e >= 1 and m[e] != m[e - 1]]
    assert ends.tolist() == expected and len(expected) > 10
    assert event_ends(s, np.array([False, False, False])).size == 0


def test_counterfactual_puts_back_the_step_before_on_event_rows_only() -> None:
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)
    out = counterfactual(x, np.array([True, False, True]), torch.tensor([True, False]))
    assert out[0, 0, -1] == x[0, 0, -2] and out[0, 2, -1] == x[0, 2, -2]
    assert out[0, 1, -1] == x[0, 1, -1]  # a level channel keeps its value
    assert torch.equal(out[1], x[1])  # rows not chosen unchanged
    assert torch.equal(out[0, :, :-1], x[0, :, :-1])


def test_budget_masks_keep_fast_channels_and_k_live_channels() -> None:
    gen = torch.Generator().manual_seed(0)
    mask = torch.ones(64, 10)
    mask[:, 9] = 0.0  # a stale channel is never chosen
    score = torch.linspace(0.01, 0.5, 10)
    out = budget_masks(mask, score, [0, 1], 5, 0.5, gen)
    assert torch.all(out[:, :2] == 1)
    assert torch.all(out.sum(1) == 5)
    assert torch.all(out[:, 9] == 0)
    # the attention ranking decides most of the picks: channel 8 (top score) far more often than channel 2
    assert out[:, 8].sum() > out[:, 2].sum()
    # a budget larger than the live channels keeps every live channel
    assert torch.equal(budget_masks(mask, score, [0], 20, 1.0, gen), mask)


def test_random_masks_never_leave_a_row_empty() -> None:
    gen = torch.Generator().manual_seed(1)
    mask = torch.ones(200, 3)
    out = random_masks(mask, 0.9, gen)
    assert torch.all(out.sum(1) >= 1) and out.sum() < mask.sum()


def test_distill_loss_per_head() -> None:
    heads = [DeviceHead("l", "binary"), DeviceHead("f", "level", levels=3), DeviceHead("h", "setpoint")]
    t = torch.tensor([[20.0, 1.0, 0.0, 0.0, 0.5]])
    assert float(distill_loss(t.clone(), t, heads, 4.0)[0]) < 1e-6
    # logits beyond the clip count as equal (both "certainly on")
    s = t.clone()
    s[0, 0] = 12.0
    assert float(distill_loss(s, t, heads, 4.0)[0]) < 1e-6
    s = t.clone()
    s[0, 4] = 1.0  # setpoint off by 0.5 normalized -> 4 * 0.25
    assert abs(float(distill_loss(s, t, heads, 4.0)[0]) - 1.0) < 1e-5
    s = t.clone()
    s[0, 0] = 0.0  # binary logit 4 (threshold 0.5: logit 0 + band 4, clipped) vs 0
    assert abs(float(distill_loss(s, t, heads, 4.0)[0]) - 16.0) < 1e-4
    # the band follows the threshold: at 0.95 (logit 2.94) -20 clips to 2.94 - 4, 0 stays
    s[0, 0], t2 = 0.0, t.clone()
    t2[0, 0] = -20.0
    lo = math.log(0.95 / 0.05) - 4.0
    assert abs(float(distill_loss(s, t2, heads, 4.0, [0.95, 0.5, 0.5])[0]) - (0.0 - lo) ** 2) < 1e-4


def test_distill_steps_default_share_and_override() -> None:
    assert distill_steps(TrainConfig(), 100.0) == 0  # off by default (see DISTILL_SHARE)
    assert distill_steps(TrainConfig(distill_steps=0), 100.0) == 0
    assert distill_steps(TrainConfig(distill_steps=7), 100.0) == 7


def test_distill_coarse_brings_the_coarse_model_towards_the_full_one() -> None:
    torch.manual_seed(0)
    log, val = _log(800, 0), _log(400, 1)
    kinds = [c.kind for c in log.channels]
    heads = [DeviceHead("a.light", "binary"), DeviceHead("a.heat", "setpoint", mean=19.0, std=1.0)]
    full = CatVsn(ModelConfig(kinds, heads, window=16, patch=4, d=16, heads=1)).eval()
    coarse = CatVsn(ModelConfig(kinds, heads, window=4, patch=1, d=16, heads=1, time_factor=4)).eval()
    mean, std = channel_moments(log)
    m = distill_coarse(
        full,
        coarse,
        WindowSampler(log, 16),
        WindowSampler(val, 16),
        mean,
        std,
        2,
        DistillConfig(steps=60, batch=32, lr=3e-3, val_windows=128),
    )
    assert m["distill_steps"] == 60 and m["distill_event_windows"] > 0
    assert 0.0 <= m["distill_event_agreement_before"] <= 1.0
    # kept only when the decisions on the validation event windows agree with the full model at least as often
    assert m["distill_kept"] == float(
        m["distill_event_agreement_after"] >= m["distill_event_agreement_before"]
    )
    assert m["distill_agreement_after"] > m["distill_agreement_before"] or m["distill_kept"] == 0.0
