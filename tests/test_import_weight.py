"""`import slimkit` and `slimkit --help` stay light: no ML library, not even pydantic, is imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HEAVY = ["torch", "transformers", "onnxruntime", "onnx", "datasets", "numpy"]

TESTS = Path(__file__).resolve().parent


def imported_after(code: str, cwd: Path) -> list[str]:
    """Run code in a fresh interpreter; return which of HEAVY + pydantic it left in sys.modules."""
    probe = textwrap.dedent(code) + textwrap.dedent(
        f"""
        import json, sys
        names = {[*HEAVY, "pydantic"]!r}
        print(json.dumps(sorted(n for n in names if n in sys.modules)))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True, env=dict(os.environ), timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_import_and_help_import_nothing_heavy(tmp_path: Path) -> None:
    code = """
        import slimkit
        import slimkit.cli
        assert callable(slimkit.hookimpl)
        try:
            slimkit.cli.cli(["--help"], prog_name="slimkit")
        except SystemExit as exc:
            assert exc.code == 0
    """
    assert imported_after(code, tmp_path) == []


def test_public_names_are_lazy(tmp_path: Path) -> None:
    assert imported_after("import slimkit\nslimkit.Pipeline\n", tmp_path) == ["pydantic"]
    import slimkit

    with pytest.raises(AttributeError, match="module 'slimkit' has no attribute 'nothing'"):
        slimkit.nothing  # noqa: B018
    for name in slimkit.__all__:
        assert getattr(slimkit, name) is not None


def test_planning_and_running_on_cpu_import_no_ml_library(tmp_path: Path) -> None:
    code = f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        from toy_plugin import ToyPlugin
        from slimkit import Pipeline
        from slimkit.plugins import build_plugins

        plugins = build_plugins(entry_points=False)
        plugins.register(ToyPlugin(), "toy")
        pipeline = Pipeline(name="light", model={{"source": "toy:0.5,0.1", "format": "toy"}}, device="cpu")
        result = pipeline.prune("toy.prune").quantize("toy.round").run(plugins=plugins)
        assert result.exit_code == 0
    """
    assert imported_after(code, tmp_path) == ["pydantic"]
    assert (tmp_path / "runs" / "light" / "results.json").is_file()
