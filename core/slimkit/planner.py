"""The planner: from declarations alone, before any compute, turn a pipeline into a checked plan.

It resolves each step to a technique (named, or picked by stage and goal among those that fit the
machine), orders steps (``order = "auto"``: stable topological sort of the declared relations),
and checks the format chain, ordering relations, hardware, Python requirements and step configs.
Every problem is collected; none stops the others from being found.
"""

from __future__ import annotations

import importlib.metadata as md
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from pydantic import BaseModel, ValidationError

from slimkit.artifacts import cache_dir
from slimkit.errors import PlanRefused, SlimkitError, error_line
from slimkit.families import family_of
from slimkit.hardware import Hardware, probe
from slimkit.plugins import Plugins, build_plugins
from slimkit.registry_index import Index, load_index
from slimkit.spec import Pipeline, StepSpec
from slimkit.techniques import Goal, Stage, Technique
from slimkit.validation import error_message, field_path

DEFAULT_SOURCE_FORMAT = "transformers"


class Note(str):
    """A plan warning. It reads, prints, compares and serializes as its text (results.json keeps a list
    of strings), and carries a stable ``code`` that code decides on: rewording a warning never
    changes what the planner does with it."""

    code: str

    def __new__(cls, code: str, text: str) -> Note:
        note = super().__new__(cls, text)
        note.code = code
        return note

    @property
    def text(self) -> str:
        return str(self)

    def __reduce__(self) -> tuple[Any, ...]:  # str's own would rebuild it from the text alone
        return (Note, (self.code, str(self)))

    def __repr__(self) -> str:
        return f"Note({self.code!r}, {str(self)!r})"


# The codes of the planner's notes.
NO_SPEEDUP = "no-speedup"  # the technique runs here but makes inference no faster on this device
WEAK_CPU = "weak-cpu"  # this CPU lacks the features that make the technique fast
CUDA_UNCHECKED = "cuda-unchecked"  # 'cuda' was asked and cannot be checked without torch
MODEL_CONFIG_UNREAD = "model-config-unread"  # the source's config could not be read for the model checks
LOCAL_PLUGINS = "local-plugins"  # the pipeline's local plugin files run (trusted)
PLUGIN_BROKEN = "plugin-broken"  # an installed plugin failed to load or is unavailable
# Notes about speed alone, left out for a step whose goal is size, memory or accuracy.
SPEED_NOTES = frozenset({NO_SPEEDUP, WEAK_CPU})


@dataclass
class PlannedStep:
    index: int  # 1-based position in the final order
    name: str
    spec: StepSpec
    technique: Technique
    config: BaseModel
    input_format: str
    output_format: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "technique": self.technique.name,
            "stage": self.technique.stage.value,
            "plugin": self.technique.plugin,
            "plugin_version": self.technique.plugin_version,
            "config": self.config.model_dump(mode="json"),
            "input_format": self.input_format,
            "output_format": self.output_format,
            "reason": self.reason,
        }


@dataclass
class Plan:
    pipeline: Pipeline
    device: str
    hardware: Hardware
    source_format: str
    family: str | None = None  # the source model's family (its model_type), when readable at plan time
    steps: list[PlannedStep] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[Note] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_if_problems(self) -> None:
        if self.problems:
            raise PlanRefused(self.problems)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline.name,
            "ok": self.ok,
            "device": self.device,
            "source_format": self.source_format,
            "family": self.family,
            "steps": [s.as_dict() for s in self.steps],
            "problems": self.problems,
            "warnings": self.warnings,
        }


def _where(i: int, spec: StepSpec) -> str:
    return f"step {i} ({spec.label})"


def guess_source_format(pipeline: Pipeline) -> str:
    if pipeline.model.format:
        return pipeline.model.format
    return "onnx" if pipeline.model.source.endswith(".onnx") else DEFAULT_SOURCE_FORMAT


def resolve_device(requested: str, hardware: Hardware) -> str:
    """The device a file's ``device`` names on this machine: 'auto' is CUDA when there is one."""
    if requested != "auto":
        return requested
    return "cuda" if hardware.cuda else "cpu"


def hardware_fit(technique: Technique, device: str, hardware: Hardware) -> tuple[list[str], list[Note]]:
    """(reasons it cannot run here, reasons it will run but gain little)."""
    hw = technique.hardware
    blockers: list[str] = []
    weak: list[Note] = []
    if device not in hw.devices:
        blockers.append(f"runs on {', '.join(hw.devices)}, not {device}")
    if device == "cpu":
        if hw.cpu_arch and hardware.arch not in hw.cpu_arch:
            blockers.append(f"needs a {' or '.join(hw.cpu_arch)} CPU, this is {hardware.arch}")
        missing = [f for f in hw.cpu_features_required if not hardware.has(f)]
        if missing:
            blockers.append(f"needs CPU features {', '.join(missing)}")
        if hw.cpu_features_beneficial and not any(hardware.has(f) for f in hw.cpu_features_beneficial):
            lacks = " / ".join(hw.cpu_features_beneficial)
            weak.append(Note(WEAK_CPU, f"this CPU lacks {lacks}, so little speed-up is expected"))
    if device == "cuda" and hw.min_cuda_capability:
        best = hardware.best_cuda_capability()
        if best is not None and best < hw.min_cuda_capability:
            need = ".".join(map(str, hw.min_cuda_capability))
            blockers.append(f"needs CUDA capability {need}, this GPU has {'.'.join(map(str, best))}")
    if hw.speedup_devices is not None and device not in hw.speedup_devices:
        weak.append(Note(NO_SPEEDUP, f"gives no speed-up on {device}" + (f": {hw.notes}" if hw.notes else "")))
    return blockers, weak


def technique_blockers(technique: Technique, family: str | None, device: str, hardware: Hardware) -> list[str]:
    """Why a technique cannot run on this model family and machine (empty: it can): the family it
    does not declare, the device or CPU it lacks, its unmet Python requirements."""
    blockers = []
    if family is not None and technique.support_for(family) is None:
        blockers.append(f"supports {technique.supported_families()}, not {family}")
    blockers += hardware_fit(technique, device, hardware)[0]
    return blockers + requirement_problems(technique.requires)


def requirement_problems(requirements: list[str], index: Index | None = None) -> list[str]:
    """One line per PEP 508 requirement that the environment does not meet (markers respected).

    A distribution missing from the environment gets ``slimkit install NAME`` as its fix when the
    registry index knows it, else a pip command.
    """
    problems = []
    for text in requirements:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            problems.append(f"invalid requirement {text!r}")
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            installed = md.version(req.name)
        except md.PackageNotFoundError:
            entry = index.by_name(req.name) if index is not None else None
            fix = f"slimkit install {entry.name}" if entry is not None else f"pip install '{text}'"
            problems.append(f"needs {text} (not installed; fix: {fix})")
            continue
        if req.specifier and not req.specifier.contains(installed, prereleases=True):
            problems.append(f"needs {text} but {req.name} {installed} is installed")
    return problems


def _rank(technique: Technique, goal: Goal | None, device: str, hardware: Hardware) -> tuple[int, int, int, str]:
    goal_match = 1 if goal is not None and goal in technique.goals else 0
    features = sum(hardware.has(f) for f in technique.hardware.cpu_features_beneficial) if device == "cpu" else 0
    _, weak = hardware_fit(technique, device, hardware)
    return (-goal_match, len(weak), -technique.priority - features, technique.name)


class _Planner:
    def __init__(self, pipeline: Pipeline, plugins: Plugins, hardware: Hardware, index: Index) -> None:
        self.pipeline = pipeline
        self.plugins = plugins
        self.registry = plugins.techniques
        self.hardware = hardware
        self.index = index
        self.device = resolve_device(pipeline.device, hardware)
        self._reasons: dict[int, str] = {}  # written step number -> why the planner picked its technique
        self._invalid_configs: set[str] = set()  # names of steps whose config did not validate
        self._config: dict[str, Any] | None = None  # the source's config.json keys, once read
        self._config_read = False
        self.plan = Plan(
            pipeline=pipeline,
            device=self.device,
            hardware=hardware,
            source_format=guess_source_format(pipeline),
        )

    # Each method appends to self.plan.problems / warnings and never raises for user errors.
    def _device_present(self) -> None:
        """A device the pipeline names must exist here: CUDA checked through torch, MPS by platform."""
        fix = "(fix: device = 'cpu', or 'auto' to use a GPU when there is one)"
        if self.device == "cuda" and not self.hardware.cuda:
            if self.hardware.cuda_checked:
                self.plan.problems.append(f"device: 'cuda' was asked, but this machine has no CUDA device {fix}")
            else:
                self.plan.warnings.append(
                    Note(CUDA_UNCHECKED, "device: 'cuda' was asked, but without torch installed it cannot be checked")
                )
        if self.device == "mps" and (self.hardware.arch != "arm64" or sys.platform != "darwin"):
            self.plan.problems.append(f"device: 'mps' needs an Apple-silicon Mac, this is {self.hardware.arch} {fix}")

    def run(self) -> Plan:
        self._local_plugins()
        self._required_plugins()
        self._device_present()
        self._task_checks()
        config = self._source()
        self.plan.family = None if config is None else family_of(config)
        names = [s.label for s in self.pipeline.steps]
        if self.pipeline.baseline != "source" and self.pipeline.baseline not in names:
            self.plan.problems.append(
                f"baseline: {self.pipeline.baseline!r} is not a step name (fix: use 'source' or one of {names})"
            )
        resolved = self._resolve_steps()
        if None in resolved:
            # Without every technique there is no format chain or order to check, but each
            # resolved step's own problems (hardware, requirements, config) are still reported.
            for i, (spec, technique) in enumerate(zip(self.pipeline.steps, resolved, strict=True), 1):
                if technique is not None:
                    self._check_step(_where(i, spec), spec, technique)
            return self.plan
        techniques: list[Technique] = [t for t in resolved if t is not None]
        order = list(range(len(techniques)))
        if self.pipeline.order == "auto":
            order = self._auto_order(techniques)
        self._build(order, techniques)
        self._model_checks()
        return self.plan

    def _model_checks(self) -> None:
        """Techniques' own checks against the source model's config (read once, weights untouched).

        Only for steps whose input still has the source's shapes: after a prune or distill stage
        the widths are not known until that step has run, and the technique checks at step start.
        A step whose config did not validate is skipped: its problem is already listed.
        """
        config = self._source()
        if config is None:
            return
        for step in self.plan.steps:
            if step.technique.stage in (Stage.PRUNE, Stage.DISTILL):
                return
            if step.technique.check_model is None or step.name in self._invalid_configs:
                continue
            self._check_model(step, config)

    def _source(self) -> dict[str, Any] | None:
        """The source's config.json keys, read once without weights; None when they cannot be read at
        plan time (a hub id: nothing is downloaded to plan)."""
        if not self._config_read:
            self._config_read = True
            self._config = self._source_config()
        return self._config

    def _source_config(self) -> dict[str, Any] | None:
        try:
            return self.plugins.model_config(self.pipeline.model, self.pipeline, cache_dir())
        except SlimkitError as exc:  # bad input (a config.json that is not JSON): the run would fail on it too
            self.plan.problems.append(str(exc))
        except Exception as exc:  # a broken reader must not stop planning: the step checks again
            why = f"model: its config could not be read at plan time ({error_line(exc)})"
            self.plan.warnings.append(Note(MODEL_CONFIG_UNREAD, why))
        return None

    def _check_model(self, step: PlannedStep, config: dict[str, Any]) -> None:
        assert step.technique.check_model is not None
        where = _where(step.index, step.spec)
        try:
            problem = step.technique.check_model(step.config, config)
        except Exception as exc:  # a plugin's bug must not hide the plan's other problems
            self.plan.problems.append(
                f"{where}: the model check of {step.technique.name} (plugin {step.technique.plugin!r}) raised "
                f"{error_line(exc)} (fix: report it to the plugin's authors; the pipeline cannot be checked)"
            )
            return
        if problem:
            self.plan.problems.append(f"{where}: {problem}")

    def _task_checks(self) -> None:
        """Problems in the task's local data (a missing column, a label outside the label list),
        found now rather than when the first step that reads the data starts."""
        if self.pipeline.task is not None:
            self.plan.problems.extend(self.plugins.check_task(self.pipeline.task, self.pipeline))

    def _local_plugins(self) -> None:
        problems = load_local_plugins(self.pipeline.plugins, self.pipeline.resolve_path, self.plugins)
        self.plan.problems.extend(problems)
        if self.pipeline.plugins and self.plugins.trust_local:
            files = ", ".join(self.pipeline.plugins)
            self.plan.warnings.append(
                Note(LOCAL_PLUGINS, f"plugins: runs code from local plugin file(s) {files} (trusted)")
            )

    def _required_plugins(self) -> None:
        for problem in requirement_problems(self.pipeline.requires, self.index):
            self.plan.problems.append(f"the pipeline {problem}")
        for record in self.plugins.problems():
            state = "failed to load" if record.status == "failed" else "is unavailable"
            self.plan.warnings.append(Note(PLUGIN_BROKEN, f"plugin {record.name!r} {state}: {record.error}"))

    def _missing(self, i: int, spec: StepSpec, name: str) -> str:
        namespace = name.split(".", 1)[0]
        broken = next((r for r in self.plugins.problems() if namespace in (r.name, r.distribution or "")), None)
        if broken is not None:
            return (
                f"{_where(i, spec)}: technique {name!r} is unavailable because plugin {broken.name!r} "
                f"is {broken.status}: {broken.error}"
            )
        entry = self.index.provider_of(name)
        known = ", ".join(t.name for t in self.registry.all()) or "none"
        if entry is not None:
            return (
                f"{_where(i, spec)}: technique {name!r} is not installed; it comes with {entry.distribution} "
                f"(fix: slimkit install {entry.name})"
            )
        return f"{_where(i, spec)}: unknown technique {name!r} (installed: {known}; see `slimkit techniques`)"

    def _resolve_steps(self) -> list[Technique | None]:
        resolved: list[Technique | None] = []
        fmt = self.plan.source_format
        for i, spec in enumerate(self.pipeline.steps, 1):
            technique: Technique | None
            if spec.technique:
                technique = self.registry.get(spec.technique)
                if technique is None:
                    self.plan.problems.append(self._missing(i, spec, spec.technique))
                elif spec.stage and spec.stage != technique.stage:
                    self.plan.problems.append(
                        f"{_where(i, spec)}: {technique.name} is a {technique.stage.value} technique, "
                        f"not {spec.stage.value}"
                    )
            else:
                technique = self._pick(i, spec, fmt)
            if technique is not None:
                fmt = technique.output_format(fmt)
            resolved.append(technique)
        return resolved

    def _pick(self, i: int, spec: StepSpec, fmt: str) -> Technique | None:
        assert spec.stage is not None
        candidates = self.registry.for_stage(spec.stage)
        if not candidates:
            self.plan.problems.append(
                f"{_where(i, spec)}: no installed plugin offers a {spec.stage.value} technique "
                "(fix: `slimkit plugins --available` lists plugins that do)"
            )
            return None
        fitting: list[tuple[Technique, list[str]]] = []
        rejected: list[tuple[Technique, list[str]]] = []
        for t in candidates:
            blockers = technique_blockers(t, self.plan.family, self.device, self.hardware)
            if fmt not in t.consumes:
                blockers.insert(0, f"consumes {', '.join(t.consumes)}, not {fmt}")
            (rejected if blockers else fitting).append((t, blockers))
        if not fitting:
            why = "; ".join(f"{t.name}: {', '.join(b)}" for t, b in rejected)
            self.plan.problems.append(f"{_where(i, spec)}: no {spec.stage.value} technique fits: {why}")
            return None
        fitting.sort(key=lambda tb: _rank(tb[0], spec.goal, self.device, self.hardware))
        chosen = fitting[0][0]
        others = [t.name for t, _ in fitting[1:]]
        goal = f"goal {spec.goal.value}, " if spec.goal else ""
        reason = f"picked for {goal}{fmt} input on {self.device}" + (f" over {', '.join(others)}" if others else "")
        if rejected:
            reason += "; ruled out " + "; ".join(f"{t.name} ({', '.join(b)})" for t, b in rejected)
        self._reasons[i] = reason
        return chosen

    def _auto_order(self, techniques: list[Technique]) -> list[int]:
        """Stable topological order: among steps free to go next, the earliest written one."""
        n = len(techniques)
        must_precede: dict[int, set[int]] = {j: set() for j in range(n)}
        for a in range(n):
            for b in range(n):
                if a != b and _must_precede(techniques[a], techniques[b]):
                    must_precede[b].add(a)
        order: list[int] = []
        remaining = set(range(n))
        while remaining:
            free = sorted(j for j in remaining if not (must_precede[j] & remaining))
            if not free:
                names = ", ".join(techniques[j].name for j in sorted(remaining))
                self.plan.problems.append(
                    f"order = 'auto' cannot order these steps, their relations form a cycle: {names}"
                )
                return order + sorted(remaining)
            order.append(free[0])
            remaining.remove(free[0])
        return order

    def _build(self, order: list[int], techniques: list[Technique]) -> None:
        fmt = self.plan.source_format
        steps = self.pipeline.steps
        for pos, j in enumerate(order, 1):
            spec, technique = steps[j], techniques[j]
            where = _where(pos, spec)
            if fmt not in technique.consumes:
                self.plan.problems.append(self._format_problem(where, technique, fmt, pos))
            config = self._check_step(where, spec, technique)
            reason = self._reasons.get(j + 1, "named in the pipeline")
            out = technique.output_format(fmt)
            self.plan.steps.append(PlannedStep(pos, spec.label, spec, technique, config, fmt, out, reason))
            fmt = out
        self._relations()

    def _check_step(self, where: str, spec: StepSpec, technique: Technique) -> BaseModel:
        """A step's own problems (task, hardware, requirements, config); returns its config."""
        if technique.needs_task and self.pipeline.task is None:
            self.plan.problems.append(
                f"{where}: {technique.name} reads the pipeline's task, and this pipeline has none "
                "(fix: add a [task] table)"
            )
        if self.plan.family is not None and technique.support_for(self.plan.family) is None:
            self.plan.problems.append(self._family_problem(where, technique, self.plan.family))
        blockers, weak = hardware_fit(technique, self.device, self.hardware)
        for problem in blockers:
            self.plan.problems.append(f"{where}: {technique.name} {problem}")
        for note in weak:
            if note.code not in SPEED_NOTES or spec.goal in (None, Goal.SPEED):
                self.plan.warnings.append(Note(note.code, f"{where}: {technique.name} {note}"))
        for problem in requirement_problems(technique.requires, self.index):
            self.plan.problems.append(f"{where}: {technique.name} {problem}")
        try:
            return technique.validate_config(spec.config)
        except ValidationError as exc:
            bad: set[str] = set()
            for err in exc.errors():
                field_name = field_path(err["loc"])
                msg = "unknown option" if err["type"] == "extra_forbidden" else error_message(err)
                self.plan.problems.append(f"{where}: config.{field_name}: {msg}")
                if err["loc"]:
                    bad.add(str(err["loc"][0]))
            self._invalid_configs.add(spec.label)
            # For display only (the plan is refused): the options that did validate.
            return technique.config.model_construct(**{k: v for k, v in spec.config.items() if k not in bad})

    def _family_problem(self, where: str, technique: Technique, family: str) -> str:
        """Refuse a technique for the model's family, naming what it supports and what would work."""
        others = [t.name for t in self.registry.for_stage(technique.stage) if t.support_for(family) is not None]
        fix = (
            f"drop the step, or use {' or '.join(others)} instead"
            if others
            else (f"drop the step: no installed {technique.stage.value} technique supports it")
        )
        return (
            f"{where}: {technique.name} does not support model family {family!r} (it supports "
            f"{technique.supported_families()}; fix: {fix}; see docs/compatibility.md)"
        )

    def _format_problem(self, where: str, technique: Technique, fmt: str, pos: int) -> str:
        needs = " or ".join(technique.consumes)
        origin = "the model source" if pos == 1 else f"step {pos - 1}"
        # Fix 1: move the step before the earlier step that turned an accepted format into this one.
        for earlier in reversed(self.plan.steps):
            if earlier.output_format == fmt and earlier.input_format in technique.consumes:
                fix = (
                    f"move it before step {earlier.index} ({earlier.name}), "
                    f"which turns {earlier.input_format} into {fmt}"
                )
                break
        else:
            # Fix 2: add a converter from this format to one it accepts.
            producers = [t.name for t in self.registry.all() if t.produces in technique.consumes and fmt in t.consumes]
            if producers:
                fix = f"add a step such as {' or '.join(producers)} before it"
            elif pos == 1:
                fix = f"start from a model in {needs} format, or remove the step"
            else:
                fix = "remove the step, or choose a technique that consumes " + fmt
        return f"{where}: {technique.name} needs {needs} input but {origin} gives {fmt} (fix: {fix})"

    def _relations(self) -> None:
        steps = self.plan.steps
        for a in range(len(steps)):
            for b in range(a + 1, len(steps)):
                first, second = steps[a], steps[b]
                t1, t2 = first.technique, second.technique
                if _must_precede(t2, t1):
                    why = _relation_reason(t2, t1)
                    self.plan.problems.append(
                        f"step {first.index} ({first.name}) runs before step {second.index} ({second.name}), "
                        f'but {why} (fix: reorder the steps, or set order = "auto")'
                    )
                if any(t2.matches(r) for r in t1.conflicts) or any(t1.matches(r) for r in t2.conflicts):
                    self.plan.problems.append(
                        f"step {first.index} ({first.name}) and step {second.index} ({second.name}) "
                        f"cannot be combined: {t1.name} and {t2.name} conflict"
                    )


def load_local_plugins(files: list[str], resolve: Callable[[str], Path], plugins: Plugins) -> list[str]:
    """Import a file's local plugins, only once the user trusts them: importing a file runs its code,
    and planning a file someone sent must not run theirs. Returns the problems."""
    if not files:
        return []
    if not plugins.trust_local:
        return [
            f"plugins: the file names local plugin code ({', '.join(files)}) that is not imported without your "
            "trust (fix: read it, then pass --trust-local-plugins or set SLIMKIT_TRUST_LOCAL_PLUGINS=1)"
        ]
    problems = []
    for entry in files:
        try:
            plugins.load_local(resolve(entry))
        except SlimkitError as exc:
            problems.append(str(exc))
    return problems


def _must_precede(a: Technique, b: Technique) -> bool:
    """Whether a declaration says ``a`` must run before ``b``."""
    return any(a.matches(r) for r in b.after) or any(b.matches(r) for r in a.before)


def _relation_reason(a: Technique, b: Technique) -> str:
    ref = next((r for r in b.after if a.matches(r)), None)
    if ref is not None:
        return f"{b.name} declares it must come after {ref!r}"
    ref = next(r for r in a.before if b.matches(r))
    return f"{a.name} declares it must come before {ref!r}"


def plan_pipeline(
    pipeline: Pipeline,
    *,
    plugins: Plugins | None = None,
    hardware: Hardware | None = None,
    index: Index | None = None,
    index_path: Path | None = None,
) -> Plan:
    """Plan a pipeline. Never raises for problems in the pipeline: see ``Plan.problems``."""
    plugins = plugins or build_plugins()
    hardware = hardware or probe(cuda=pipeline.device in ("auto", "cuda"))
    index = index or load_index(index_path)
    return _Planner(pipeline, plugins, hardware, index).run()
