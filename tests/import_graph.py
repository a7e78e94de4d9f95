"""The import graph of the project's packages, read with `ast` (nothing is imported), and its rules.

Every import counts: module level, inside functions and under `TYPE_CHECKING`, since each is a
dependency someone has to follow. Rules (tests/test_import_graph.py):
- no cycle between modules;
- no import that runs back up: a module may import modules of its own package, of sibling and
  child packages, never a module that sits directly in one of its ancestor packages (nor the
  ancestor's `__init__`);
- the sub-packages of one top-level package form no cycle either;
- top-level packages depend one way only (host -> export -> pipeline).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

LAYERS = ("pipeline", "export", "host")  # each may import only those before it


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool  # an __init__.py

    @property
    def package(self) -> str:
        """The package this module's code sits in (a package's __init__ sits in the package itself)."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


@dataclass
class ImportGraph:
    modules: dict[str, Module] = field(default_factory=dict)
    edges: dict[str, dict[str, int]] = field(default_factory=dict)  # importer -> imported -> line


def _modules(root: Path, packages: tuple[str, ...]) -> dict[str, Module]:
    mods = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_pkg else parts)
            mods[name] = Module(name, path, is_pkg)
    return mods


def _targets(mod: Module, node: ast.Import | ast.ImportFrom, known: dict[str, Module]) -> list[str]:
    """The project modules an import statement reaches (a package's __init__ when a name is not a module)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            base = mod.package.split(".")
            base = base[: len(base) - (node.level - 1)]
            origin = ".".join(base + ([node.module] if node.module else []))
        else:
            origin = node.module or ""
        names = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in known else origin for a in node.names]
    out = []
    for name in names:
        while name and name not in known and "." in name:
            name = name.rpartition(".")[0]
        if name in known and name != mod.name:
            out.append(name)
    return out


def read_graph(root: Path, packages: tuple[str, ...] = LAYERS) -> ImportGraph:
    graph = ImportGraph(_modules(root, packages))
    for mod in graph.modules.values():
        tree = ast.parse(mod.path.read_text(), filename=str(mod.path))
        deps: dict[str, int] = {}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(mod, node, graph.modules):
                    deps.setdefault(target, node.lineno)
        graph.edges[mod.name] = deps
    return graph


def cycles(edges: dict[str, set[str]] | dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def upward_imports(graph: ImportGraph) -> list[str]:
    """'importer:line -> imported' for every import of a module that sits in an ancestor package."""
    bad = []
    for name, deps in sorted(graph.edges.items()):
        mod = graph.modules[name]
        ancestors = mod.package.split(".")
        ancestor_pkgs = {".".join(ancestors[:i]) for i in range(1, len(ancestors))}
        for target, line in sorted(deps.items()):
            t = graph.modules[target]
            if t.package in ancestor_pkgs or (t.is_package and t.name in ancestor_pkgs):
                bad.append(f"{mod.path}:{line} -> {target}")
    return bad


def package_edges(graph: ImportGraph, top: str) -> dict[str, set[str]]:
    """Sub-package -> sub-packages it imports, for the direct sub-packages of `top`."""
    def sub(name: str) -> str | None:
        parts = name.split(".")
        if parts[0] != top or len(parts) < 2:
            return None
        pkg = ".".join(parts[:2])
        return pkg if pkg in graph.modules and graph.modules[pkg].is_package else None

    out: dict[str, set[str]] = {}
    for name, deps in graph.edges.items():
        a = sub(name)
        if a is None:
            continue
        for target in deps:
            b = sub(target)
            if b is not None and b != a:
                out.setdefault(a, set()).add(b)
    return out


def layer_violations(graph: ImportGraph, layers: tuple[str, ...] = LAYERS) -> list[str]:
    """'importer:line -> imported' where a top-level package imports one that comes after it."""
    rank = {p: i for i, p in enumerate(layers)}
    bad = []
    for name, deps in sorted(graph.edges.items()):
        for target, line in sorted(deps.items()):
            a, b = name.split(".")[0], target.split(".")[0]
            if a in rank and b in rank and rank[b] > rank[a]:
                bad.append(f"{graph.modules[name].path}:{line} -> {target}")
    return bad
