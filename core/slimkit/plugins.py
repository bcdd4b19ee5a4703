"""Plugin discovery and the typed facade over pluggy.

The manager is built by a function, never at import: it adds the hook specs, registers the
built-in plugins, loads each ``slimkit`` entry point on its own (a broken one is recorded with its
error, not raised), collects technique declarations, and checks that every hook implementation
matches a spec.

Environment:
- ``SLIMKIT_LOAD_PLUGINS``: unset loads every installed plugin; empty loads none; a comma list
  loads only those (entry-point or distribution names). Built-ins always load.
- ``SLIMKIT_TRACE_HOOKS=1``: print every hook call and its result to stderr.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import os
import sys
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import pluggy

from slimkit import hookspecs
from slimkit.artifacts import Artifact
from slimkit.errors import PluginError
from slimkit.metrics import Metric
from slimkit.techniques import TechniqueRegistry

ENTRY_POINT_GROUP = "slimkit"
LOAD_ENV = "SLIMKIT_LOAD_PLUGINS"
TRACE_ENV = "SLIMKIT_TRACE_HOOKS"
BUILTINS = ("slimkit.builtin.disk",)

Status = Literal["loaded", "unavailable", "failed", "skipped"]
Origin = Literal["builtin", "entry-point", "local", "test"]


@dataclass
class PluginRecord:
    """What ``slimkit plugins`` shows for one plugin."""

    name: str
    origin: Origin
    status: Status
    distribution: str | None = None
    version: str | None = None
    error: str | None = None
    techniques: list[str] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "origin": self.origin,
            "status": self.status,
            "distribution": self.distribution,
            "version": self.version,
            "error": self.error,
            "techniques": self.techniques,
            "hooks": self.hooks,
        }


def selected_plugins() -> set[str] | None:
    """Names chosen by SLIMKIT_LOAD_PLUGINS; None means all."""
    value = os.environ.get(LOAD_ENV)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


class Plugins:
    """The typed facade: the rest of slimkit calls hooks only through these methods."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.techniques = TechniqueRegistry()
        self.records: dict[str, PluginRecord] = {}
        if os.environ.get(TRACE_ENV):
            self._trace()

    # -- registration ---------------------------------------------------------------------
    def register(
        self,
        plugin: object,
        name: str,
        *,
        origin: Origin = "test",
        distribution: str | None = None,
        version: str | None = None,
    ) -> PluginRecord:
        """Register one plugin object and collect its techniques.

        Raises PluginError for a plugin added by code (tests, local files); discovery catches it
        and records the plugin as failed instead.
        """
        record = PluginRecord(name=name, origin=origin, status="loaded", distribution=distribution, version=version)
        if name in self.records and self.records[name].status == "loaded":
            raise PluginError(f"a plugin named {name!r} is already registered")
        try:
            self.pm.register(plugin, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            raise PluginError(f"plugin {name!r} cannot be registered: {exc}") from None
        try:
            self._check_hooks(plugin, name)
            self._collect_techniques(name, version)
        except Exception:
            self.pm.unregister(plugin, name=name)
            self.techniques.drop_plugin(name)
            raise
        record.techniques = [t.name for t in self.techniques.of_plugin(name)]
        record.hooks = sorted(c.name for c in self.pm.get_hookcallers(plugin) or [])
        self.records[name] = record
        return record

    def unregister(self, name: str) -> None:
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin, name=name)
        self.techniques.drop_plugin(name)
        self.records.pop(name, None)

    def _check_hooks(self, plugin: object, name: str) -> None:
        for caller in self.pm.get_hookcallers(plugin) or []:
            if not caller.has_spec():
                raise PluginError(
                    f"plugin {name!r} implements unknown hook {caller.name!r}",
                    fix="check the spelling against docs/hooks.md",
                )

    def _collect_techniques(self, name: str, version: str | None) -> None:
        register = self.techniques.register_for(name, version)
        for impl in self.pm.hook.register_techniques.get_hookimpls():
            if impl.plugin_name == name:
                impl.function(register=register)

    def _record_failure(self, record: PluginRecord, exc: BaseException) -> None:
        missing = getattr(exc, "name", None)
        record.status = "unavailable" if isinstance(exc, ModuleNotFoundError) and missing else "failed"
        detail = str(exc) if isinstance(exc, PluginError) else f"{type(exc).__name__}: {exc}"
        record.error = detail.splitlines()[0] if detail else type(exc).__name__
        if os.environ.get(TRACE_ENV):
            traceback.print_exception(exc, file=sys.stderr)
        self.records[record.name] = record

    def load_builtins(self) -> None:
        import importlib

        for module_name in BUILTINS:
            module = importlib.import_module(module_name)
            self.register(
                module, module_name.rsplit(".", 1)[-1], origin="builtin", distribution="slimkit", version=_own_version()
            )

    def load_entrypoints(self, entry_points: Iterable[md.EntryPoint] | None = None) -> None:
        """Load every ``slimkit`` entry point on its own; failures are recorded, not raised."""
        chosen = selected_plugins()
        eps = md.entry_points(group=ENTRY_POINT_GROUP) if entry_points is None else entry_points
        for ep in eps:
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else None
            version = dist.version if dist is not None else None
            record = PluginRecord(
                name=ep.name, origin="entry-point", status="skipped", distribution=dist_name, version=version
            )
            if chosen is not None and ep.name not in chosen and (dist_name or "") not in chosen:
                record.error = f"not in {LOAD_ENV}"
                self.records.setdefault(ep.name, record)
                continue
            if ep.name in self.records and self.records[ep.name].status == "loaded":
                continue
            try:
                plugin = ep.load()
                self.register(plugin, ep.name, origin="entry-point", distribution=dist_name, version=version)
            except Exception as exc:  # noqa: BLE001 - a broken plugin must never take slimkit down
                self._record_failure(record, exc)

    def load_local(self, path: Path) -> PluginRecord:
        """Load a project-local plugin file named in a pipeline."""
        name = f"local:{path.stem}"
        if name in self.records and self.records[name].status == "loaded":
            return self.records[name]
        if not path.is_file():
            raise PluginError(f"local plugin file not found: {path}", fix="fix the path in the pipeline's 'plugins'")
        spec = importlib.util.spec_from_file_location(f"slimkit_local_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise PluginError(f"cannot import local plugin {path}")
        module: ModuleType = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise PluginError(f"local plugin {path} failed to import: {type(exc).__name__}: {exc}") from None
        return self.register(module, name, origin="local", distribution=None, version=None)

    def _trace(self) -> None:
        def before(hook_name: str, impls: Sequence[Any], kwargs: dict[str, Any]) -> None:
            names = ", ".join(i.plugin_name for i in impls)
            print(f"[slimkit hook] {hook_name}({', '.join(kwargs)}) -> [{names}]", file=sys.stderr)

        def after(outcome: Any, hook_name: str, impls: Sequence[Any], kwargs: dict[str, Any]) -> None:
            exc = outcome.exception
            result = f"raised {type(exc).__name__}" if exc else f"returned {type(outcome.get_result()).__name__}"
            print(f"[slimkit hook] {hook_name} {result}", file=sys.stderr)

        self.pm.add_hookcall_monitoring(before, after)

    # -- typed hook calls -----------------------------------------------------------------
    def resolve_model(self, source: Any, pipeline: Any, cache_dir: Path) -> Artifact | None:
        result = self.pm.hook.resolve_model(source=source, pipeline=pipeline, cache_dir=cache_dir)
        if result is not None and not isinstance(result, Artifact):
            raise PluginError(f"resolve_model returned {type(result).__name__}, expected slimkit.Artifact")
        return result  # type: ignore[no-any-return]

    def run_stage(self, step: Any) -> Artifact:
        """Call the step's stage hook; the plugin owning its technique must return an artifact."""
        stage = step.technique.stage.value
        result = getattr(self.pm.hook, stage)(step=step)
        if result is None:
            raise PluginError(
                f"step {step.name!r}: plugin {step.technique.plugin!r} declares {step.technique.name!r} "
                f"but its '{stage}' hook returned None for it",
                fix=f"the plugin's {stage}() must return step.artifact() when step.owns({step.technique.name!r})",
            )
        if not isinstance(result, Artifact):
            raise PluginError(f"step {step.name!r}: the '{stage}' hook returned {type(result).__name__}, not an Artifact")
        return result

    def measure(self, artifacts: Sequence[Artifact], context: Any) -> tuple[dict[str, list[Metric]], dict[str, str]]:
        """Call every measurer separately so one broken measurer is named and the rest still count.

        Returns (metrics by artifact key, errors by plugin name).
        """
        merged: dict[str, list[Metric]] = {a.key: [] for a in artifacts}
        errors: dict[str, str] = {}
        impls = self.pm.hook.measure.get_hookimpls()
        others = {i.plugin_name for i in impls}
        for impl in impls:
            caller = self.pm.subset_hook_caller("measure", remove_plugins=[
                self.pm.get_plugin(n) for n in others - {impl.plugin_name}
            ])
            try:
                results = caller(artifacts=artifacts, context=context)
            except Exception as exc:  # noqa: BLE001 - recorded in results.json and the report
                errors[impl.plugin_name] = f"{type(exc).__name__}: {exc}"
                if os.environ.get(TRACE_ENV):
                    traceback.print_exception(exc, file=sys.stderr)
                continue
            for result in results:
                for key, metrics in (result or {}).items():
                    bucket = merged.setdefault(key, [])
                    for metric in metrics:
                        metric = metric if isinstance(metric, Metric) else Metric.model_validate(metric)
                        metric = metric.model_copy(update={"source": impl.plugin_name})
                        clash = next((m for m in bucket if m.name == metric.name), None)
                        if clash is not None:
                            raise PluginError(
                                f"metric {metric.name!r} is reported by both {clash.source!r} and {impl.plugin_name!r}"
                            )
                        bucket.append(metric)
        return merged, errors

    def before_step(self, step: Any) -> None:
        self.pm.hook.before_step(step=step)

    def after_step(self, step: Any, artifact: Artifact) -> None:
        self.pm.hook.after_step(step=step, artifact=artifact)

    def on_step_error(self, step: Any, error: BaseException) -> None:
        self.pm.hook.on_step_error(step=step, error=error)

    # -- queries --------------------------------------------------------------------------
    def loaded(self) -> list[PluginRecord]:
        return [r for r in self.records.values() if r.status == "loaded"]

    def problems(self) -> list[PluginRecord]:
        return [r for r in self.records.values() if r.status in ("failed", "unavailable")]


def _own_version() -> str | None:
    try:
        return md.version("slimkit")
    except md.PackageNotFoundError:
        return None


def build_plugins(*, entry_points: bool = True, builtins: bool = True) -> Plugins:
    """Build the plugin manager: specs, built-ins, then installed plugins (unless disabled)."""
    plugins = Plugins()
    if builtins:
        plugins.load_builtins()
    if entry_points:
        plugins.load_entrypoints()
    return plugins
