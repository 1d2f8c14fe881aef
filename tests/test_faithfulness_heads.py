"""Faithfulness per head: each device gets its own top-1 figure, and the worst head is reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edge_agent.manifest import DeviceSpec
from training.export import example_inputs, export_onnx
from training.faithfulness import faithfulness
from training.model import CatVsn, DeviceHead, ModelConfig
from training.ortrun import make_session


def test_per_head_faithfulness_follows_each_heads_channel(tmp_path: Path) -> None:
    """Head "a" reads channel 0, head "b" channel 2: each head's top-attention channel is its own top-deletion
    channel on most windows; the average is the mean of the heads and the minimum is the worst head."""
    torch.manual_seed(0)
    kinds = ["temperature", "humidity", "illuminance", "co2"]
    m = CatVsn(ModelConfig(kinds, [DeviceHead("a"), DeviceHead("b")], window=32, patch=8))
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    for i in range(200):
        x, mask, ids = example_inputs(4, 32, batch=64, seed=i, p_mask=0.0)
        lev = x[:, :, -4:].mean(-1).gather(1, ids.argsort(1))  # [B, C] in channel-id order
        y = torch.stack([lev[:, 0] > 0, lev[:, 2] > 0], 1).float()  # [B, 2]
        out, _, _ = m.raw(x, mask, ids)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out[:, :2], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    path = export_onnx(m.eval(), tmp_path / "m.onnx")
    x, mask, ids = (t.numpy() for t in example_inputs(4, 32, batch=300, seed=999, p_mask=0.0))
    devs = [DeviceSpec(name="a", kind="binary"), DeviceSpec(name="b", kind="binary")]
    f = faithfulness(make_session(path), x, mask, ids, devs)
    per = f["faithfulness_top1_devices"]
    assert isinstance(per, dict) and set(per) == {"a", "b"}
    assert per["a"] >= 0.7 and per["b"] >= 0.7
    assert np.isclose(f["faithfulness_top1"], np.mean(list(per.values())))
    assert f["faithfulness_top1_min"] == min(per.values())
    assert set(f["faithfulness_top1_informative_devices"]) == {"a", "b"}  # type: ignore[arg-type]
    ratios = f["deletion_curve"]["aopc_ratio_devices"]  # type: ignore[index]
    assert ratios["a"] > 1.0 and ratios["b"] > 1.0  # attention order removes each head's output faster
