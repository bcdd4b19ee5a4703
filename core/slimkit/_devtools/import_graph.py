"""The import graph of the slimkit package, read from its source (no module is imported), and its cycles.

    python -m slimkit._devtools.import_graph [--all] [--root DIR]

prints each module with the modules of the package it imports, then every cycle, and exits 1 when
there is one. The rule it checks is in docs/architecture.md ("Import layers"):

- ``import`` edges, the imports that run when the module is imported (at module level, in a class
  body, in a module-level ``try`` or ``if``), must not form a cycle.
- ``type`` edges (under ``if TYPE_CHECKING:``) and ``deferred`` edges (inside a function) never run
  at import time, so they cannot leave a module half-initialized: they are printed, marked, but
  not counted, unless ``--all`` is given.

``from package import name`` is an edge to ``package.name`` when that is a module (``from slimkit
import store``), otherwise to the package itself. Importing ``a.b.c`` first runs ``a/__init__`` and
``a/b/__init__``: edges to those packages are added too, except to the packages that contain the
importing module, which are initialized before it runs. Imports by name at run time
(``importlib.import_module``) are not seen.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("import", "deferred", "type")  # in order of precedence: a function under TYPE_CHECKING is "type"


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: str  # one of KINDS
    line: int  # where the source module imports the target


@dataclass
class Graph:
    root: Path  # the package folder
    modules: dict[str, Path]  # dotted name -> file (a package's __init__.py)
    edges: list[Edge] = field(default_factory=list)

    def targets(self, source: str, kinds: Collection[str]) -> list[str]:
        return sorted({e.target for e in self.edges if e.source == source and e.kind in kinds})


def find_modules(root: Path) -> dict[str, Path]:
    """Every module under the package folder ``root``, by dotted name (``root``'s name first)."""
    modules: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        if all(p.isidentifier() for p in parts):
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Collector(ast.NodeVisitor):
    """The edges of one module; ``kind`` is the kind of the statements being visited."""

    def __init__(self, module: str, is_package: bool, modules: Collection[str]) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.modules = modules
        self.kind = "import"
        self.edges: list[Edge] = []

    def _within(self, kind: str, nodes: Iterable[ast.AST]) -> None:
        outer = self.kind
        self.kind = max(outer, kind, key=KINDS.index)
        for node in nodes:
            self.visit(node)
        self.kind = outer

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._within("deferred", node.body)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._within("deferred", node.body)

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self._within("type", node.body)
        self._within(self.kind, node.orelse)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(self._known(alias.name), node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            anchor = self.package.split(".")[: len(self.package.split(".")) - node.level + 1]
            base = ".".join([*anchor, *([node.module] if node.module else [])])
        else:
            base = node.module or ""
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            self._add(submodule if submodule in self.modules else self._known(base), node.lineno)

    def _known(self, name: str) -> str | None:
        """The longest prefix of ``name`` that is a module of the package, or None (another package)."""
        parts = name.split(".")
        while parts and ".".join(parts) not in self.modules:
            parts.pop()
        return ".".join(parts) or None

    def _add(self, target: str | None, line: int) -> None:
        if target is None:
            return
        self.edges.append(Edge(self.module, target, self.kind, line))
        # The packages above the target run first, unless they contain this module (already running).
        parts = target.split(".")
        for n in range(1, len(parts)):
            parent = ".".join(parts[:n])
            if parent in self.modules and not (self.module + ".").startswith(parent + "."):
                self.edges.append(Edge(self.module, parent, self.kind, line))


def build_graph(root: Path) -> Graph:
    """The import graph of the package in the folder ``root``, from each module's syntax tree."""
    graph = Graph(root, find_modules(root))
    for name, path in graph.modules.items():
        collector = _Collector(name, path.name == "__init__.py", graph.modules)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        graph.edges += [e for e in collector.edges if e.target != name]
    return graph


def _components(graph: Graph, kinds: Collection[str]) -> list[list[str]]:
    """Strongly connected components (Tarjan), each sorted; only those that hold a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.targets(node, kinds):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return sorted(found)


def _shortest_cycle(graph: Graph, members: list[str], kinds: Collection[str]) -> list[Edge]:
    """A shortest cycle through the first member of a component, as the edges that make it."""
    start, inside = members[0], set(members)
    came: dict[str, Edge] = {}
    queue = [start]
    for node in queue:
        for edge in sorted(graph.edges, key=lambda e: (e.target, KINDS.index(e.kind), e.line)):
            if edge.source != node or edge.kind not in kinds or edge.target not in inside:
                continue
            if edge.target == start:
                path = [edge]
                while path[0].source != start:
                    path.insert(0, came[path[0].source])
                return path
            if edge.target not in came:
                came[edge.target] = edge
                queue.append(edge.target)
    raise AssertionError(f"no cycle through {start}")  # a component always has one


def find_cycles(graph: Graph, kinds: Collection[str] = ("import",)) -> list[list[Edge]]:
    """One cycle per group of modules that import each other, through edges of the given kinds."""
    return [_shortest_cycle(graph, members, kinds) for members in _components(graph, kinds)]


def describe_cycle(graph: Graph, cycle: Sequence[Edge]) -> str:
    """``a -> b -> a``, each step with the file and line of its import."""
    hops = [f"{e.source} ({graph.modules[e.source].relative_to(graph.root)}:{e.line}, {e.kind})" for e in cycle]
    return " -> ".join([*hops, cycle[0].source])


def render(graph: Graph) -> list[str]:
    """One line per module: what it imports, with type-only and deferred imports marked."""
    lines = []
    for module in sorted(graph.modules):
        seen: set[str] = set()
        shown: list[str] = []
        for kind in KINDS:
            targets = [t for t in graph.targets(module, (kind,)) if t not in seen]
            seen.update(targets)
            shown += [t if kind == "import" else f"{t} [{kind}]" for t in targets]
        lines.append(f"{module}: {', '.join(shown) or '-'}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m slimkit._devtools.import_graph",
        description="Print the import graph of the slimkit package and exit 1 if its imports form a cycle.",
    )
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1], help="package folder")
    parser.add_argument("--all", action="store_true", help="count type-only and deferred imports as edges too")
    args = parser.parse_args(argv)
    graph = build_graph(args.root)
    kinds = KINDS if args.all else ("import",)
    print("\n".join(render(graph)))
    groups = _components(graph, kinds)
    what = "imports" if args.all else "imports that run at import time"
    if not groups:
        print(f"\nno cycle among the {what} of {len(graph.modules)} modules")
        return 0
    print(f"\n{len(groups)} group(s) of modules whose {what} form a cycle:")
    for members in groups:
        cycle = _shortest_cycle(graph, members, kinds)
        print("  " + describe_cycle(graph, cycle))
        others = [m for m in members if m not in {e.source for e in cycle}]
        if others:
            print(f"    and in the same tangle: {', '.join(others)}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
