"""Plugin discovery: entry points load one by one, a broken plugin is recorded and never stops the others."""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from slimkit import hookimpl
from slimkit.errors import PluginError
from slimkit.plugins import Plugins, build_plugins, selected_plugins


class StubDistribution:
    def __init__(self, name: str, version: str) -> None:
        self.metadata = {"Name": name}
        self.version = version


class StubEntryPoint:
    """Quacks like importlib.metadata.EntryPoint: name, module, dist and load()."""

    def __init__(self, name: str, load: Callable[[], Any], *, dist: str | None = None, module: str = "") -> None:
        self.name = name
        self.group = "slimkit"
        self.module = module or f"slimkit_{name}"
        self.dist = StubDistribution(dist, "0.3.1") if dist else None
        self._load = load
        self.loaded = 0

    def load(self) -> Any:
        self.loaded += 1
        return self._load()


class GoodPlugin:
    @hookimpl
    def register_techniques(self, register):  # type: ignore[no-untyped-def]
        register({"name": "good.noop", "stage": "prune", "summary": "Nothing.", "consumes": ["toy"]})


class UnknownHookPlugin:
    @hookimpl
    def register_techniques(self, register):  # type: ignore[no-untyped-def]
        register({"name": "typo.noop", "stage": "prune", "summary": "Nothing.", "consumes": ["toy"]})

    @hookimpl
    def quantise(self, step):  # type: ignore[no-untyped-def]
        return None


def missing_dependency() -> Any:
    raise ModuleNotFoundError("No module named 'onnxruntime'", name="onnxruntime")


def old_dependency() -> Any:
    raise ImportError("cannot import name 'quantize_dynamic' from 'onnxruntime.quantization'", name="onnxruntime")


def crashes() -> Any:
    raise RuntimeError("boom\nsecond line")


def stubs() -> list[StubEntryPoint]:
    return [
        StubEntryPoint("needsdep", missing_dependency, dist="slimkit-needsdep"),
        StubEntryPoint("tooold", old_dependency, dist="slimkit-tooold"),
        StubEntryPoint("broken", crashes, dist="slimkit-broken"),
        StubEntryPoint("typo", UnknownHookPlugin, dist="slimkit-typo"),
        StubEntryPoint("good", GoodPlugin, dist="slimkit-good"),
    ]


def load(entry_points: list[StubEntryPoint]) -> Plugins:
    plugins = build_plugins(entry_points=False)
    plugins.load_entrypoints(entry_points=entry_points)  # type: ignore[arg-type]
    return plugins


@pytest.fixture
def load_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLIMKIT_LOAD_PLUGINS")


def summary(plugins: Plugins) -> dict[str, tuple[str, str | None]]:
    return {name: (r.status, r.error) for name, r in plugins.records.items()}


@pytest.mark.usefixtures("load_all")
def test_each_entry_point_loads_on_its_own() -> None:
    plugins = load(stubs())
    assert summary(plugins) == {
        "disk": ("loaded", None),
        "dispatch": ("loaded", None),
        "needsdep": ("unavailable", "ModuleNotFoundError: No module named 'onnxruntime'"),
        "tooold": ("unavailable", "ImportError: cannot import name 'quantize_dynamic' from 'onnxruntime.quantization'"),
        "broken": ("failed", "RuntimeError: boom"),
        "typo": (
            "failed",
            "plugin 'typo' implements unknown hook 'quantise' (fix: check the spelling against docs/hooks.md)",
        ),
        "good": ("loaded", None),
    }
    good = plugins.records["good"]
    assert (good.origin, good.distribution, good.version) == ("entry-point", "slimkit-good", "0.3.1")
    assert good.techniques == ["good.noop"]
    assert good.hooks == ["register_techniques"]
    assert plugins.techniques.get("good.noop").plugin_version == "0.3.1"  # type: ignore[union-attr]
    # The plugin with the unknown hook is gone entirely, its techniques too.
    assert plugins.pm.get_plugin("typo") is None
    assert plugins.techniques.get("typo.noop") is None
    assert [r.name for r in plugins.loaded()] == ["disk", "dispatch", "good"]
    assert [r.name for r in plugins.problems()] == ["needsdep", "tooold", "broken", "typo"]


@pytest.mark.usefixtures("load_all")
def test_a_broken_plugin_does_not_stop_later_ones_in_any_order() -> None:
    plugins = load(list(reversed(stubs())))
    assert plugins.records["good"].status == "loaded"
    assert plugins.techniques.get("good.noop") is not None


@pytest.mark.usefixtures("load_all")
def test_a_plugin_whose_declaration_is_refused_is_failed() -> None:
    class Colliding:
        @hookimpl
        def register_techniques(self, register):  # type: ignore[no-untyped-def]
            register({"name": "good.noop", "stage": "prune", "summary": "Again.", "consumes": ["toy"]})

    plugins = load([StubEntryPoint("good", GoodPlugin), StubEntryPoint("copycat", Colliding)])
    assert summary(plugins)["copycat"] == (
        "failed",
        "technique 'good.noop' is declared by both plugin 'good' and plugin 'copycat' "
        "(fix: uninstall one of them, or choose plugins with SLIMKIT_LOAD_PLUGINS)",
    )
    assert plugins.techniques.get("good.noop").plugin == "good"  # type: ignore[union-attr]


@pytest.mark.usefixtures("load_all")
def test_a_validation_error_at_import_is_reported_in_one_line() -> None:
    from slimkit import Technique

    def builds_bad_declaration_at_import() -> Any:
        return Technique(name="Bad", stage="prune", summary="s", consumes=["toy"])

    plugins = load([StubEntryPoint("eager", builds_bad_declaration_at_import)])
    status, error = summary(plugins)["eager"]
    assert status == "failed"
    assert error == (
        "ValidationError: Technique: name: 'Bad' is not '<plugin>.<technique>' in lower case "
        "(e.g. 'onnx.quantize-dynamic')"
    )


@pytest.fixture
def plugin_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path for real modules that real EntryPoint objects point at."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        if name.startswith("stubplugin_"):
            del sys.modules[name]


@pytest.mark.usefixtures("load_all")
def test_real_entry_points(plugin_modules: Path) -> None:
    (plugin_modules / "stubplugin_ok.py").write_text(
        textwrap.dedent(
            """
            import slimkit

            @slimkit.hookimpl
            def register_techniques(register):
                register({"name": "ok.noop", "stage": "export", "summary": "s", "consumes": ["toy"]})
            """
        )
    )
    (plugin_modules / "stubplugin_dep.py").write_text("import slimkit_test_dependency_that_is_not_installed\n")
    eps = [
        md.EntryPoint(name="dep", value="stubplugin_dep", group="slimkit"),
        md.EntryPoint(name="ghost", value="stubplugin_ghost", group="slimkit"),
        md.EntryPoint(name="ok", value="stubplugin_ok", group="slimkit"),
    ]
    plugins = build_plugins(entry_points=False)
    plugins.load_entrypoints(entry_points=eps)
    assert summary(plugins) == {
        "disk": ("loaded", None),
        "dispatch": ("loaded", None),
        "dep": (
            "unavailable",
            "ModuleNotFoundError: No module named 'slimkit_test_dependency_that_is_not_installed'",
        ),
        # The plugin's own module is missing: the plugin is broken, not waiting for a dependency.
        "ghost": ("failed", "ModuleNotFoundError: No module named 'stubplugin_ghost'"),
        "ok": ("loaded", None),
    }
    assert plugins.records["ok"].distribution is None
    assert plugins.techniques.get("ok.noop") is not None


def test_empty_selection_loads_no_entry_point_but_the_builtins() -> None:
    entry_points = stubs()
    plugins = load(entry_points)
    assert all(ep.loaded == 0 for ep in entry_points)
    assert plugins.records["disk"].status == "loaded"
    assert plugins.records["disk"].origin == "builtin"
    assert {r.name: (r.status, r.error) for r in plugins.records.values() if r.origin == "entry-point"} == {
        ep.name: ("skipped", "not in SLIMKIT_LOAD_PLUGINS") for ep in entry_points
    }
    assert plugins.techniques.all() == []


def test_selection_by_entry_point_or_distribution_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIMKIT_LOAD_PLUGINS", " good , slimkit-broken,unknown ")
    assert selected_plugins() == {"good", "slimkit-broken", "unknown"}
    entry_points = stubs()
    plugins = load(entry_points)
    assert summary(plugins) == {
        "disk": ("loaded", None),
        "dispatch": ("loaded", None),
        "needsdep": ("skipped", "not in SLIMKIT_LOAD_PLUGINS"),
        "tooold": ("skipped", "not in SLIMKIT_LOAD_PLUGINS"),
        "broken": ("failed", "RuntimeError: boom"),
        "typo": ("skipped", "not in SLIMKIT_LOAD_PLUGINS"),
        "good": ("loaded", None),
    }
    assert {ep.name: ep.loaded for ep in entry_points} == {
        "needsdep": 0,
        "tooold": 0,
        "broken": 1,
        "typo": 0,
        "good": 1,
    }


def test_selection_semantics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLIMKIT_LOAD_PLUGINS")
    assert selected_plugins() is None
    monkeypatch.setenv("SLIMKIT_LOAD_PLUGINS", "")
    assert selected_plugins() == set()
    monkeypatch.setenv("SLIMKIT_LOAD_PLUGINS", " , ")
    assert selected_plugins() == set()


@pytest.mark.usefixtures("load_all")
def test_build_plugins_reads_the_installed_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def entry_points(*, group: str) -> list[StubEntryPoint]:
        seen.append(group)
        return [StubEntryPoint("good", GoodPlugin, dist="slimkit-good")]

    monkeypatch.setattr(md, "entry_points", entry_points)
    plugins = build_plugins()
    assert seen == ["slimkit"]
    assert [r.name for r in plugins.loaded()] == ["disk", "dispatch", "good"]
    assert [r.name for r in build_plugins(entry_points=False).loaded()] == ["disk", "dispatch"]
    assert build_plugins(entry_points=False, builtins=False).records == {}


def test_register_refuses_a_second_plugin_of_the_same_name(slimkit_plugins: Plugins) -> None:
    slimkit_plugins.register(GoodPlugin(), "good")
    with pytest.raises(PluginError, match=r"^a plugin named 'good' is already registered$"):
        slimkit_plugins.register(GoodPlugin(), "good")


def test_register_refuses_an_unknown_hook_and_leaves_nothing(slimkit_plugins: Plugins) -> None:
    with pytest.raises(PluginError, match="implements unknown hook 'quantise'"):
        slimkit_plugins.register(UnknownHookPlugin(), "typo")
    assert slimkit_plugins.pm.get_plugin("typo") is None
    assert slimkit_plugins.techniques.all() == []
    slimkit_plugins.register(GoodPlugin(), "typo")  # the name is free again
    assert slimkit_plugins.records["typo"].status == "loaded"


def test_register_refuses_a_hook_with_unknown_arguments(slimkit_plugins: Plugins) -> None:
    class WrongArguments:
        @hookimpl
        def prune(self, step, extra):  # type: ignore[no-untyped-def]
            return None

    with pytest.raises(PluginError, match=r"^plugin 'wrong' cannot be registered: "):
        slimkit_plugins.register(WrongArguments(), "wrong")


def test_unregister(slimkit_plugins: Plugins) -> None:
    slimkit_plugins.register(GoodPlugin(), "good")
    slimkit_plugins.unregister("good")
    assert "good" not in slimkit_plugins.records
    assert slimkit_plugins.techniques.all() == []
    assert slimkit_plugins.pm.get_plugin("good") is None


def test_register_plugin_fixture_unregisters_after_the_test(slimkit_plugins: Plugins, register_plugin: Any) -> None:
    record = register_plugin(GoodPlugin(), name="fixture-good")
    assert record.origin == "test"
    assert slimkit_plugins.techniques.get("good.noop") is not None


LOCAL_PLUGIN = """
from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

import slimkit


@dataclass
class Weights:  # dataclasses look their module up in sys.modules
    values: list[float]


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    level: int = Field(default=1, description="Level.")


@slimkit.hookimpl
def register_techniques(register):
    register({"name": "local.noop", "stage": "prune", "summary": "s", "consumes": ["toy"], "config": Options})
"""


def test_local_plugin_file(tmp_path: Path, slimkit_plugins: Plugins) -> None:
    path = tmp_path / "myplugin.py"
    path.write_text(LOCAL_PLUGIN)
    record = slimkit_plugins.load_local(path)
    assert (record.name, record.origin, record.status) == ("local:myplugin", "local", "loaded")
    assert record.techniques == ["local.noop"]
    # Its version is a hash of its content: editing it invalidates the steps it computed.
    assert record.version == "file-" + hashlib.sha256(LOCAL_PLUGIN.encode()).hexdigest()[:12]
    assert slimkit_plugins.techniques.get("local.noop").plugin_version == record.version  # type: ignore[union-attr]
    assert slimkit_plugins.load_local(path) is record  # loading it again is a no-op
    sys.modules.pop("slimkit_local_myplugin", None)


def test_local_plugins_with_the_same_name_are_refused(tmp_path: Path, slimkit_plugins: Plugins) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "plugin.py").write_text("")
    slimkit_plugins.load_local(tmp_path / "a" / "plugin.py")
    with pytest.raises(PluginError) as info:
        slimkit_plugins.load_local(tmp_path / "b" / "plugin.py")
    assert str(info.value) == (
        f"local plugins {tmp_path / 'a' / 'plugin.py'} and {tmp_path / 'b' / 'plugin.py'} have the same name "
        "'local:plugin' (fix: rename one of the files)"
    )
    sys.modules.pop("slimkit_local_plugin", None)


def test_local_plugin_errors(tmp_path: Path, slimkit_plugins: Plugins) -> None:
    with pytest.raises(PluginError) as info:
        slimkit_plugins.load_local(tmp_path / "absent.py")
    assert str(info.value) == (
        f"local plugin file not found: {tmp_path / 'absent.py'} (fix: fix the path in the pipeline's 'plugins')"
    )
    broken = tmp_path / "broken.py"
    broken.write_text("raise ValueError('no good')\n")
    with pytest.raises(PluginError) as info:
        slimkit_plugins.load_local(broken)
    assert str(info.value) == f"local plugin {broken} failed to import: ValueError: no good"
    assert "slimkit_local_broken" not in sys.modules
    assert "local:broken" not in slimkit_plugins.records


def test_hook_tracing(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SLIMKIT_TRACE_HOOKS", "0")
    build_plugins(entry_points=False).before_step(step=None)
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("SLIMKIT_TRACE_HOOKS", "1")
    plugins = build_plugins(entry_points=False)
    plugins.before_step(step=None)
    assert capsys.readouterr().err == (
        "[slimkit hook] before_step(step) -> []\n[slimkit hook] before_step returned list\n"
    )


def test_hook_parameters_with_defaults_are_refused(slimkit_plugins: Any) -> None:
    class Defaulted:
        @hookimpl
        def before_step(self, step=None):  # type: ignore[no-untyped-def]
            pass

    with pytest.raises(PluginError, match=r"hook 'before_step' gives parameters default values \(step\)"):
        slimkit_plugins.register(Defaulted(), "defaulted")
    assert "defaulted" not in slimkit_plugins.records
