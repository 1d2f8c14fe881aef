"""Evaluation building blocks: decisions as the manifest defines them, thresholds, faithfulness figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edge_agent.manifest import DeviceSpec
from training.decisions import agree, agreement, decide
from training.export import example_inputs, export_onnx
from training.faithfulness import faithfulness
from training.model import CatVsn, DeviceHead, ModelConfig
from training.ortrun import make_session
from training.thresholds import choose_threshold

DEVICES = [
    DeviceSpec(name="l", kind="binary", threshold=0.3),
    DeviceSpec(name="f", kind="level", levels=4),
    DeviceSpec(name="h", kind="setpoint", min_value=16, max_value=23),
]


def test_decide_per_kind() -> None:
    """binary: >= threshold; level: rounded expectation clipped to the levels; setpoint: the value (within its
    limits; the daemon's rule, edge_agent.policy.decide_values)."""
    out = np.array([[0.3, 2.6, 20.3], [0.29, -0.2, 17.0], [0.9, 3.7, 22.9]], np.float32)
    np.testing.assert_allclose(decide(out, DEVICES), [[1, 3, 20.3], [0, 0, 17.0], [1, 3, 22.9]], rtol=1e-6)


def test_agreement_counts_setpoints_within_tolerance() -> None:
    """Setpoints agree within 0.25 °C; binary and level must be equal."""
    a = np.array([[0.9, 1.0, 20.0], [0.1, 2.0, 20.0]], np.float32)
    b = np.array([[0.8, 1.2, 20.2], [0.5, 2.6, 20.4]], np.float32)
    same = agree(decide(a, DEVICES), decide(b, DEVICES), DEVICES)
    assert same.tolist() == [[True, True, True], [False, False, False]]
    assert agreement(a, b, DEVICES) == 0.5


def test_threshold_middle_of_plateau_and_single_class() -> None:
    """A separable set gets the middle of the best plateau; one class only -> 0.5."""
    p = np.array([0.1, 0.2, 0.8, 0.9])
    y = np.array([0, 0, 1, 1])
    thr, score = choose_threshold(p, y)
    assert 0.4 <= thr <= 0.6 and score == 1.0
    assert choose_threshold(p, np.ones(4))[0] == 0.5
    thr, _ = choose_threshold(np.array([0.05, 0.06, 0.07, 0.3]), np.array([0, 0, 0, 1]), "f1")
    assert 0.07 < thr <= 0.3


def test_faithfulness_on_a_model_that_reads_one_channel(tmp_path: Path) -> None:
    """Trained so the device depends on channel 2 only: attention-order deletion beats random order, and the
    top-attention channel is the top-deletion channel on most windows."""
    torch.manual_seed(0)
    kinds = ["temperature", "humidity", "illuminance", "co2"]
    m = CatVsn(ModelConfig(kinds, [DeviceHead("occ")], window=32, patch=8))
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    for i in range(150):
        x, mask, ids = example_inputs(4, 32, batch=64, seed=i, p_mask=0.0)
        y = (x[:, :, -4:].mean(-1).gather(1, ids.argsort(1))[:, 2] > 0).float()
        out, _, _ = m.raw(x, mask, ids)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out[:, 0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    path = export_onnx(m.eval(), tmp_path / "m.onnx")
    x, mask, ids = (t.numpy() for t in example_inputs(4, 32, batch=300, seed=999, p_mask=0.0))
    f = faithfulness(make_session(path), x, mask, ids, [DeviceSpec(name="occ", kind="binary")])
    assert f["faithfulness_windows"] == 300
    assert f["faithfulness_top1"] >= 0.7
    dc = f["deletion_curve"]
    assert len(dc["attention"]) == 3 and dc["aopc_attention"] > dc["aopc_random"]
