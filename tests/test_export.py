"""ONNX export and int8 tiers: torch/onnxruntime parity, int8 agreement, bundle contents and atomic writing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from edge_agent.manifest import ChannelSpec, DeviceSpec, read_manifest, sha256_file
from training.bundle import BundleSpec, load_models, write_bundle
from training.export import example_inputs, export_onnx, parity, quantize_int8
from training.model import CatVsn, DeviceHead, ModelConfig, pool_time
from training.ortrun import make_session, run_session

KINDS = ["temperature", "humidity", "illuminance", "co2", "humidity_ratio"]
HEADS = [
    DeviceHead("occ"),
    DeviceHead("fan", kind="level", levels=3),
    DeviceHead("heat", kind="setpoint", mean=20.0, std=1.0, min_value=17.0, max_value=23.0),
]


def _trained(window: int, patch: int, steps: int = 60) -> CatVsn:
    """A model fitted briefly on a learnable synthetic task, so weights are not just the init."""
    torch.manual_seed(0)
    m = CatVsn(ModelConfig(KINDS, HEADS, window=window, patch=patch))
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    for i in range(steps):
        x, mask, ids = example_inputs(5, window, batch=64, seed=100 + i, p_mask=0.0)
        lev = x[:, :, -4:].mean(-1)  # [B, C]
        occ = (lev.gather(1, ids.argsort(1))[:, 2] > 0).float()
        out, _, _ = m.raw(x, mask, ids)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out[:, 0], occ)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return m.eval()


@pytest.fixture(scope="module")
def full_model() -> CatVsn:
    return _trained(64, 8)


def test_export_parity_all_shapes(full_model: CatVsn, tmp_path: Path) -> None:
    """The exported graph matches torch (< 1e-4) at batch 1 and n, all channels, subsets, one channel."""
    path = export_onnx(full_model, tmp_path / "m.onnx")
    assert parity(full_model, path) < 1e-4
    sess = make_session(path)
    names = [i.name for i in sess.get_inputs()]
    assert names == ["x", "mask", "channel_ids"]
    assert [o.name for o in sess.get_outputs()] == ["devices", "confidence", "attention"]


def test_int8_agrees_with_fp32(full_model: CatVsn, tmp_path: Path) -> None:
    """Dynamic int8 is smaller and its binary decisions agree with fp32 on >= 99% of windows."""
    fp = export_onnx(full_model, tmp_path / "m.onnx")
    q = quantize_int8(fp, tmp_path / "q.onnx")
    assert q.stat().st_size < fp.stat().st_size
    ops = {n.op_type for n in onnx.load(str(q)).graph.node}
    assert "MatMulInteger" in ops and "Softmax" in ops  # weights int8, softmax/masking stay float
    x, mask, ids = example_inputs(5, 64, batch=500, seed=7)
    a = run_session(make_session(fp), x.numpy(), mask.numpy(), ids.numpy())
    b = run_session(make_session(q), x.numpy(), mask.numpy(), ids.numpy())
    assert np.mean((a[0][:, 0] > 0.5) == (b[0][:, 0] > 0.5)) >= 0.99
    assert np.abs(a[2] - b[2]).max() < 0.1
    assert np.all(b[2][mask.numpy()[:, None, :].repeat(3, 1) == 0] == 0)


def test_bundle_is_complete_and_loadable(full_model: CatVsn, tmp_path: Path) -> None:
    """write_bundle gives the five tiers with matching sha256, latencies, and a loadable model.pt."""
    coarse = _trained(16, 2, steps=5)
    spec = BundleSpec(
        version="test",
        dataset="synthetic",
        step_seconds=60,
        window=64,
        channels=[ChannelSpec(name=f"c{i}", kind=k, mean=0.0, std=1.0) for i, k in enumerate(KINDS)],
        devices=[
            DeviceSpec(name="occ", kind="binary"),
            DeviceSpec(name="fan", kind="level", levels=3),
            DeviceSpec(name="heat", kind="setpoint", min_value=17, max_value=23),
        ],
        channel_budget=3,
    )
    x, mask, ids = (t.numpy() for t in example_inputs(5, 64, batch=32, seed=9))
    out = tmp_path / "bundle"
    man = write_bundle(out, spec, full_model, coarse, 4, (x, mask, ids), latency_runs=50)
    assert [t.name for t in man.tiers] == ["full", "int8", "coarse", "focused", "sparse"]
    assert read_manifest(out) == man
    for t in man.tiers:
        assert sha256_file(out / t.file) == t.sha256
        assert t.latency_us_p50 is not None and t.latency_us_p50 > 0
    assert man.tier("focused").channel_budget == 3 and man.tier("sparse").every_n_ticks == 5
    for name in ("focused", "sparse"):  # the budgeted tiers: the int8 full model on fewer channels
        assert man.tier(name).file == "int8.onnx" and man.tier(name).time_factor == 1
    for t in man.tiers[1:]:  # what of each quantized file is int8, whichever variant paid on this machine
        q = t.quantization
        assert q is not None and q.agreement_vs_fp32 is not None and q.latency_ratio_vs_fp32 is not None
        assert (t.precision == "int8") == (q.quantized_nodes > 0) and q.total_nodes > q.quantizable_nodes > 0
    assert man.tier("int8").offered == (man.tier("int8").quantization.method != "none")  # type: ignore[union-attr]
    assert man.metrics["onnx_max_abs_error"] < 1e-4
    assert not list(tmp_path.glob(".bundle.tmp-*"))
    full, coarse2, tf = load_models(out)
    assert tf == 4 and coarse2.cfg.window == 16
    # the coarse file really takes pooled input of the coarse length
    xc = pool_time(torch.from_numpy(x), 4, np.zeros(x.shape[1], bool)).numpy()
    dev, _, att = run_session(make_session(out / "coarse.onnx"), xc[:, :3], mask[:, :3], ids[:, :3])
    assert dev.shape == (32, 3) and att.shape == (32, 3, 3)
    # rewriting over an existing bundle replaces it atomically
    write_bundle(out, spec, full, coarse2, 4, (x, mask, ids), latency_runs=10)
    assert json.loads((out / "manifest.json").read_text())["version"] == "test"


def test_bundle_refuses_to_clobber_other_directory(full_model: CatVsn, tmp_path: Path) -> None:
    """An existing non-empty directory without manifest.json is not overwritten."""
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    spec = BundleSpec(
        version="v",
        dataset="d",
        step_seconds=60,
        window=64,
        channels=[ChannelSpec(name="a", mean=0, std=1)],
        devices=[DeviceSpec(name="o", kind="binary")],
        channel_budget=1,
    )
    with pytest.raises(FileExistsError, match="not a model bundle"):
        write_bundle(tmp_path / "x", spec, full_model, full_model, 4, (np.zeros((1, 1, 64)),) * 3)
    assert (tmp_path / "x" / "notes.txt").read_text() == "mine"
