"""The import graph of ``src/s3dsi`` runs one way: no cycle between packages or modules, and no import
against the layer order.

The graph is built from the source with ``ast``: every ``import`` anywhere in a module counts, at module
level, inside functions (deferred imports still tie the packages together) and under ``TYPE_CHECKING``
(an annotation-only import is still a dependency a reader must follow; there are few, and none of them
needs to point upwards).

Layers, top to bottom; a module may import from its own package and from any package *below* its own,
never from above, and never from a peer on the same line:

* ``__main__`` → ``cli`` → ``daemon`` → ``server`` → ``transfer`` / ``security`` → ``storage`` /
  ``identity`` → ``protocol`` / ``config`` → ``observability`` → the root package (the version).

A new package has to be placed in ``LAYERS`` before its first import passes.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT_PACKAGE = "s3dsi"
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__main__",),
    ("cli",),
    ("daemon",),
    ("server",),
    ("transfer", "security"),
    ("storage", "identity"),
    ("protocol", "config"),
    ("observability",),
    ("",),  # the root package itself
)


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    line: int

    def __str__(self) -> str:
        return f"{self.importer}:{self.line} imports {self.imported}"


def module_names(src: Path, root: str) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the ``root`` package under ``src``."""
    modules: dict[str, Path] = {}
    for path in sorted((src / root).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def import_edges(src: Path, root: str) -> list[Edge]:
    """Every import of a module of ``root`` by a module of ``root``, wherever it is written."""
    modules = module_names(src, root)
    edges: list[Edge] = []
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = (_resolve_relative(module, is_package, node.level, node.module) if node.level
                        else node.module or "")
                # "from pkg import mod" imports the module pkg.mod; "from mod import name" imports mod
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in dict.fromkeys(targets):
                if target == root or target.startswith(f"{root}."):
                    edges.append(Edge(module, target, node.lineno))
    return edges


def package_of(module: str) -> str:
    """``s3dsi.server.handlers.login`` -> ``server``; the root package's own modules -> ``""`` or
    ``__main__``."""
    parts = module.split(".")
    if len(parts) == 1:
        return ""
    return parts[1]


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (or a self-loop), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:  # iterative Tarjan: the graph may be deep
        nonlocal counter
        work = [(start, iter(graph.get(start, ())))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(graph.get(succ, ()))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in graph.get(node, ()):
                        found.append(sorted(component))

    nodes = set(graph) | {n for succs in graph.values() for n in succs}
    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return sorted(found)


def package_cycles(edges: Iterable[Edge]) -> list[str]:
    graph: dict[str, set[str]] = defaultdict(set)
    witnesses: dict[tuple[str, str], Edge] = {}
    for edge in edges:
        a, b = package_of(edge.importer), package_of(edge.imported)
        if a != b:
            graph[a].add(b)
            witnesses.setdefault((a, b), edge)
    problems = []
    for component in cycles(graph):
        inside = sorted(str(witnesses[(a, b)]) for a in component for b in graph[a] if b in component)
        problems.append(f"packages {component} import each other: " + "; ".join(inside))
    return problems


def module_cycles(edges: Iterable[Edge]) -> list[str]:
    graph: dict[str, set[str]] = defaultdict(set)
    for edge in edges:
        if edge.importer != edge.imported:
            graph[edge.importer].add(edge.imported)
    return [f"modules import each other: {component}" for component in cycles(graph)]


def layer_violations(edges: Iterable[Edge], layers: tuple[tuple[str, ...], ...] = LAYERS) -> list[str]:
    rank = {package: level for level, line in enumerate(layers) for package in line}
    problems = []
    for edge in edges:
        a, b = package_of(edge.importer), package_of(edge.imported)
        if a == b:
            continue
        if a not in rank or b not in rank:
            problems.append(f"{edge}: package {a if a not in rank else b!r} has no place in LAYERS")
        elif rank[a] >= rank[b]:
            where = "a peer" if rank[a] == rank[b] else "a higher layer"
            problems.append(f"{edge}: {a or ROOT_PACKAGE!r} may not import {b or ROOT_PACKAGE!r} ({where})")
    return sorted(set(problems))


# -- the real tree -------------------------------------------------------------------------------------
def test_the_graph_sees_the_real_tree() -> None:
    """Guards the checker itself: if parsing silently found nothing, every other test would pass."""
    edges = import_edges(SRC, ROOT_PACKAGE)
    seen = {(e.importer, e.imported) for e in edges}
    assert ("s3dsi.server.session", "s3dsi.protocol.session") in seen
    assert ("s3dsi.__main__", "s3dsi.cli.main") in seen
    assert len(edges) > 300
    packages = {package_of(m) for m in module_names(SRC, ROOT_PACKAGE)}
    assert packages == {p for line in LAYERS for p in line}, "every package, and only those, in LAYERS"


def test_no_import_cycle_between_packages() -> None:
    assert package_cycles(import_edges(SRC, ROOT_PACKAGE)) == []


def test_no_import_cycle_between_modules() -> None:
    assert module_cycles(import_edges(SRC, ROOT_PACKAGE)) == []


def test_imports_follow_the_layer_order() -> None:
    assert layer_violations(import_edges(SRC, ROOT_PACKAGE)) == []


# -- the checker on small trees, so that it is known to fail when it should ------------------------------
def _tree(tmp_path: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_checker_finds_a_cycle_through_a_function_level_import(tmp_path: Path) -> None:
    src = _tree(tmp_path, {
        "__init__.py": "",
        "low/__init__.py": "",
        "low/a.py": "def f():\n    from pkg.high import b\n",
        "high/__init__.py": "",
        "high/b.py": "from pkg.low.a import f\n",
    })
    edges = import_edges(src, "pkg")
    assert {(e.importer, e.imported) for e in edges} == {("pkg.low.a", "pkg.high.b"),
                                                        ("pkg.high.b", "pkg.low.a")}
    assert len(package_cycles(edges)) == 1
    assert module_cycles(edges) == ["modules import each other: ['pkg.high.b', 'pkg.low.a']"]
    assert layer_violations(edges, (("high",), ("low",), ("",))) == [
        "pkg.low.a:2 imports pkg.high.b: 'low' may not import 'high' (a higher layer)"]


def test_checker_sees_type_checking_and_relative_imports(tmp_path: Path) -> None:
    src = _tree(tmp_path, {
        "__init__.py": "",
        "one/__init__.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.two import x\n",
        "two/__init__.py": "from ..one import y\nfrom . import z\n",
        "two/z.py": "",
    })
    edges = {(e.importer, e.imported) for e in import_edges(src, "pkg")}
    assert edges == {("pkg.one", "pkg.two"), ("pkg.two", "pkg.one"), ("pkg.two", "pkg.two.z")}
    assert layer_violations(import_edges(src, "pkg"), (("one", "two"), ("",))) == [
        "pkg.one:3 imports pkg.two: 'one' may not import 'two' (a peer)",
        "pkg.two:1 imports pkg.one: 'two' may not import 'one' (a peer)",
    ]


def test_checker_refuses_a_package_without_a_layer(tmp_path: Path) -> None:
    src = _tree(tmp_path, {"__init__.py": "", "a.py": "import pkg.new.thing\n",
                           "new/__init__.py": "", "new/thing.py": ""})
    assert layer_violations(import_edges(src, "pkg"), (("a",), ("",))) == [
        "pkg.a:1 imports pkg.new.thing: package 'new' has no place in LAYERS"]
