"""Int8 that pays, honestly labelled: the chooser (training.quantize), the manifest's quantization record and
`python -m training requantize` on a copy of the demo bundle (idempotent, the runtime still loads it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pydantic
import pytest

from edge_agent.inference import Bundle
from edge_agent.manifest import Quantization, TierSpec, read_manifest, sha256_file, write_manifest
from tests.test_export import _trained
from training.cli import main
from training.export import export_onnx
from training.quantize import choose, graph_counts, timing_inputs
from training.requantize import requantize

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "simhome" / "demo_bundle"


def _q(nodes: int, method: str = "dynamic") -> Quantization:
    return Quantization(method=method, quantized_nodes=nodes, quantizable_nodes=9, total_nodes=100)


def test_an_unpaid_int8_tier_is_never_on_the_ladder() -> None:
    """Quantization found nothing that pays: the int8 tier is fp32 and the ladder skips it, offered or not."""
    man = read_manifest(DEMO)
    unpaid = man.tier("int8").model_copy(
        update={"precision": "fp32", "quantization": _q(0, "none"), "offered": True}
    )
    tiers = [unpaid if t.name == "int8" else t for t in man.tiers]
    ladder = man.model_copy(update={"tiers": tiers}).ladder()
    assert "int8" not in ladder and ladder[0] == "full"
    assert "int8" in man.ladder()  # the demo bundle's dynamic int8 pays


def test_precision_must_match_the_int8_nodes() -> None:
    """A float graph cannot be labelled int8, nor an int8 graph fp32."""
    base = {"name": "int8", "file": "int8.onnx", "sha256": "0" * 64}
    TierSpec(**base, precision="int8", quantization=_q(3))
    TierSpec(**base, precision="fp32", quantization=_q(0))
    with pytest.raises(pydantic.ValidationError, match="precision int8 but 0 int8 nodes"):
        TierSpec(**base, precision="int8", quantization=_q(0))
    with pytest.raises(pydantic.ValidationError, match="precision fp32 but 3 int8 nodes"):
        TierSpec(**base, precision="fp32", quantization=_q(3))


@pytest.fixture(scope="module")
def fp32_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(_trained(64, 8, steps=20), tmp_path_factory.mktemp("q") / "full.onnx")


def test_choose_keeps_dynamic_when_it_pays(fp32_file: Path, tmp_path: Path) -> None:
    """With no latency limit and full agreement the most-int8 candidate is kept and its nodes counted."""
    feeds = timing_inputs(fp32_file, 5, n=4)
    q = choose(fp32_file, tmp_path / "int8.onnx", lambda p: 1.0, feeds, runs=20, max_ratio=float("inf"))
    assert q.method == "dynamic" and q.rejected == {}
    ops = [n.op_type for n in onnx.load(str(tmp_path / "int8.onnx")).graph.node]
    assert q.quantized_nodes == ops.count("MatMulInteger") > 0
    assert q.quantizable_nodes > q.quantized_nodes  # the K <= 16 MatMuls stay float
    assert q.total_nodes == len(onnx.load(str(fp32_file)).graph.node)


def test_choose_falls_back_to_fp32_when_nothing_pays(fp32_file: Path, tmp_path: Path) -> None:
    """Too slow (limit 0) or disagreeing: the file is the fp32 graph and the record says none, 0 int8."""
    feeds = timing_inputs(fp32_file, 5, n=4)
    slow = choose(fp32_file, tmp_path / "a.onnx", lambda p: 1.0, feeds, runs=20, max_ratio=0.0)
    assert slow.method == "none" and slow.quantized_nodes == 0
    assert set(slow.rejected) == {"dynamic", "dynamic-large"}
    assert (tmp_path / "a.onnx").read_bytes() == fp32_file.read_bytes()
    bad = choose(fp32_file, tmp_path / "b.onnx", lambda p: 0.9, feeds, runs=20, max_ratio=float("inf"))
    assert bad.method == "none" and all("agreement 0.9000" in r for r in bad.rejected.values())
    assert graph_counts(fp32_file, tmp_path / "b.onnx")[0] == 0


def test_requantize_demo_bundle_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """On a copy of the demo bundle: every quantized tier says what is int8, the runtime loads it, and a
    second run writes nothing."""
    b = tmp_path / "bundle"
    shutil.copytree(DEMO, b)
    assert main(["requantize", "--bundle", str(b), "--runs", "200"]) == 0
    man = read_manifest(b)
    for t in man.tiers:
        if t.name == "full":
            continue
        q = t.quantization
        assert q is not None, t.name
        assert q.quantized_nodes == graph_counts(b / "full.onnx", b / t.file)[0] or t.file != "int8.onnx"
        assert (t.precision == "int8") == (q.quantized_nodes > 0)
    i8 = man.tier("int8")
    assert i8.quantization is not None
    if i8.quantization.method == "none":
        assert not i8.offered and "int8" not in man.ladder()
    else:
        assert i8.quantization.agreement_vs_fp32 is not None and i8.quantization.agreement_vs_fp32 >= 0.995
    Bundle.load(b)
    first = (b / "manifest.json").read_bytes()
    capsys.readouterr()
    assert main(["requantize", "--bundle", str(b), "--runs", "200"]) == 0
    assert "files unchanged" in capsys.readouterr().out
    assert (b / "manifest.json").read_bytes() == first


def test_requantize_bad_bundle_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["requantize", "--bundle", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no such bundle directory" in err and len(err.splitlines()) == 1


def test_requantize_replaces_a_float_graph_called_int8(tmp_path: Path) -> None:
    """A bundle whose int8 file is the fp32 graph: requantize rewrites it, re-checks agreement on the given
    windows, drops the stale event check, and the tier's precision says what the new file is."""
    b = tmp_path / "bundle"
    shutil.copytree(DEMO, b)
    shutil.copyfile(b / "full.onnx", b / "int8.onnx")
    man = read_manifest(b)
    tiers = [
        t.model_copy(update={"sha256": sha256_file(b / "int8.onnx")}) if t.name == "int8" else t
        for t in man.tiers
    ]
    write_manifest(b, man.model_copy(update={"tiers": tiers}))
    rng = np.random.default_rng(3)
    c = len(man.channels)
    pool = (
        rng.standard_normal((256, c, man.window)).astype(np.float32),
        np.ones((256, c), np.float32),
        np.broadcast_to(np.arange(c, dtype=np.int64), (256, c)).copy(),
    )
    res = requantize(b, runs=200, latency_runs=50, pool=pool)
    new = read_manifest(b)
    i8 = new.tier("int8")
    q = i8.quantization
    assert q is not None and "int8.onnx" in res.changed
    assert q.quantized_nodes == graph_counts(b / "full.onnx", b / "int8.onnx")[0]
    assert (i8.precision == "int8") == (q.method != "none") == (q.quantized_nodes > 0)
    assert i8.event_check is None and i8.sha256 == sha256_file(b / "int8.onnx")
    if q.method != "none":
        assert q.agreement_vs_fp32 is not None and q.agreement_vs_fp32 >= 0.995
        assert new.metrics["int8_agreement_val"] == pytest.approx(q.agreement_vs_fp32, abs=1e-5)
    Bundle.load(b)
