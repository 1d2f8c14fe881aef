"""Level (ordinal) and setpoint (classes) heads: shapes, decoding in device units, losses, ONNX parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edge_agent.manifest import DeviceSpec
from edge_agent.policy import decide_values
from training.export import example_inputs, export_onnx, parity
from training.heads import (
    OFFSET,
    decode_level,
    decode_setpoint_classes,
    ordinal_class_probs,
    ordinal_loss,
    setpoint_values,
)
from training.losses import DeviceLoss
from training.model import CatVsn, DeviceHead, ModelConfig
from training.ortrun import make_session, run_session

KINDS = ["temperature", "humidity", "illuminance", "co2", "humidity_ratio"]
VALUES = [17.0, 20.5, 21.0]
HEADS = [
    DeviceHead("occ"),
    DeviceHead("fan", kind="level", levels=4, mode="ordinal"),
    DeviceHead(
        "heat",
        kind="setpoint",
        mean=20.0,
        std=1.5,
        min_value=17.0,
        max_value=21.0,
        mode="classes",
        values=VALUES,
    ),
]


def test_n_out_per_mode_and_old_configs_load() -> None:
    assert [h.n_out for h in HEADS] == [1, 3, 3]
    old = {"name": "fan", "kind": "level", "levels": 4}  # a model.pt config written before the modes
    assert DeviceHead(**old).n_out == 4 and DeviceHead(**old).mode == ""


def test_ordinal_decodes_the_median_within_half_a_level() -> None:
    """P(y > j) = (.9, .4, .4): expectation 1.7 would round to 2, the median is 1; output stays within OFFSET."""
    r = torch.logit(torch.tensor([[0.9, 0.4, 0.4], [0.99, 0.98, 0.97], [0.01, 0.01, 0.01]]))
    out, conf = decode_level(r, "ordinal")
    spec = DeviceSpec(name="fan", kind="level", levels=4)
    assert decide_values(spec, out.squeeze(1).numpy()).tolist() == [1.0, 3.0, 0.0]
    assert torch.all((out.squeeze(1) - torch.tensor([1.0, 3.0, 0.0])).abs() <= OFFSET)
    probs = ordinal_class_probs(r)
    assert torch.allclose(probs[1:].sum(-1), torch.ones(2), atol=1e-5)  # monotone rows: a distribution
    assert torch.all(conf > 0) and torch.all(conf <= 1)


def test_setpoint_classes_emit_a_class_value_in_device_units() -> None:
    r = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.0, 5.0], [0.0, 4.0, 3.9]])
    out, conf = decode_setpoint_classes(r, VALUES)
    assert torch.allclose(out.squeeze(1), torch.tensor([17.0, 21.0, 20.5]), atol=0.05)
    assert conf[0] > conf[2]


def test_setpoint_values_distinct_or_binned() -> None:
    assert setpoint_values(np.array([17.0, 20.5, 20.5, 21.0])) == VALUES
    many = setpoint_values(np.linspace(15, 25, 1000), max_classes=8)
    assert 2 <= len(many) <= 8 and many == sorted(many) and many[0] >= 15 and many[-1] <= 25


def test_model_outputs_and_onnx_parity(tmp_path: Path) -> None:
    torch.manual_seed(0)
    m = CatVsn(ModelConfig(KINDS, HEADS, window=32, patch=8)).eval()
    x, mask, ids = example_inputs(5, 32, batch=16)
    dev, conf, att = m(x, mask, ids)
    assert dev.shape == (16, 3) and conf.shape == (16, 3) and att.shape == (16, 3, 5)
    assert torch.all((dev[:, 1] >= -OFFSET) & (dev[:, 1] <= 3 + OFFSET))
    assert torch.all((dev[:, 2] >= 17.0 - 0.05) & (dev[:, 2] <= 21.0 + 0.05))
    path = export_onnx(m, tmp_path / "m.onnx")
    assert parity(m, path) < 1e-4
    got = run_session(make_session(path), x.numpy(), mask.numpy(), ids.numpy())
    assert np.allclose(got[0], dev.detach().numpy(), atol=1e-4)


def test_losses_learn_a_level_and_a_setpoint_in_bounded_steps() -> None:
    """The model fits a level and a setpoint class driven by one channel (80 steps, not seconds)."""
    torch.manual_seed(0)
    m = CatVsn(ModelConfig(KINDS, HEADS, window=32, patch=8))
    rng = np.random.default_rng(0)
    y_fit = np.column_stack([rng.integers(0, 2, 512), rng.integers(0, 4, 512), rng.choice(VALUES, 512)])
    loss_fn = DeviceLoss(HEADS, y_fit.astype(np.float32), level_balance=1.0)
    opt = torch.optim.AdamW(m.parameters(), lr=5e-3)
    first = last = 0.0
    for i in range(80):
        x, mask, ids = example_inputs(5, 32, batch=64, seed=i, p_mask=0.0)
        lev = x[:, :, -4:].mean(-1).gather(1, ids.argsort(1))[:, 0].contiguous()  # [B] level of channel 0
        fan = torch.bucketize(lev, torch.tensor([-0.6, 0.0, 0.6])).float()
        heat = torch.tensor(VALUES)[torch.bucketize(lev, torch.tensor([-0.3, 0.3]))]
        y = torch.stack([(lev > 0).float(), fan, heat], -1)
        loss = loss_fn(m.raw(x, mask, ids)[0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first or float(loss.detach())
        last = float(loss.detach())
    assert last < 0.6 * first
    m.eval()
    x, mask, ids = example_inputs(5, 32, batch=256, seed=999, p_mask=0.0)
    lev = x[:, :, -4:].mean(-1).gather(1, ids.argsort(1))[:, 0].contiguous()
    fan = torch.bucketize(lev, torch.tensor([-0.6, 0.0, 0.6])).float()
    dev = m(x, mask, ids)[0].detach()
    fan_hat = decide_values(DeviceSpec(name="fan", kind="level", levels=4), dev[:, 1].numpy())
    assert np.mean(fan_hat == fan.numpy()) > 0.5  # well above the 0.25 of chance


def test_ordinal_loss_weights_classes() -> None:
    """A confident "level 0" prediction: weighting the missed level-3 window up raises the loss."""
    r = torch.full((4, 3), -3.0)
    y = torch.tensor([0.0, 0.0, 0.0, 3.0])
    plain = ordinal_loss(r, y, None)
    heavy = ordinal_loss(r, y, torch.tensor([0.1, 1.0, 1.0, 10.0]))
    assert float(heavy) > 2 * float(plain)
