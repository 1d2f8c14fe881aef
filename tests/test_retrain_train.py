"""The retrain through the real training child on a home's log (real SQLite, torch in the child only): a first
model is promoted with no champion; the next retrain scores the champion on the challenger's held-out days in
the same child (champion_* metrics, the runtime's decision rule), warm-starts from it, and the gate's verdict
compares both per device; whatever it decides, the store stays consistent and the right version serves."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from homelog import generated_log, home_config
from test_retrain import consistent

from edge_agent.bundlestore import BundleStore
from edge_agent.config import load_config
from edge_agent.manifest import read_manifest
from edge_agent.retrain import Retrainer

FAST = ["--epochs", "2", "--max-windows-per-epoch", "384", "--window", "32", "--d", "16", "--batch", "64"]
FAST += ["--latency-runs", "10", "--no-progress"]


@pytest.mark.slow
def test_first_model_then_a_gated_challenger(tmp_path: Path) -> None:
    path = home_config(tmp_path)
    url, _ = generated_log(path, days=7, seed=1)
    cfg = load_config(path)
    cfg.learning.retrain.min_new_labels = 0
    argv = [sys.executable, "-m", "training", "-v", "train", "--dataset", f"db:{url}", "--holdout-days", "2"]
    argv += [*FAST, "--out", "{out}"]
    lines: list[str] = []
    first = Retrainer(cfg, argv=argv, on_line=lines.append).run("manual")
    assert first.outcome == "promoted" and "first model" in first.reason, first.reason
    store = BundleStore(cfg.bundle_store)
    assert store.current_name() == first.challenger
    assert not any("warm start from" in ln for ln in lines)

    lines.clear()
    argv[argv.index("--out") - 1 : argv.index("--out") - 1] = ["--seed", "1"]  # another version name
    second = Retrainer(cfg, argv=argv, on_line=lines.append).run("manual")
    assert second.outcome in ("promoted", "kept"), second.reason
    assert second.champion == first.challenger and second.challenger not in (None, first.challenger)
    assert any("warm start from" in ln and "model.pt" in ln for ln in lines), lines[-20:]
    verdict = second.detail["verdict"]
    light = verdict["devices"]["living.light"]
    assert 0 <= light["champion"] <= 1 and 0 <= light["challenger"] <= 1 and light["labels"] > 0
    assert verdict["promote"] == (second.outcome == "promoted")
    names = consistent(store)
    assert set(names) == {first.challenger, second.challenger}
    serving = second.challenger if second.outcome == "promoted" else first.challenger
    assert store.current_name() == serving
    m = read_manifest(store.root / str(second.challenger)).metrics
    assert m["champion_evaluated"] == 1.0 and "champion_holdout_agreement.living.light" in m
    assert m["data_end"] > 0
    h = json.loads((store.root / "store.json").read_text())
    assert h[str(second.challenger)]["parent"] == first.challenger
