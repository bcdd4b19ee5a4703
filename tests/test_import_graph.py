"""The core's imports form no cycle (docs/architecture.md, "Import layers"), and the checker sees one."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import slimkit
from slimkit._devtools.import_graph import Edge, build_graph, describe_cycle, find_cycles, main

CORE = Path(slimkit.__file__).parent


def test_the_core_has_no_import_cycle() -> None:
    graph = build_graph(CORE)
    cycles = find_cycles(graph)
    assert not cycles, "import cycles in core/slimkit:\n" + "\n".join(describe_cycle(graph, c) for c in cycles)


def test_the_command_prints_the_graph_and_exits_0() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "slimkit._devtools.import_graph"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    graph = dict(line.split(": ", 1) for line in done.stdout.splitlines() if line.startswith("slimkit"))
    assert "slimkit.pareto" in graph["slimkit.study.search"].split(", ")
    assert "slimkit.planner [deferred]" in graph["slimkit.spec"].split(", ")  # Pipeline.plan()
    assert "no cycle" in done.stdout


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


def test_a_cycle_is_listed_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _package(
        tmp_path,
        {"a.py": "from pkg import b\n", "b.py": "import os\n\nfrom pkg.c import X\n", "c.py": "from . import a\n"},
    )
    graph = build_graph(root)
    [cycle] = find_cycles(graph)
    assert [(e.source, e.target, e.line) for e in cycle] == [
        ("pkg.a", "pkg.b", 1),
        ("pkg.b", "pkg.c", 3),
        ("pkg.c", "pkg.a", 1),
    ]
    line = "pkg.a (a.py:1, import) -> pkg.b (b.py:3, import) -> pkg.c (c.py:1, import) -> pkg.a"
    assert describe_cycle(graph, cycle) == line
    assert main(["--root", str(root)]) == 1
    assert f"  {line}" in capsys.readouterr().out.splitlines()


def test_type_only_and_deferred_imports_count_only_with_all(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "a.py": "from pkg.b import B\n",
            "b.py": """
                from typing import TYPE_CHECKING
                if TYPE_CHECKING:
                    from pkg.a import A
                else:
                    from pkg import c
                def f():
                    from pkg import a
                class B:
                    import pkg.c
            """,
            "c.py": "",
        },
    )
    graph = build_graph(root)
    assert sorted((e.target, e.kind) for e in graph.edges if e.source == "pkg.b") == [
        ("pkg.a", "deferred"),
        ("pkg.a", "type"),
        ("pkg.c", "import"),  # the else branch of TYPE_CHECKING runs
        ("pkg.c", "import"),  # a class body runs at import time
    ]
    assert find_cycles(graph) == []
    assert main(["--root", str(root)]) == 0
    assert len(find_cycles(graph, ("import", "deferred", "type"))) == 1
    assert main(["--root", str(root), "--all"]) == 1


def test_a_subpackage_init_runs_before_its_modules(tmp_path: Path) -> None:
    """``from pkg.sub.x import y`` runs pkg/sub/__init__ first: a cycle through it is real."""
    root = _package(
        tmp_path,
        {
            "sub/__init__.py": "from pkg.sub.x import y\n",
            "sub/x.py": "from pkg import top\nfrom pkg.sub import other\ny = 1\n",
            "sub/other.py": "",
            "top.py": "from pkg.sub.other import z\n",
        },
    )
    graph = build_graph(root)
    assert Edge("pkg.top", "pkg.sub", "import", 1) in graph.edges
    # sub/x.py's own package is already running when it runs: no edge back to it.
    assert not [e for e in graph.edges if e.source == "pkg.sub.x" and e.target == "pkg.sub"]
    assert [e.source for e in find_cycles(graph)[0]] == ["pkg.sub", "pkg.sub.x", "pkg.top"]


def test_executors_keep_their_first_home() -> None:
    """Plugins that provide an executor import ``slimkit.executors``; it re-exports the study's."""
    import slimkit.executors
    import slimkit.study.executors

    for name in slimkit.executors.__all__:
        assert getattr(slimkit.executors, name) is getattr(slimkit.study.executors, name)
