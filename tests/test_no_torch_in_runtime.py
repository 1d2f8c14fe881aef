"""The runtime (`edge_agent/`) never imports torch, `training` or the simulator: the daemon starts fast and small.

The one allowed mention of the simulator is the lazy import behind `edge-agent demo` in `cli.py`."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import edge_agent

RUNTIME = Path(edge_agent.__file__).parent
FORBIDDEN = ("torch", "training", "pandas", "sklearn", "simhome")
LAZY_ALLOWED = {("cli.py", "simhome")}  # `edge-agent demo` only

PROBE = """
import importlib, json, pkgutil, sys
FORBIDDEN = FORBIDDEN_NAMES
import edge_agent
names = ["edge_agent"]
for m in pkgutil.walk_packages(edge_agent.__path__, "edge_agent."):
    names.append(m.name)
for n in names:
    if n.endswith("__main__"):
        continue
    importlib.import_module(n)
bad = sorted(k for k in sys.modules if k.split(".")[0] in FORBIDDEN)
print(json.dumps({"imported": names, "forbidden": bad}))
"""


def test_importing_every_runtime_module_pulls_no_torch() -> None:
    """In a fresh interpreter, importing every module under edge_agent/ leaves torch/training unloaded."""
    r = subprocess.run(
        [sys.executable, "-c", PROBE.replace("FORBIDDEN_NAMES", repr(FORBIDDEN))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert "edge_agent.manifest" in out["imported"]
    assert out["forbidden"] == [], f"runtime imports {out['forbidden']}"


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_no_runtime_source_file_mentions_a_forbidden_import() -> None:
    """Static scan: no `import torch` / `from training ...` anywhere in edge_agent/, even lazily in a function (but the demo)."""
    files = sorted(RUNTIME.rglob("*.py"))
    assert files
    found = [
        (str(f.relative_to(RUNTIME)), n) for f in files for n in _imports(f) if n.split(".")[0] in FORBIDDEN
    ]
    bad = [(f, n) for f, n in found if (f, n.split(".")[0]) not in LAZY_ALLOWED]
    assert bad == []
    assert ("cli.py", "simhome") in found  # the demo's lazy import is still how `edge-agent demo` finds it
