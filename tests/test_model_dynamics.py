"""Dynamics token scalars (ModelConfig.dynamics): computed in the graph from x, contract unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from training.export import example_inputs, export_onnx, parity
from training.model import DYN_LAGS, CatVsn, DeviceHead, ModelConfig, dynamics_scalars
from training.ortrun import make_session, run_session

KINDS = ["temperature", "humidity", "illuminance", "co2"]
HEADS = [DeviceHead("occ"), DeviceHead("fan", kind="level", levels=3)]


def test_dynamics_scalars_values() -> None:
    """A ramp of slope 1 has differences equal to the lags and a short-window mean below the newest value."""
    x = torch.arange(32, dtype=torch.float32).reshape(1, 1, 32)  # [B=1, C=1, T=32]
    s = dynamics_scalars(x)[0, 0]
    assert s.shape == (len(DYN_LAGS) + 2,)
    np.testing.assert_allclose(s[: len(DYN_LAGS)].numpy(), [float(lag) for lag in DYN_LAGS])
    np.testing.assert_allclose(float(s[len(DYN_LAGS)]), 27.5 - 15.5)  # short mean - window mean
    assert torch.all(dynamics_scalars(torch.zeros(2, 3, 8))[..., : len(DYN_LAGS)] == 0)  # lags clip to T


def test_dynamics_model_keeps_contract_and_exports(tmp_path: Path) -> None:
    """Same outputs and shapes as the contract, masked channels get zero attention, ONNX parity < 1e-4."""
    torch.manual_seed(0)
    m = CatVsn(ModelConfig(KINDS, HEADS, window=32, patch=8, dynamics=True)).eval()
    x, mask, ids = example_inputs(4, 32, batch=16, seed=3)
    dev, conf, att = m(x, mask, ids)
    assert dev.shape == (16, 2) and conf.shape == (16, 2) and att.shape == (16, 2, 4)
    assert torch.all(att[mask[:, None, :].expand(-1, 2, -1) == 0] == 0)
    path = export_onnx(m, tmp_path / "m.onnx")
    assert parity(m, path) < 1e-4
    sess = make_session(path)
    assert [i.name for i in sess.get_inputs()] == ["x", "mask", "channel_ids"]
    out = run_session(sess, x.numpy(), mask.numpy(), ids.numpy())
    np.testing.assert_allclose(out[0], dev.detach().numpy(), atol=1e-4)


def test_dynamics_off_keeps_old_state_dict() -> None:
    """The default model has no dynamics weights, so existing model.pt files still load."""
    keys = CatVsn(ModelConfig(KINDS, HEADS, window=32, patch=8)).state_dict().keys()
    assert not any("dynamics" in k for k in keys)
