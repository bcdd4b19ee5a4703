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

import hashlib
import importlib.metadata as md
import importlib.util
import os
import sys
import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

import pluggy
from pydantic import ValidationError

from slimkit import hookspecs
from slimkit.artifacts import Artifact
from slimkit.errors import PluginError, error_line
from slimkit.metrics import Metric
from slimkit.recipes import RecipeRegistry
from slimkit.techniques import TechniqueRegistry
from slimkit.validation import one_line

if TYPE_CHECKING:
    from slimkit.context import StepContext
    from slimkit.predictor import Predictor

ENTRY_POINT_GROUP = "slimkit"
LOAD_ENV = "SLIMKIT_LOAD_PLUGINS"
TRACE_ENV = "SLIMKIT_TRACE_HOOKS"
TRUST_ENV = "SLIMKIT_TRUST_LOCAL_PLUGINS"
BUILTINS = ("slimkit.builtin.disk", "slimkit.builtin.dispatch")

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


def _tracing() -> bool:
    return os.environ.get(TRACE_ENV, "") not in ("", "0")


def trust_from_environment() -> bool:
    """Whether SLIMKIT_TRUST_LOCAL_PLUGINS=1 allows importing the local plugin files pipelines name."""
    return os.environ.get(TRUST_ENV, "") not in ("", "0")


def selected_plugins() -> set[str] | None:
    """Names chosen by SLIMKIT_LOAD_PLUGINS; None means all."""
    value = os.environ.get(LOAD_ENV)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


class Plugins:
    """The typed facade: the rest of slimkit calls hooks only through these methods."""

    def __init__(self, *, trust_local: bool = False) -> None:
        # Whether local plugin files that a pipeline names may be imported (their code runs): a
        # pipeline someone sent must not run code before its user has opted in.
        self.trust_local = trust_local
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.techniques = TechniqueRegistry()
        self.recipes = RecipeRegistry()
        self.records: dict[str, PluginRecord] = {}
        self._local_paths: dict[str, Path] = {}  # local plugin name -> the file it came from
        if _tracing():
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
            self._collect_recipes(name)
        except Exception:
            self.pm.unregister(plugin, name=name)
            self.techniques.drop_plugin(name)
            self.recipes.drop_plugin(name)
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
        self.recipes.drop_plugin(name)
        self.records.pop(name, None)

    def _check_hooks(self, plugin: object, name: str) -> None:
        for caller in self.pm.get_hookcallers(plugin) or []:
            if not caller.has_spec():
                raise PluginError(
                    f"plugin {name!r} implements unknown hook {caller.name!r}",
                    fix="check the spelling against docs/hooks.md",
                )
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin and impl.kwargnames:
                    raise PluginError(
                        f"plugin {name!r}: hook {caller.name!r} gives parameters default values "
                        f"({', '.join(impl.kwargnames)}); slimkit may then never pass them",
                        fix="remove the defaults from the hook implementation's parameters",
                    )

    def _collect_techniques(self, name: str, version: str | None) -> None:
        register = self.techniques.register_for(name, version)
        for impl in self.pm.hook.register_techniques.get_hookimpls():
            if impl.plugin_name == name:
                try:
                    impl.function(register=register)
                except ValidationError as exc:  # a Technique(...) built inside the hook
                    raise PluginError(f"plugin {name!r} declared an invalid technique: {one_line(exc)}") from None

    def _collect_recipes(self, name: str) -> None:
        register = self.recipes.register_for(name)
        for impl in self.pm.hook.register_recipes.get_hookimpls():
            if impl.plugin_name == name:
                try:
                    impl.function(register=register)
                except ValidationError as exc:  # a Recipe(...) built inside the hook
                    raise PluginError(f"plugin {name!r} declared an invalid recipe: {one_line(exc)}") from None

    def _record_failure(self, record: PluginRecord, exc: BaseException, module: str | None = None) -> None:
        """Record a plugin that could not load.

        'unavailable': an import inside the plugin failed (an optional dependency is missing or too
        old); installing the dependency fixes it. 'failed': anything else, including the plugin's
        own module not being importable.
        """
        missing = getattr(exc, "name", None)
        own_module = bool(missing and module and (module == missing or module.startswith(f"{missing}.")))
        record.status = "unavailable" if isinstance(exc, ImportError) and not own_module else "failed"
        if isinstance(exc, PluginError):
            detail = str(exc)
        elif isinstance(exc, ValidationError):
            detail = f"{type(exc).__name__}: {exc.title}: {one_line(exc)}"
        else:
            detail = f"{type(exc).__name__}: {exc}"
        record.error = detail.splitlines()[0] if detail else type(exc).__name__
        if _tracing():
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
            except Exception as exc:  # a broken plugin must never take slimkit down
                module = getattr(ep, "module", None)
                self._record_failure(record, exc, module if isinstance(module, str) else None)

    def load_local(self, path: Path) -> PluginRecord:
        """Load a project-local plugin file named in a pipeline."""
        name = f"local:{path.stem}"
        if not path.is_file():
            raise PluginError(f"local plugin file not found: {path}", fix="fix the path in the pipeline's 'plugins'")
        if name in self.records and self.records[name].status == "loaded":
            earlier = self._local_paths.get(name)
            if earlier is not None and earlier != path.resolve():
                raise PluginError(
                    f"local plugins {earlier} and {path} have the same name {name!r}",
                    fix="rename one of the files",
                )
            return self.records[name]
        module_name = f"slimkit_local_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise PluginError(f"cannot import local plugin {path}")
        module: ModuleType = importlib.util.module_from_spec(spec)
        # Like a normal import: dataclasses and pydantic look the module up in sys.modules.
        previous = sys.modules.get(module_name)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
            # The file's content stands in for a version, so editing it invalidates finished steps.
            version = "file-" + hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            record = self.register(module, name, origin="local", distribution=None, version=version)
        except Exception as exc:
            if previous is None:
                sys.modules.pop(module_name, None)
            else:
                sys.modules[module_name] = previous
            if isinstance(exc, PluginError):
                raise
            raise PluginError(f"local plugin {path} failed to import: {type(exc).__name__}: {exc}") from None
        self._local_paths[name] = path.resolve()
        return record

    def _trace(self) -> None:
        def before(hook_name: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]) -> None:
            names = ", ".join(i.plugin_name for i in impls)
            print(f"[slimkit hook] {hook_name}({', '.join(kwargs)}) -> [{names}]", file=sys.stderr)

        def after(
            outcome: pluggy.Result[Any], hook_name: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]
        ) -> None:
            exc = outcome.exception
            result = f"raised {type(exc).__name__}" if exc else f"returned {type(outcome.get_result()).__name__}"
            print(f"[slimkit hook] {hook_name} {result}", file=sys.stderr)

        self.pm.add_hookcall_monitoring(before, after)

    # -- typed hook calls -----------------------------------------------------------------
    def resolve_model(self, source: Any, pipeline: Any, cache_dir: Path) -> Artifact | None:
        result = self.pm.hook.resolve_model(source=source, pipeline=pipeline, cache_dir=cache_dir)
        if result is not None and not isinstance(result, Artifact):
            raise PluginError(f"resolve_model returned {type(result).__name__}, expected slimkit.Artifact")
        return result

    def model_config(self, source: Any, pipeline: Any, cache_dir: Path) -> dict[str, Any] | None:
        result = self.pm.hook.model_config(source=source, pipeline=pipeline, cache_dir=cache_dir)
        if result is not None and not isinstance(result, dict):
            raise PluginError(f"model_config returned {type(result).__name__}, expected a dict or None")
        return result

    def check_task(self, task: Any, pipeline: Any) -> list[str]:
        """Every plugin's problems with the task's data, one line each.

        A plugin that raises (or returns something other than a list of strings) is listed as a
        problem naming it, so one broken checker neither crashes planning nor hides the others.
        """
        problems: list[str] = []
        for name, call in self._each_plugin("check_task"):
            try:
                results = call(task=task, pipeline=pipeline)
            except (Exception, SystemExit) as exc:
                problems.append(f"task: plugin {name!r} failed while checking the task's data: {error_line(exc)}")
                continue
            for found in results:
                if not isinstance(found, list) or not all(isinstance(p, str) for p in found):
                    problems.append(
                        f"task: plugin {name!r}: check_task returned {type(found).__name__}, expected a list of strings"
                    )
                    continue
                problems += [" ".join(p.splitlines()) for p in found]  # the CLI prints one line per problem
        return problems

    def _each_plugin(self, hook: str) -> list[tuple[str, Any]]:
        """(plugin name, a caller of ``hook`` limited to that plugin) for each implementation, so
        that an error is pinned on the plugin that raised it (tracing still sees every call)."""
        names = [impl.plugin_name for impl in getattr(self.pm.hook, hook).get_hookimpls()]
        return [
            (name, self.pm.subset_hook_caller(hook, remove_plugins=[self.pm.get_plugin(n) for n in names if n != name]))
            for name in names
        ]

    def run_stage(self, step: StepContext[Any]) -> Artifact:
        """Perform a step: its stage hook, which ends in the technique's declared implementation
        (the built-in ``dispatch`` plugin) unless a plugin's own stage hook returns first."""
        technique = step.technique
        stage = technique.stage.value
        result = getattr(self.pm.hook, stage)(step=step)
        if result is None:
            raise PluginError(
                f"step {step.name!r}: plugin {technique.plugin!r} declares {technique.name!r} but nothing performed "
                f"it: the declaration names no implementation and no '{stage}' hook returned an artifact",
                fix=f"declare implementation='package.module:function' for {technique.name!r}",
            )
        if not isinstance(result, Artifact):
            who = technique.implementation if isinstance(technique.implementation, str) else f"the '{stage}' hook"
            raise PluginError(f"step {step.name!r}: {who} returned {type(result).__name__}, not an Artifact")
        return result

    def measure(self, artifacts: Sequence[Artifact], context: Any) -> tuple[dict[str, list[Metric]], dict[str, str]]:
        """Call every measurer separately so one broken measurer is named and the rest still count.

        Returns (metrics by artifact key, errors by plugin name).
        """
        merged: dict[str, list[Metric]] = {a.key: [] for a in artifacts}
        errors: dict[str, str] = {}
        for name, results in self._each_answer("measure", errors, artifacts=artifacts, context=context):
            try:
                found = _checked_metrics(name, results, merged)
            except Exception as exc:  # a malformed result: the measurer failed, the others count
                errors[name] = error_line(exc)
                continue
            for key, metrics in found.items():
                merged.setdefault(key, []).extend(metrics)
        return merged, errors

    def load_predictor(self, artifact: Artifact, device: str, threads: int) -> Predictor | None:
        return self.pm.hook.load_predictor(artifact=artifact, device=device, threads=threads)  # type: ignore[no-any-return]

    def make_executor(self, name: str, options: dict[str, Any]) -> Any | None:
        return self.pm.hook.make_executor(name=name, options=options)

    def before_step(self, step: Any) -> None:
        self.pm.hook.before_step(step=step)

    def after_step(self, step: Any, artifact: Artifact) -> None:
        self.pm.hook.after_step(step=step, artifact=artifact)

    def on_step_error(self, step: Any, error: BaseException) -> None:
        self.pm.hook.on_step_error(step=step, error=error)

    def after_run(self, run_dir: Path, results: Any, tracking: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        """Call every tracker separately: a broken one is named and never changes the run.

        Returns (lines to show, errors by plugin name)."""
        errors: dict[str, str] = {}
        answers = self._each_answer("after_run", errors, run_dir=run_dir, results=results, tracking=tracking)
        lines = [str(line) for _, said in answers for line in said if line]
        return lines, errors

    def _each_answer(self, hook: str, errors: dict[str, str], **kwargs: Any) -> Iterator[tuple[str, Any]]:
        """(plugin name, what its implementation of ``hook`` returned) for each plugin, one at a
        time; one that raises is recorded in ``errors`` under its name and the others still run."""
        for name, caller in self._each_plugin(hook):
            try:
                answer = caller(**kwargs)
            except (Exception, SystemExit) as exc:  # named in the run's record; the others count
                errors[name] = error_line(exc)
                if _tracing():
                    traceback.print_exception(exc, file=sys.stderr)
                continue
            yield name, answer

    # -- queries --------------------------------------------------------------------------
    def loaded(self) -> list[PluginRecord]:
        return [r for r in self.records.values() if r.status == "loaded"]

    def problems(self) -> list[PluginRecord]:
        return [r for r in self.records.values() if r.status in ("failed", "unavailable")]


def _checked_metrics(
    plugin: str, results: Sequence[Any], merged: Mapping[str, list[Metric]]
) -> dict[str, list[Metric]]:
    """One measurer's results, validated and tagged with its name, before any is merged.

    Raises (so that the measurer is reported as failed) on a malformed result or on a metric name
    that another measurer, or this one, already reported for the same artifact.
    """
    found: dict[str, list[Metric]] = {}
    for result in results:
        if result is None:
            continue
        if not isinstance(result, Mapping):
            raise PluginError(f"measure returned {type(result).__name__}, expected a dict of artifact key -> metrics")
        for key, metrics in result.items():
            bucket = found.setdefault(key, [])
            for raw in metrics:
                metric = raw if isinstance(raw, Metric) else Metric.model_validate(raw)
                metric = metric.model_copy(update={"source": plugin})
                clash = next((m for m in [*merged.get(key, []), *bucket] if m.name == metric.name), None)
                if clash is not None:
                    raise PluginError(f"metric {metric.name!r} is reported by both {clash.source!r} and {plugin!r}")
                bucket.append(metric)
    return found


def _own_version() -> str | None:
    try:
        return md.version("slimkit")
    except md.PackageNotFoundError:
        return None


def build_plugins(*, entry_points: bool = True, builtins: bool = True, trust_local: bool = False) -> Plugins:
    """Build the plugin manager: specs, built-ins, then installed plugins (unless disabled).

    ``trust_local`` (or SLIMKIT_TRUST_LOCAL_PLUGINS=1) lets pipelines' local plugin files be imported."""
    plugins = Plugins(trust_local=trust_local or trust_from_environment())
    if builtins:
        plugins.load_builtins()
    if entry_points:
        plugins.load_entrypoints()
    return plugins
