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
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _slimkit_no_autoload(monkeypatch: pytest.MonkeyPatch) -> None:
    from slimkit.plugins import LOAD_ENV

    monkeypatch.setenv(LOAD_ENV, os.environ.get(LOAD_ENV, ""))


@pytest.fixture
def slimkit_plugins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    from slimkit.plugins import build_plugins

    monkeypatch.setenv("SLIMKIT_CACHE", str(tmp_path / "slimkit-cache"))
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
