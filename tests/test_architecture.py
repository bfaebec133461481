"""The package's structure (docs/architecture.md): layers, no import cycles, no huge files.

Every ``import`` of a ``regnn`` module counts, at module level or inside a function: a lazy
import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "regnn"

#: lowest first; a module may import its own layer and the layers below
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("regnn", "regnn.errors", "regnn.schema", "regnn.utils", "regnn.mkl",
                    "regnn.config", "regnn.configs")),
    ("data and metrics", ("regnn.data", "regnn.metrics")),
    ("models", ("regnn.models",)),
    ("pipelines", ("regnn.results", "regnn.evaluate", "regnn.generate", "regnn.train",
                   "regnn.references", "regnn.api", "regnn.report", "regnn.render",
                   "regnn.bench", "regnn.online", "regnn.fid", "regnn.export",
                   "regnn.export_graphs")),
    ("commands", ("regnn.commands", "regnn.cli", "regnn.__main__")),
)
#: deliberately unrolled numba kernels may be longer
LONG_FILES_ALLOWED = {"metrics/dtw.py"}
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    mods = {}
    for f in SRC.rglob("*.py"):
        parts = f.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = f
    return mods


def _graph() -> dict[str, set[str]]:
    mods = _modules()

    def owner(name: str) -> str:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                deps |= {owner(a.name) for a in node.names if a.name.startswith("regnn")}
            elif (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                  and node.module.startswith("regnn")):
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    deps.add(full if full in mods else owner(node.module))
        deps.discard(name)
        deps.discard("regnn")  # the package's own __init__ (version only)
        graph[name] = deps
    return graph


def layer_of(module: str) -> int:
    best, depth = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > depth:
                best, depth = i, len(p)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS (and "
                             "docs/architecture.md)")
    return best


def test_every_module_has_a_layer_and_imports_only_downwards():
    upward = []
    for mod, deps in _graph().items():
        for dep in deps:
            if layer_of(dep) > layer_of(mod):
                upward.append(f"{mod} ({LAYERS[layer_of(mod)][0]}) imports {dep} "
                              f"({LAYERS[layer_of(dep)][0]})")
    assert not upward, "\n".join(sorted(upward))


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state and (cycle := visit(w)):
                return cycle
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state and (cycle := visit(v)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_no_file_is_over_500_lines():
    long = {str(f.relative_to(SRC)): n for f in SRC.rglob("*.py")
            if (n := len(f.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert set(long) <= LONG_FILES_ALLOWED, long


def test_the_checker_sees_a_cycle_and_an_upward_import(monkeypatch):
    """The checks above can fail: a made-up graph with both defects is caught."""
    import sys

    fake = {"regnn.data.a": {"regnn.models.b"}, "regnn.models.b": {"regnn.data.a"}}
    monkeypatch.setattr(sys.modules[__name__], "_graph", lambda: fake)
    with pytest.raises(AssertionError, match="regnn.data.a .* imports regnn.models.b"):
        test_every_module_has_a_layer_and_imports_only_downwards()
    with pytest.raises(pytest.fail.Exception, match="import cycle"):
        test_the_import_graph_has_no_cycle()
