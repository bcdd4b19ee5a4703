"""The example third-party plugin (tests/example_plugin, its own distribution) found through its entry point.

These tests use the real installed distribution `slimkit-example`, not a stub entry point: they
show that a plugin shipped with pip shows up in `slimkit plugins` and runs in a pipeline.
"""

from __future__ import annotations

import importlib.metadata as md
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from slimkit.cli import cli
from slimkit.results import resolve_path

try:
    md.distribution("slimkit-example")
except md.PackageNotFoundError:  # pragma: no cover - the test env installs it (scripts/setup, tox)
    pytest.skip("slimkit-example is not installed: pip install -e tests/example_plugin", allow_module_level=True)


@pytest.fixture(autouse=True)
def _load_example(monkeypatch: pytest.MonkeyPatch) -> None:
    # The suite turns entry-point loading off; these tests load exactly the example plugin.
    monkeypatch.setenv("SLIMKIT_LOAD_PLUGINS", "example")


def test_listed_by_slimkit_plugins() -> None:
    result = CliRunner().invoke(cli, ["plugins", "--json"], prog_name="slimkit")
    assert result.exit_code == 0, result.output
    plugins = {p["name"]: p for p in json.loads(result.output)}
    example = plugins["example"]
    assert example["status"] == "loaded"
    assert example["distribution"] == "slimkit-example" and example["version"] == "0.1.0"
    assert example["techniques"] == ["example.round"]


def test_runs_in_a_pipeline(tmp_path: Path) -> None:
    path = tmp_path / "example.toml"
    path.write_text(
        'name = "example"\ndevice = "cpu"\noutput_dir = "runs/example"\n'
        'model = { source = "example:0.123,0.456", format = "example-json" }\n'
        '[[steps]]\ntechnique = "example.round"\nconfig = { decimals = 1 }\n'
    )
    result = CliRunner().invoke(cli, ["run", str(path), "--json", "-q"], prog_name="slimkit")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    (step,) = summary["steps"]
    assert step["status"] == "done" and step["technique"] == "example.round"
    model = resolve_path(step["artifact"]["path"], tmp_path / "runs" / "example")  # relative to results.json
    assert json.loads((model / "weights.json").read_text()) == [0.1, 0.5]


def test_slimkit_pytest_plugin_turns_autoload_off(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    # A plugin author's test suite, with nothing set: slimkit.testing alone keeps installed plugins out.
    monkeypatch.delenv("SLIMKIT_LOAD_PLUGINS")
    pytester.makepyfile(
        """
        import json
        from click.testing import CliRunner
        from slimkit.cli import cli

        def test_nothing_installed_loads():
            out = CliRunner().invoke(cli, ["plugins", "--json"]).output
            assert [p["name"] for p in json.loads(out) if p["status"] == "loaded"] == []
        """
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
