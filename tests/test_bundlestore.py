"""The bundle store on a real directory: install/current, list, rollback, prune, corrupt and half-written
bundles, a write error during the copy, and the daemon-side watcher."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from testbundle import home_bundle

from edge_agent.bundlestore import INCOMING, BundleStore, BundleWatcher, StoreError, safe_name
from edge_agent.config import ConfigError
from edge_agent.inference import Bundle
from edge_agent.manifest import read_manifest, write_manifest

ROOT = Path(__file__).resolve().parents[1]


def make(tmp: Path, version: str, **metrics: float) -> Path:
    path = home_bundle(tmp / "src" / safe_name(version), version=version)
    if metrics:
        m = read_manifest(path)
        write_manifest(path, m.model_copy(update={"metrics": metrics}))
    return path


def test_install_makes_current_and_lists(tmp_path: Path) -> None:
    store = BundleStore(tmp_path / "bundles")
    assert store.current_name() is None and store.versions() == []
    a = store.install(make(tmp_path, "v:1", **{"val_balanced_accuracy.living.light": 0.9}), source="train")
    assert a.current and a.name == "v-1" and a.version == "v:1" and a.source == "train" and a.parent is None
    assert os.readlink(tmp_path / "bundles" / "current") == "v-1"  # relative symlink
    b = store.install(make(tmp_path, "v2"))
    assert store.current_name() == "v2" and b.parent == "v-1"
    listed = store.versions()
    assert [(v.name, v.current) for v in listed] == [("v-1", False), ("v2", True)]
    assert listed[0].outcome == "replaced by v2" and listed[1].outcome == "in service"
    assert listed[0].summary() == "living.light val_balanced_accuracy 0.900"
    assert Bundle.load(tmp_path / "bundles" / "current").version == "v2"
    history = json.loads((tmp_path / "bundles" / "store.json").read_text())
    assert history["v2"]["parent"] == "v-1"
    with pytest.raises(StoreError, match="already in the store"):
        store.install(make(tmp_path, "v2"))


def test_rollback_and_prune_never_remove_current(tmp_path: Path) -> None:
    store = BundleStore(tmp_path / "bundles")
    for v in ("a", "b", "c", "d"):
        store.install(make(tmp_path, v))
    info = store.rollback("b")
    assert info.current and store.current_name() == "b"
    assert {v.name: v.outcome for v in store.versions()}["d"] == "rolled back to b"
    with pytest.raises(StoreError, match="no version 'zz'"):
        store.rollback("zz")
    assert store.current_name() == "b"
    removed = store.prune(2)  # keeps the two newest (c, d) and the current one (b)
    assert removed == ["a"]
    assert [v.name for v in store.versions()] == ["b", "c", "d"]
    assert store.prune(1) == ["c"] and store.current_name() == "b"


def test_corrupt_bundle_refused_current_unchanged(tmp_path: Path) -> None:
    store = BundleStore(tmp_path / "bundles")
    store.install(make(tmp_path, "good"))
    bad = make(tmp_path, "bad")
    f = bad / "model_int8.onnx"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip one byte
    f.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="good stays in service: .*model_int8.onnx: sha256 mismatch") as e:
        store.install(bad)
    assert "\n" not in str(e.value)
    assert store.current_name() == "good" and [v.name for v in store.versions()] == ["good"]
    assert not [p for p in (tmp_path / "bundles").iterdir() if p.name.startswith(INCOMING)]


def test_unrunnable_bundle_refused_by_test_inference(tmp_path: Path) -> None:
    """sha256 all right, but a tier that is not ONNX: the test inference refuses it; nothing is left behind."""
    store = BundleStore(tmp_path / "bundles")
    store.install(make(tmp_path, "good"))
    bad = make(tmp_path, "garbage")
    m = read_manifest(bad)
    (bad / "model_full.onnx").write_bytes(b"not an onnx model")
    from edge_agent.manifest import sha256_file

    tiers = [t.model_copy(update={"sha256": sha256_file(bad / t.file)}) for t in m.tiers]
    write_manifest(bad, m.model_copy(update={"tiers": tiers}))
    with pytest.raises(StoreError, match="onnxruntime cannot load it"):
        store.install(bad)
    assert store.current_name() == "good"
    assert sorted(p.name for p in (tmp_path / "bundles").iterdir()) == [
        ".lock",
        "current",
        "good",
        "store.json",
    ]


def test_half_written_dir_ignored_and_cleaned(tmp_path: Path) -> None:
    store = BundleStore(tmp_path / "bundles")
    store.install(make(tmp_path, "one"))
    crashed = tmp_path / "bundles" / f"{INCOMING}abc123"  # what a crash in the middle of a copy leaves
    crashed.mkdir()
    (crashed / "manifest.json").write_text('{"version": "half"')
    assert [v.name for v in store.versions()] == ["one"]
    watcher = BundleWatcher(tmp_path / "bundles", serving="one")
    assert watcher.check() is None
    store.install(make(tmp_path, "two"))
    assert not crashed.exists() and store.current_name() == "two"


def test_write_error_during_copy_removes_temp_dir(tmp_path: Path) -> None:
    """A real write failure (file size limit in a child process, the same OSError path as a full disk)."""
    store_dir = tmp_path / "bundles"
    BundleStore(store_dir).install(make(tmp_path, "before"))
    src = make(tmp_path, "big")
    code = (
        "import resource, signal, sys\n"
        "from edge_agent.bundlestore import BundleStore, StoreError\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (600, 600))\n"
        "try:\n"
        f"    BundleStore({str(store_dir)!r}).install({str(src)!r})\n"
        "except StoreError as e:\n"
        "    print(e); sys.exit(2)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2, r.stderr
    line = r.stdout.strip()
    assert "\n" not in line and "file size limit" in line and "temporary directory was removed" in line
    assert "before stays in service" in line
    store = BundleStore(store_dir)
    assert store.current_name() == "before" and [v.name for v in store.versions()] == ["before"]
    assert not [p for p in store_dir.iterdir() if p.name.startswith(INCOMING)]


def test_watcher_swaps_once_and_refuses_a_broken_version_by_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = BundleStore(tmp_path / "bundles")
    watcher = BundleWatcher(tmp_path / "bundles", serving=None)  # nothing in service yet (observe)
    assert watcher.check() is None  # no current
    store.install(make(tmp_path, "first"))
    b = watcher.check()
    assert b is not None and b.version == "first" and b.path == tmp_path / "bundles" / "first"
    assert watcher.check() is None  # same version: nothing to do
    store.install(make(tmp_path, "second"))
    f = tmp_path / "bundles" / "second" / "model_full.onnx"  # damaged after install
    f.write_bytes(f.read_bytes()[:-10])
    with caplog.at_level("WARNING"):
        assert watcher.check() is None
        assert watcher.check() is None
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1 and "second" in refusals[0] and "first stays in service" in refusals[0]
    store.install(make(tmp_path, "third"))
    b3 = watcher.check()
    assert b3 is not None and b3.version == "third"


def test_watcher_accept_hook_refuses_a_bundle_that_does_not_fit(tmp_path: Path) -> None:
    store = BundleStore(tmp_path / "bundles")
    store.install(make(tmp_path, "x"))

    def accept(_b: Bundle) -> None:
        raise ConfigError("devices[1].values: 2 values for the 4 levels of 'bedroom.fan'")

    watcher = BundleWatcher(tmp_path / "bundles", serving="w", accept=accept)
    assert watcher.check() is None and watcher.refused == {"x"} and watcher.serving == "w"
