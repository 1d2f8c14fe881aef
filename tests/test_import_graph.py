"""No import cycle among the modules of `training/` and `edge_agent/` (top-level and function-level imports).

The graph is built from the source (AST), not by importing: `import a.b`, `from a import b` (an edge to
`a.b` when it is a module, else to `a`) and relative imports all count, wherever they stand in a file. A
package's implicit import of its parent `__init__` is not an edge (Python resolves that without a cycle).
"""

from __future__ import annotations

import ast
from pathlib import Path

import edge_agent
import training

ROOTS = (Path(edge_agent.__file__).parent, Path(training.__file__).parent)


def _module_name(path: Path, root: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p, r): p for r in ROOTS for p in sorted(r.rglob("*.py"))}


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the modules of `modules` it imports (anywhere in the file)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*up, base] if base else up)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in modules:  # `import a.b.c` of a non-module attribute -> nearest module
                    t = t.rpartition(".")[0]
                if t and t != name:
                    deps.add(t)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle [a, b, ..., a] of the directed graph, or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if m not in state and (c := visit(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_the_cycle_finder_finds_one() -> None:
    """The checker itself: a planted cycle (through a function-level import) is found and printed in order."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    """`from pkg.x import f` inside a function and `from . import y` both make edges."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "x.py").write_text("def f():\n    from pkg.y import g\n    return g\n")
    (pkg / "y.py").write_text("from . import x\n")
    mods = {_module_name(p, pkg): p for p in sorted(pkg.rglob("*.py"))}
    graph = import_graph(mods)
    assert graph["pkg.x"] == {"pkg.y"} and graph["pkg.y"] == {"pkg.x"}
    assert find_cycle(graph) == ["pkg.x", "pkg.y", "pkg.x"]


def test_no_import_cycle_in_training_and_edge_agent() -> None:
    """training -> edge_agent only, and no module of either imports itself back through others."""
    graph = import_graph(_modules())
    assert "training.evaluate" in graph and "edge_agent.inference" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
