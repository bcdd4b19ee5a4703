"""slimkit installed from its wheel, outside a checkout: the registry index ships inside it, and
`slimkit install NAME` installs the plugin by name, in the core's version range, core kept."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from slimkit import registry_index
from slimkit.cli import cli
from slimkit.registry_index import Index, IndexEntry, compatible_range, install_commands

REPO = Path(__file__).resolve().parents[1]
INDEX = REPO / "registry" / "plugins.toml"
TORCH_SPEC = os.environ.get("SLIMKIT_TORCH", "torch==2.13.0")  # as scripts/setup: never let pip choose torch
SKIP = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="slimkit")


@pytest.fixture
def no_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    """slimkit as installed from its wheel: no SLIMKIT_REGISTRY and no checkout around it."""
    monkeypatch.delenv("SLIMKIT_REGISTRY")
    monkeypatch.setattr(registry_index, "checkout_roots", list)
    monkeypatch.setattr(registry_index, "core_version", lambda: "0.1.0")


def test_compatible_range() -> None:
    assert compatible_range("0.1.0") == ">=0.1,<0.2"
    assert compatible_range("1.4.2.dev3+g1234") == ">=1.4,<1.5"
    assert compatible_range("2") == ">=2.0,<2.1"


@pytest.mark.usefixtures("no_checkout")
def test_the_packaged_index_is_found_without_a_checkout() -> None:
    packaged = registry_index.packaged_index()
    assert packaged is not None
    assert packaged.read_bytes() == INDEX.read_bytes()  # the same file, not a copy that drifts
    assert registry_index.find_index() == packaged
    index = registry_index.load_index()
    assert index.root is None
    assert [e.name for e in index.plugin] == [p["name"] for p in tomllib.loads(INDEX.read_text())["plugin"]]


def test_install_commands_without_a_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_index, "core_version", lambda: "0.3.2")
    entry = IndexEntry(name="old", distribution="slimkit-old", path="plugins/old", summary="s", no_deps=["oldlib==1.0"])
    pip = [sys.executable, "-m", "pip", "install"]
    assert install_commands(entry, Index(plugin=[entry]), ["--find-links", "/w", "--index-url", "U"]) == [
        [*pip, "slimkit-old>=0.3,<0.4", "slimkit==0.3.2", "--find-links", "/w", "--index-url", "U"],
        [*pip, "--no-deps", "oldlib==1.0", "--find-links", "/w", "--index-url", "U"],
    ]


@pytest.mark.usefixtures("no_checkout")
def test_install_dry_run_without_a_checkout() -> None:
    result = invoke("install", "onnx", "--dry-run", "--find-links", "/w", "--index-url", "U", "--extra-index-url", "E")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"{sys.executable} -m pip install 'slimkit-onnx>=0.1,<0.2' slimkit==0.1.0"
        " --index-url U --extra-index-url E --find-links /w\n"
    )


@pytest.mark.usefixtures("no_checkout")
def test_pip_failing_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess, "call", lambda command: 1)
    result = invoke("install", "onnx")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: pip could not install slimkit-onnx (pip exited 1; its output is above)"
        " (fix: check the plugin is on your package index, or name one with --index-url or --find-links)\n"
    )


def run(*command: str | Path, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_wheel_install_outside_a_checkout(tmp_path: Path) -> None:
    # Build from copies, so that no build/ or *.egg-info lands in the checkout; the copy keeps
    # core/slimkit/plugins_index.toml a symlink, as a checkout has it.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for folder in ("core", "registry", "plugins/transformers", "plugins/onnx"):
        shutil.copytree(REPO / folder, source / folder, symlinks=True, ignore=SKIP, dirs_exist_ok=True)
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    for folder in (source, source / "plugins" / "transformers", source / "plugins" / "onnx"):
        run(*pip, "wheel", "--no-deps", folder, "-w", wheels, cwd=tmp_path, env=dict(os.environ))
    (core_wheel,) = wheels.glob("slimkit-*.whl")

    # A fresh venv, run from a folder outside the checkout, so that the packaged index is found.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLIMKIT_", "PYTHON")) and k != "VIRTUAL_ENV"}
    outside = tmp_path / "outside"
    outside.mkdir()
    run(sys.executable, "-m", "venv", tmp_path / "venv", cwd=outside, env=env)
    bin_ = tmp_path / "venv" / "bin"
    fresh_pip = [bin_ / "python", "-m", "pip", "--disable-pip-version-check", "-q", "install"]
    run(*fresh_pip, TORCH_SPEC, cwd=outside, env=env)
    run(*fresh_pip, core_wheel, cwd=outside, env=env)

    available = run(bin_ / "slimkit", "plugins", "--available", cwd=outside, env=env)
    for plugin in tomllib.loads(INDEX.read_text())["plugin"]:
        assert f"{plugin['name']:<14} {plugin['distribution']}" in available

    run(bin_ / "slimkit", "install", "onnx", "--find-links", wheels, cwd=outside, env=env)
    plugins = run(bin_ / "slimkit", "plugins", cwd=outside, env=env)
    assert "onnx (slimkit-onnx 0.1.0): loaded" in plugins, plugins
    assert "transformers (slimkit-transformers 0.1.0): loaded" in plugins, plugins
    assert "onnx.export " in run(bin_ / "slimkit", "techniques", cwd=outside, env=env)
    # The core stayed the wheel's: pip was never free to swap it.
    version = run(
        bin_ / "python", "-c", "import importlib.metadata as m; print(m.version('slimkit'))", cwd=outside, env=env
    )
    assert version.strip() == tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
