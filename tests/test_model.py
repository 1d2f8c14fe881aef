"""The CAT-VSN model: output shapes, mask semantics of the attention, head ranges, channel-as-token identity."""

from __future__ import annotations

import numpy as np
import torch

from training.model import CatVsn, DeviceHead, ModelConfig, n_params, pool_time

KINDS = ["temperature", "humidity", "illuminance", "co2", "motion", "calendar"]


def _model(seed: int = 0) -> CatVsn:
    torch.manual_seed(seed)
    devices = [
        DeviceHead("light"),
        DeviceHead("fan", kind="level", levels=4),
        DeviceHead("heat", kind="setpoint", mean=20.0, std=1.5, min_value=16.0, max_value=23.0),
    ]
    return CatVsn(ModelConfig(KINDS, devices, window=32, patch=8, d=32)).eval()


def _inputs(b: int, c: int, t: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, t, generator=g) * 3
    mask = (torch.rand(b, c, generator=g) > 0.4).float()
    mask[:, 0] = 1
    ids = torch.stack([torch.randperm(len(KINDS), generator=g)[:c] for _ in range(b)])
    return x, mask, ids


def test_shapes_and_param_count() -> None:
    """Outputs follow the bundle contract: devices/confidence [B, D], attention [B, D, C]."""
    m = _model()
    x, mask, ids = _inputs(5, 6)
    dev, conf, att = m(x, mask, ids)
    assert dev.shape == (5, 3) and conf.shape == (5, 3) and att.shape == (5, 3, 6)
    assert 10_000 < n_params(m) < 120_000


def test_masked_channels_get_zero_attention_and_rows_sum_to_one() -> None:
    """Masked channels get exactly 0 attention; each device row sums to 1 over the live channels."""
    m = _model()
    x, mask, ids = _inputs(16, 6, seed=3)
    _, _, att = m(x, mask, ids)
    assert torch.all(att[mask[:, None, :].expand_as(att) == 0] == 0)
    torch.testing.assert_close(att.sum(-1), torch.ones(16, 3), atol=1e-5, rtol=0)


def test_masked_channel_content_is_ignored() -> None:
    """Whatever is fed on a masked channel cannot change any output."""
    m = _model()
    x, mask, ids = _inputs(8, 6, seed=4)
    mask[:, 2] = 0
    a = m(x, mask, ids)
    x2 = x.clone()
    x2[:, 2] = torch.randn_like(x2[:, 2]) * 100
    b = m(x2, mask, ids)
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v)


def test_all_masked_is_finite() -> None:
    """An all-masked window gives finite outputs and zero attention (finite -1e9 logits, not -inf)."""
    m = _model()
    x, _, ids = _inputs(2, 6)
    dev, conf, att = m(x, torch.zeros(2, 6), ids)
    assert torch.isfinite(dev).all() and torch.isfinite(conf).all()
    assert torch.all(att == 0)


def test_head_ranges() -> None:
    """binary in [0,1]; level expectation in [0, L-1]; setpoint clamped; confidences in [0,1]."""
    m = _model()
    x, mask, ids = _inputs(64, 6, seed=5)
    with torch.no_grad():
        m.value_bias.fill_(50.0)  # push every head to its extreme
    dev, conf, _ = m(x, mask, ids)
    assert torch.all((dev[:, 0] >= 0) & (dev[:, 0] <= 1))
    assert torch.all((dev[:, 1] >= 0) & (dev[:, 1] <= 3))
    assert torch.all(dev[:, 2] == 23.0)
    assert torch.all((conf >= 0) & (conf <= 1))


def test_channel_order_does_not_matter() -> None:
    """Channels are tokens identified by channel_ids: permuting rows permutes attention, keeps devices."""
    m = _model()
    x, mask, ids = _inputs(4, 6, seed=6)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    d1, _, a1 = m(x, mask, ids)
    d2, _, a2 = m(x[:, perm], mask[:, perm], ids[:, perm])
    torch.testing.assert_close(d1, d2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a1[:, :, perm], a2, atol=1e-5, rtol=1e-5)


def test_pool_time_aligns_at_newest_step() -> None:
    """Pooling averages groups of f steps ending at the newest step, dropping the oldest remainder."""
    x = torch.arange(10, dtype=torch.float32).reshape(1, 1, 10)
    ev = np.array([False])
    assert pool_time(x, 4, ev).tolist() == [[[6.5, 9.0]]]  # the runtime's rule: newest step whole
    assert pool_time(x, 1, ev) is x
