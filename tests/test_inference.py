"""Inference: the bundle loader verifies sha256 and the contract; outputs follow the test model exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from testbundle import home_bundle

from edge_agent.inference import Bundle, BundleError


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return home_bundle(tmp_path_factory.mktemp("b") / "bundle")


def test_load_and_run_normalizes(bundle_dir: Path) -> None:
    """Motion in the dark -> light probability high; raw values are normalized with mean/std."""
    b = Bundle.load(bundle_dir)
    assert b.tiers == ["full", "int8", "coarse", "focused", "sparse"]
    x = np.zeros((6, 16), np.float32)  # [C, T] raw
    x[0, -1] = 1.0  # motion
    x[1, -1] = 5.0  # 5 lux
    x[2, -1] = 20.0
    x[4, -1] = 50.0
    out = b.run("full", x, np.ones(6, np.float32), np.arange(6))
    assert out.devices.shape == (3,) and out.attention.shape == (3, 6)
    expect = 1 / (1 + np.exp(-(8 * 1 - 4 * 0.05 - 4)))
    assert abs(out.devices[0] - expect) < 1e-5
    assert abs(out.devices[2] - 20.0) < 1e-4  # 15 + 10 * sigmoid(0)
    np.testing.assert_allclose(out.attention.sum(axis=1), 1.0, atol=1e-4)
    assert int(np.argmax(out.attention[0])) == 0  # motion drove the light


def test_masked_channel_is_zero_and_ignored(bundle_dir: Path) -> None:
    """A masked channel contributes nothing and gets zero attention, NaN inputs included."""
    b = Bundle.load(bundle_dir)
    x = np.full((6, 16), np.nan, np.float32)
    x[1] = 5.0
    mask = np.array([0, 1, 0, 0, 0, 1], np.float32)
    out = b.run("int8", x, mask, np.arange(6))
    assert np.isfinite(out.devices).all()
    assert out.attention[0, 0] == 0.0 and out.attention[0, 2] == 0.0


def test_subset_of_channels_in_any_order(bundle_dir: Path) -> None:
    """A focused tier is fed a subset in any order; channel_ids keep identity."""
    b = Bundle.load(bundle_dir)
    x = np.array([[5.0] * 4, [1.0] * 4], np.float32)  # illuminance, motion
    out = b.run("focused", x, np.ones(2, np.float32), np.array([1, 0]))
    assert out.devices[0] > 0.9 and out.attention.shape == (3, 2)
    assert out.attention[0, 1] > out.attention[0, 0]


def test_sha_mismatch_names_file(tmp_path: Path) -> None:
    """A corrupted tier file is refused with its path and the fix."""
    d = home_bundle(tmp_path / "b")
    f = d / "model_coarse.onnx"
    f.write_bytes(f.read_bytes() + b"x")
    with pytest.raises(BundleError, match=r"model_coarse\.onnx: sha256 mismatch for tier 'coarse'.*re-copy"):
        Bundle.load(d)


def test_missing_and_bad_manifest(tmp_path: Path) -> None:
    """No manifest, invalid manifest, and an ONNX file that is not a model are each one clear error."""
    with pytest.raises(BundleError, match="manifest.json: missing"):
        Bundle.load(tmp_path)
    d = home_bundle(tmp_path / "b")
    m = json.loads((d / "manifest.json").read_text())
    del m["window"]
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="invalid manifest at window"):
        Bundle.load(d)
    d2 = home_bundle(tmp_path / "c", tiers=("full",))
    (d2 / "model_full.onnx").write_bytes(b"garbage")
    m = json.loads((d2 / "manifest.json").read_text())
    from edge_agent.manifest import sha256_file

    m["tiers"][0]["sha256"] = sha256_file(d2 / "model_full.onnx")
    (d2 / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="onnxruntime cannot load it"):
        Bundle.load(d2)


@pytest.mark.parametrize("step", [1e-300, 0.0, -1.0, 1e9])
def test_manifest_with_an_impossible_step_is_refused_naming_the_key(tmp_path: Path, step: float) -> None:
    b = home_bundle(tmp_path / "b")
    m = json.loads((b / "manifest.json").read_text())
    m["step_seconds"] = step
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="step_seconds"):
        Bundle.load(b)
