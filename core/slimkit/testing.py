"""pytest plugin for slimkit plugin authors (loaded through the ``pytest11`` entry point).

Under test, installed plugins are not auto-loaded: an autouse fixture sets ``SLIMKIT_LOAD_PLUGINS``
to empty (unless the environment already names plugins), so ``slimkit`` commands and
``Pipeline.run()`` in a test see only the plugins the test registers or names.

Fixtures:
- ``slimkit_plugins``: a plugin manager with the built-ins only. Installed plugins are not
  auto-loaded, so tests see exactly the plugins they register.
- ``register_plugin``: ``register_plugin(obj, name="...")`` registers a plugin (a module, class
  or instance with ``@slimkit.hookimpl`` methods) for the test and unregisters it afterwards.
- ``run_pipeline``: ``run_pipeline(pipeline_or_dict, **kw)`` plans and runs a pipeline with those
  plugins, writing into the test's temporary folder; returns the ``RunResult``.
- ``plugins``: the plugin under test, registered with the slimkit plugins it depends on, and
  returned (its module). The plugin under test is the distribution whose ``pyproject.toml`` is
  nearest above the test file (its ``slimkit`` entry points); ``@pytest.mark.slimkit_plugins("a",
  "b")`` names entry points instead. Each test gets its own cache folder (``SLIMKIT_CACHE``).

The conformance kit: ``test_conformance = conformance("name")`` in a plugin's test module checks
every technique the plugin declares (see :mod:`slimkit.conformance`).
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

MARKER = "slimkit_plugins"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(*names): the slimkit entry points the `plugins` fixture registers")


@pytest.fixture(autouse=True)
def _slimkit_isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No installed plugin loads unless the environment names some; converted sources are cached per test."""
    from slimkit.plugins import LOAD_ENV

    monkeypatch.setenv(LOAD_ENV, os.environ.get(LOAD_ENV, ""))
    monkeypatch.setenv("SLIMKIT_CACHE", str(tmp_path / "slimkit-cache"))


@pytest.fixture
def slimkit_plugins() -> Any:
    from slimkit.plugins import build_plugins

    return build_plugins(entry_points=False)


@pytest.fixture
def register_plugin(slimkit_plugins: Any) -> Iterator[Callable[..., Any]]:
    names: list[str] = []

    def register(plugin: object, name: str | None = None) -> Any:
        plugin_name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        record = slimkit_plugins.register(plugin, plugin_name, origin="test")
        names.append(plugin_name)
        return record

    try:
        yield register
    finally:
        for name in reversed(names):
            slimkit_plugins.unregister(name)


@pytest.fixture
def run_pipeline(slimkit_plugins: Any, tmp_path: Path) -> Callable[..., Any]:
    from slimkit.runner import run_pipeline as _run
    from slimkit.spec import Pipeline, pipeline_from_dict

    def run(pipeline: Pipeline | dict[str, Any], **kw: Any) -> Any:
        if isinstance(pipeline, dict):
            pipeline = pipeline_from_dict(pipeline, base_dir=tmp_path)
        if pipeline.output_dir is None:
            pipeline = pipeline.model_copy(update={"output_dir": tmp_path / "runs" / pipeline.name})
        return _run(pipeline, plugins=slimkit_plugins, **kw)

    return run


@pytest.fixture
def plugins(request: pytest.FixtureRequest, register_plugin: Callable[..., Any]) -> ModuleType:
    marker = request.node.get_closest_marker(MARKER)
    named = [(n, _entry_point(n)) for n in marker.args] if marker else plugins_under_test(Path(str(request.path)))
    modules = [importlib.import_module(module) for _, module in named]
    for (name, _), module in zip(named, modules, strict=True):
        register_plugin(module, name=name)
    return modules[-1]


def plugins_under_test(test_file: Path) -> list[tuple[str, str]]:
    """(entry-point name, module) of the distribution whose pyproject.toml is nearest above
    ``test_file``, after those of the installed slimkit plugins it depends on. Its own are read
    from the file, so a plugin is tested before it is installed."""
    for folder in test_file.parents:
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
            own = project.get("entry-points", {}).get("slimkit", {})
            if own:
                return [*_slimkit_dependencies(project.get("dependencies", [])), *own.items()]
    raise pytest.UsageError(
        f"no pyproject.toml with [project.entry-points.slimkit] above {test_file}: "
        f"name the plugins with @pytest.mark.{MARKER}('name', ...)"
    )


def _slimkit_dependencies(requirements: Sequence[str]) -> list[tuple[str, str]]:
    from packaging.requirements import Requirement

    found: list[tuple[str, str]] = []
    for line in requirements:
        try:
            dist = md.distribution(Requirement(line).name)
        except md.PackageNotFoundError:
            continue
        found += [(ep.name, ep.module) for ep in dist.entry_points if ep.group == "slimkit"]
    return found


def _entry_point(name: str) -> str:
    """The module of the installed slimkit plugin ``name``."""
    found = [ep for ep in md.entry_points(group="slimkit") if ep.name == name]
    if not found:
        raise pytest.UsageError(f"no installed slimkit plugin named {name!r} (pip install -e the plugin first)")
    return found[0].module


def conformance(
    plugin: str | ModuleType,
    *,
    configs: Mapping[str, Mapping[str, Any]] | None = None,
    families: Sequence[str] | None = None,
) -> Callable[..., None]:
    """A test function, parametrized over every technique of ``plugin`` and every rule of the
    conformance kit (see :mod:`slimkit.conformance`). Assign it in a test module::

        test_conformance = conformance("acme", configs={"acme.prune": {"sparsity": 0.5}})

    ``plugin``: its entry-point name, or its module when it is not installed. ``configs``: options
    per technique, sized for tiny models (2 layers, hidden size 32 to 64). ``families``: only these
    of the families each technique declares (default: every declared one the kit has a model of).
    """
    from slimkit.conformance import CannotCheck, Kit

    kit = Kit(plugin, configs=dict(configs or {}), families=families)

    @pytest.mark.parametrize("case", kit.cases(), ids=str)
    def test_conformance(case: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
        root = tmp_path_factory.getbasetemp() / "slimkit-conformance"
        try:
            kit.check(case, root / str(case))
        except CannotCheck as exc:
            pytest.skip(str(exc))

    checks: Callable[..., None] = test_conformance  # pytest's decorator is untyped
    return checks
