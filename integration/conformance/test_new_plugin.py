"""`slimkit new-plugin NAME` makes a distribution whose own tests pass as generated: the conformance
kit on its technique (every family it declares) and a pipeline that runs the technique."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from slimkit.cli import cli

pytest.importorskip("slimkit_transformers", reason="the generated tests use slimkit-transformers' tiny models")


def test_a_new_plugin_passes_its_own_tests(tmp_path: Path) -> None:
    made = CliRunner().invoke(cli, ["new-plugin", "acme-labs", "--directory", str(tmp_path)])
    assert made.exit_code == 0, made.output
    folder = tmp_path / "slimkit-acme-labs"
    assert made.output == f"Created {folder}: pip install -e '{folder}[test]', then pytest in it.\n"
    project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["slimkit"] == {"acme-labs": "slimkit_acme_labs"}
    assert "slimkit>=0.1,<0.2" in project["dependencies"]
    # Not installed: its tests import it from the folder, and the kit registers the module itself.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLIMKIT_", "PYTEST_"))}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"],
        cwd=folder, capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    summary = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 0, done.stdout[-3000:]
    assert "19 passed" in summary  # 4 rules + 14 families, and the pipeline test


def test_names_and_folders_are_checked(tmp_path: Path) -> None:
    bad = CliRunner().invoke(cli, ["new-plugin", "Acme Labs", "--directory", str(tmp_path)])
    assert bad.exit_code == 2 and bad.stderr.startswith("Error: 'Acme Labs' is not a plugin name")
    (tmp_path / "slimkit-acme").mkdir()
    taken = CliRunner().invoke(cli, ["new-plugin", "acme", "--directory", str(tmp_path)])
    assert taken.exit_code == 2 and "already exists" in taken.stderr
    assert list((tmp_path / "slimkit-acme").iterdir()) == []
