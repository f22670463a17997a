"""The imports inside ``edgepose/``: no cycle, and no module imports one of a higher layer.

Module-level and function-level imports count alike (a function-level import is a dependency that runs
later). Code under ``if __name__ == "__main__":`` is an entry point (``python -m``) and belongs to the
command layer, whatever module it sits in.

Layers, lowest first; a module may import its own layer and those below:

0. base: the data model and helpers everything shares (types, errors, geometry, paths, systemd, ...);
1. config sections: each section's model beside its code (``<package>/config.py``, ``mqtt/config.py`` too),
   and board profiles (files, no validation);
2. the whole config (``edgepose.config``: the sections together, defaults < profile < file) and what is
   derived from it alone: its check (``config_check``) and the config reference in the guides (``docgen``);
3. core: decoding (and its numba helper ``jit``), models, tracking, sources, relocalization;
4. consumers of poses: actions, sinks, MQTT, drawing;
5. the pipeline (source -> model -> tracker -> actions);
6. front ends the service runs or that stand beside it: the web pages, provisioning;
7. the device service;
8. commands: ``edgepose`` sub-commands and ``python -m`` entry points.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

MAIN = "__main__ block"  # suffix of the pseudo-module holding a module's `if __name__ == "__main__":` code

#: Module name (or package prefix) -> layer; the longest matching entry wins.
LAYERS: dict[str, int] = {
    "edgepose": 0,
    "edgepose.types": 0,
    "edgepose.errors": 0,
    "edgepose.geometry": 0,
    "edgepose.config_base": 0,
    "edgepose.paths": 0,
    "edgepose.systemd": 0,
    "edgepose.fps": 0,
    "edgepose.tflogs": 0,
    "edgepose.preprocess": 0,
    "edgepose.decoder_settings": 0,
    "edgepose.redact": 0,
    "edgepose.net": 0,
    "edgepose.progress": 0,
    "edgepose.config_check": 2,
    "edgepose.docgen": 2,
    "edgepose.actions.config": 1,
    "edgepose.relocalization.config": 1,
    "edgepose.sources.config": 1,
    "edgepose.tracking.config": 1,
    "edgepose.web.config": 1,
    "edgepose.mqtt.config": 1,
    "edgepose.profiles": 1,
    "edgepose.config": 2,
    "edgepose.jit": 3,
    "edgepose.decode": 3,
    "edgepose.model": 3,
    "edgepose.tracking": 3,
    "edgepose.sources": 3,
    "edgepose.relocalization": 3,
    "edgepose.actions": 4,
    "edgepose.sinks": 4,
    "edgepose.mqtt": 4,
    "edgepose.draw": 4,
    "edgepose.pipeline": 5,
    "edgepose.web": 6,
    "edgepose.provision": 6,
    "edgepose.service": 7,
    "edgepose.cli": 8,
    "edgepose.__main__": 8,
}
COMMANDS = 8


def modules(root: Path) -> dict[str, Path]:
    """Dotted name -> file for every module of the package at ``root``."""
    out = {}
    for f in sorted(root.rglob("*.py")):
        parts = f.relative_to(root.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _is_main_guard(node: ast.stmt) -> bool:
    t = node.test if isinstance(node, ast.If) else None
    return (
        isinstance(t, ast.Compare)
        and isinstance(t.left, ast.Name)
        and t.left.id == "__name__"
        and len(t.comparators) == 1
        and isinstance(t.comparators[0], ast.Constant)
        and t.comparators[0].value == "__main__"
    )


def _targets(name: str, is_pkg: bool, node: ast.Import | ast.ImportFrom, known: dict[str, Path]) -> set[str]:
    """The package's modules an import statement in module ``name`` loads (the longest known prefix of each)."""
    if isinstance(node, ast.Import):
        wanted = [a.name for a in node.names]
    else:
        if node.level:
            base = name.split(".") if is_pkg else name.split(".")[:-1]
            base = base[: len(base) - node.level + 1]
            mod = ".".join(base + ([node.module] if node.module else []))
        else:
            mod = node.module or ""
        # `from pkg import sub` loads pkg.sub when it is a module, else a name of pkg itself.
        wanted = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
    out = set()
    for w in wanted:
        while w and w not in known:
            w = w.rpartition(".")[0]
        if w and w != name:
            out.add(w)
    return out


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (anywhere in it); ``<module>:__main__ block`` for entry-point code."""
    known = modules(root)
    graph: dict[str, set[str]] = {}
    for name, f in known.items():
        tree = ast.parse(f.read_text(encoding="utf-8"))
        is_pkg = f.name == "__init__.py"
        graph[name] = set()
        for top in tree.body:
            owner = f"{name}:{MAIN}" if _is_main_guard(top) else name
            for node in ast.walk(top):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    graph.setdefault(owner, set()).update(_targets(name, is_pkg, node, known))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def layer(name: str, layers: dict[str, int]) -> int:
    if name.endswith(f":{MAIN}"):
        return COMMANDS
    match = max((k for k in layers if name == k or name.startswith(k + ".")), key=len, default=None)
    if match is None:
        raise KeyError(f"{name} has no layer: add it to LAYERS in tests/test_imports.py")
    return layers[match]


def upward(graph: dict[str, set[str]], layers: dict[str, int]) -> list[str]:
    return sorted(
        f"{a} (layer {layer(a, layers)}) -> {b} (layer {layer(b, layers)})"
        for a, deps in graph.items()
        for b in deps
        if layer(b, layers) > layer(a, layers)
    )


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(REPO / "edgepose")


def test_every_module_has_a_layer(graph):
    for name in graph:
        layer(name, LAYERS)


def test_no_import_cycle(graph):
    assert cycles(graph) == []


def test_no_upward_import(graph):
    assert upward(graph, LAYERS) == []


def test_the_walker_sees_function_level_imports_and_main_blocks(graph):
    assert "edgepose.tracking" in graph["edgepose.pipeline"]  # imported inside Pipeline.__init__
    assert "edgepose.config" in graph["edgepose.cli.profiles"]  # inside run()
    assert graph[f"edgepose.profiles:{MAIN}"] == {"edgepose.cli.profiles"}
    assert "edgepose.cli.profiles" not in graph["edgepose.profiles"]


def test_the_checks_fail_on_a_cycle_and_an_upward_import(tmp_path):
    pkg = tmp_path / "edgepose"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .sub import c\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("import edgepose.a\n")
    g = import_graph(pkg)
    assert cycles(g) == [["edgepose.a", "edgepose.b", "edgepose.sub.c"]]
    assert upward(g, {"edgepose": 0, "edgepose.sub": 1}) == ["edgepose.b (layer 0) -> edgepose.sub.c (layer 1)"]
