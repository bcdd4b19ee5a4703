"""Study files: many pipeline variants over one model and task, compared in one measurement.

A study names the steps every variant shares (``base``: usually the fine-tuning that makes the
baseline), reusable ``blocks`` (one step or a short chain such as prune + recovery fine-tuning,
optionally with a ``grid`` of config values), and which combinations of blocks to try: explicit
``variants``, and/or a search ``space`` of ordered slots (each slot picks one of its blocks or
none). Every variant becomes an ordinary :class:`~slimkit.spec.Pipeline` that shares the study's
step store, so the baseline is trained once and a pruned model is built once for every
quantization that follows it.

This module only validates and expands; running is in :mod:`slimkit.study.runner`.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator, model_validator

from slimkit.errors import SpecError
from slimkit.spec import (
    TRACKING_HELP,
    FileBased,
    MeasureSpec,
    ModelSource,
    Pipeline,
    Seed,
    StepSpec,
    StoreDir,
    TaskSpec,
    Tracking,
    model_shorthand,
    pipeline_from_dict,
    read_spec_file,
    refuse_non_finite,
)
from slimkit.validation import error_message, field_path

BASELINE = "baseline"
# How far the raw combination count may exceed max_variants before expansion is refused unlisted:
# generous, because duplicates (a block in two slots, an explicit variant the space repeats) drop.
EXPANSION_MARGIN = 100
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
# Strategies that Optuna's samplers replaced: a study file naming one gets this one line.
REMOVED_STRATEGIES = {
    "levelwise": "'levelwise' was removed (fix: use strategy = 'tpe', which steers the search by each "
    "variant's provisional accuracy loss, or 'nsga2' for the accuracy/latency/size trade-off)",
}


class BlockStep(StepSpec):
    """A step of a block; ``grid`` turns it into one block variant per combination of values."""

    grid: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="Config option -> values to try; the block expands to every combination.",
    )

    @field_validator("grid")
    @classmethod
    def _non_empty(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        empty = [k for k, values in grid.items() if not values]
        if empty:
            raise ValueError(f"option(s) {', '.join(empty)} need at least one value")
        refuse_non_finite(grid, "grid")
        return grid


class VariantSpec(BaseModel):
    """An explicit variant: the base steps, then these blocks in order."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, description="Label in the report; default: the blocks joined by '+'.")
    blocks: list[str] = Field(min_length=1, description="Block names, applied in this order after the base steps.")


class BudgetSpec(BaseModel):
    """How much accuracy a variant may lose against the baseline and still be chosen."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    metric: str | None = Field(
        default=None, description="Accuracy metric; default the first measured of micro_f1, accuracy, macro_f1."
    )
    max_drop_points: float = Field(default=1.0, ge=0, description="Largest loss allowed, in points (x100).")


class SearchSpec(BaseModel):
    """Which variants to build, in what order, and how the winner is chosen."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    space: list[list[str]] = Field(
        default_factory=list,
        description="Ordered slots of block names; a variant picks at most one block per slot, "
        "so [['vocab'], ['int8', 'onnx-int8']] gives vocab, int8, onnx-int8, vocab+int8, vocab+onnx-int8.",
    )
    strategy: Literal["grid", "random", "tpe", "nsga2"] = Field(
        default="grid",
        description="'grid': every variant; 'random', 'tpe', 'nsga2': `samples` variants of the space "
        "proposed by Optuna's RandomSampler, TPESampler (the objective within the accuracy budget) or "
        "NSGAIISampler (accuracy loss against latency and size), steered by provisional figures.",
    )
    samples: StrictInt = Field(
        default=8,
        ge=1,
        le=10_000,
        description="Variants of the space that 'random', 'tpe' and 'nsga2' build (besides the baseline and "
        "the explicit variants).",
    )
    seed: Seed = Field(default=0, description="Seed of the Optuna sampler.")
    storage: str | None = Field(
        default=None,
        description="Optuna storage (an RDB URL such as sqlite:///path or postgresql://...); default "
        "sqlite:///<study dir>/optuna.db. Drivers that share one storage share the search.",
    )
    objective: str = Field(
        default="latency",
        description="What the chosen variant minimises: 'latency' (batch 1), 'size', or a metric name.",
    )
    budget: BudgetSpec = Field(default_factory=BudgetSpec, description="The accuracy budget.")
    tie_tolerance: float = Field(
        default=0.02,
        ge=0,
        lt=1,
        description="Variants within the budget whose objective is within this share of the best one's are tied "
        "(0.02: 2 %, finer than a measurement session resolves); the most accurate of them is chosen.",
    )
    time_budget_s: float | None = Field(
        default=None, gt=0, description="Stop starting new variants after this many seconds (checked between variants)."
    )
    max_variants: StrictInt = Field(
        default=64, ge=1, le=10_000, description="Refuse a study that expands to more variants than this."
    )

    @field_validator("strategy", mode="before")
    @classmethod
    def _removed(cls, value: Any) -> Any:
        if isinstance(value, str) and value in REMOVED_STRATEGIES:
            raise ValueError(REMOVED_STRATEGIES[value])
        return value

    @property
    def sampled(self) -> bool:
        """Whether an Optuna sampler proposes the variants of the space (every strategy but 'grid')."""
        return self.strategy != "grid"


class ExecutorSpec(BaseModel):
    """Where variants are built. 'local' runs them one after another in this process."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="local", description="Executor name; plugins can provide others (make_executor hook).")
    options: dict[str, Any] = Field(default_factory=dict, description="Passed to the executor as given.")


class Study(FileBased):
    """A study file: one model and task, many variants, one measurement, one report."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="study", pattern=_NAME, description="Study name; results go to runs/<name>.")
    model: ModelSource = Field(description="The model every variant starts from.")
    task: TaskSpec | None = Field(default=None, description="Labelled data, as in a pipeline file.")
    base: list[StepSpec] = Field(
        default_factory=list, description="Steps every variant starts with; the baseline is their output."
    )
    blocks: dict[str, list[BlockStep]] = Field(
        default_factory=dict, description="Named blocks: one step (a table) or a chain of steps (an array of tables)."
    )
    variants: list[VariantSpec] = Field(default_factory=list, description="Explicit variants.")
    search: SearchSpec = Field(default_factory=SearchSpec, description="Search space, strategy, budget, objective.")
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec, description="Where variants are built.")
    order: Literal["as_written", "auto"] = Field(default="as_written", description="Step order of each variant.")
    measure: MeasureSpec = Field(default_factory=MeasureSpec, description="Settings of the one measurement session.")
    output_dir: Path | None = Field(default=None, description="Study directory; default runs/<name>.")
    store_dir: StoreDir | None = Field(
        default=None, description="Step store shared by all variants (a folder or an s3:// URL); default <dir>/steps."
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(default="auto", description="As in a pipeline file.")
    seed: Seed = Field(default=0, description="Global seed passed to every step.")
    requires: list[str] = Field(default_factory=list, description="Plugin distributions every variant requires.")
    plugins: list[str] = Field(default_factory=list, description="Project-local plugin files.")
    tracking: Tracking = Field(default_factory=dict, description=TRACKING_HELP)

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = model_shorthand(data)
        blocks = data.get("blocks")
        if isinstance(blocks, dict):  # a single step written as a table is a chain of one
            data = dict(data, blocks={k: [v] if isinstance(v, dict) else v for k, v in blocks.items()})
        return data

    @model_validator(mode="after")
    def _references(self) -> Study:
        problems = []
        for name, steps in self.blocks.items():
            if not re.match(_NAME, name):
                problems.append(f"blocks.{name}: a block name uses letters, digits, '_', '.', '-'")
            if not steps:
                problems.append(f"blocks.{name}: a block needs at least one step")
        known = set(self.blocks)
        for i, variant in enumerate(self.variants):
            for block in variant.blocks:
                if block not in known:
                    problems.append(f"variants.{i}.blocks: unknown block {block!r} (blocks: {sorted(known)})")
        for i, slot in enumerate(self.search.space):
            if not slot:
                problems.append(f"search.space.{i}: a slot needs at least one block")
            for block in slot:
                if block not in known:
                    problems.append(f"search.space.{i}: unknown block {block!r} (blocks: {sorted(known)})")
        base_names = [s.label for s in self.base]
        if len(set(base_names)) != len(base_names):
            problems.append("base: give each base step a unique 'name'")
        if not self.variants and not self.search.space:
            problems.append("variants: the study has no variants; add [[variants]] or search.space")
        if problems:
            raise ValueError("; ".join(problems))
        return self


# -- Expansion ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockChoice:
    """One block with one point of its grid: the steps it adds to a variant."""

    block: str
    label: str  # 'prune' or 'prune[ffn_ratio=0.25]'
    steps: tuple[dict[str, Any], ...]


@dataclass
class Variant:
    """A variant to build: base steps, then its blocks' steps."""

    name: str
    blocks: tuple[BlockChoice, ...]
    pipeline: Pipeline
    explicit: bool = False
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def block_labels(self) -> tuple[str, ...]:
        return tuple(b.label for b in self.blocks)

    @property
    def level(self) -> int:
        return len(self.blocks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "blocks": list(self.block_labels),
            "steps": [s.label for s in self.pipeline.steps],
            "problems": self.problems,
            "warnings": self.warnings,
        }


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def block_choices(name: str, steps: list[BlockStep]) -> list[BlockChoice]:
    """Every grid point of a block (one choice when no step has a grid)."""
    axes: list[tuple[int, str, list[Any]]] = [(i, k, v) for i, s in enumerate(steps) for k, v in s.grid.items()]
    choices = []
    for values in itertools.product(*[v for _, _, v in axes]) if axes else [()]:
        raw = [s.model_dump(exclude_unset=True, exclude={"grid"}) for s in steps]
        for i, raw_step in enumerate(raw):
            raw_step.setdefault("name", name if len(steps) == 1 else f"{name}.{steps[i].label}")
            raw_step["config"] = dict(raw_step.get("config", {}))
        for (i, key, _), value in zip(axes, values, strict=True):
            raw[i]["config"][key] = value
        label = name
        if axes:
            label += "[" + ",".join(f"{k}={_value_text(v)}" for (_, k, _), v in zip(axes, values, strict=True)) + "]"
        choices.append(BlockChoice(block=name, label=label, steps=tuple(raw)))
    return choices


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.-")[:80] or "variant"


def variant_pipeline(study: Study, name: str, blocks: tuple[BlockChoice, ...], index: int) -> Pipeline:
    """The pipeline that builds one variant (measurement off: the study measures all at once)."""
    slug = f"{index:03d}-{_slug(name)}"
    data: dict[str, Any] = {
        "name": _slug(f"{study.name}.{slug}"),
        "model": study.model.model_dump(exclude_unset=True),
        "steps": [s.model_dump(exclude_unset=True) for s in study.base] + [s for b in blocks for s in b.steps],
        "order": study.order,
        # What the study compares against: the base steps' model (a step may name it, e.g. a
        # distillation teacher = "baseline").
        "baseline": study.base[-1].label if study.base else "source",
        "measure": study.measure.model_dump(mode="json") | {"enabled": False},
        "output_dir": str(study.run_dir / "variants" / slug),
        "store_dir": study.store_url or str(study.steps_dir),
        "device": study.device,
        "seed": study.seed,
        "requires": study.requires,
        "plugins": [str(study.resolve_path(p)) for p in study.plugins],
    }
    if study.task is not None:
        data["task"] = study.task.model_dump(exclude_unset=True)
    # Relative paths inside the task (data files) keep resolving against the study file's folder.
    return pipeline_from_dict(data, base_dir=study.base_dir, source=f"variant {name}")


def expand(study: Study) -> list[Variant]:
    """The baseline, then every explicit variant, then the search space; duplicates dropped.

    Raises SpecError when a variant does not validate or there are more than ``max_variants``.
    """
    _refuse_explosion(study)
    choices = {name: block_choices(name, steps) for name, steps in study.blocks.items()}
    combos: list[tuple[str | None, tuple[BlockChoice, ...], bool]] = [(BASELINE, (), True)]
    for spec in study.variants:
        for picked in itertools.product(*[choices[b] for b in spec.blocks]):
            joined = "+".join(c.label for c in picked)
            name = spec.name if spec.name and _single(spec, choices) else f"{spec.name}/{joined}" if spec.name else None
            combos.append((name, tuple(picked), True))
    slots = space_slots(study, choices)
    for picks in itertools.product(*[[None, *slot] for slot in slots]):
        chosen = tuple(c for c in picks if c is not None)
        if chosen:
            combos.append((None, chosen, False))
    seen: dict[tuple[str, ...], int] = {}
    variants: list[Variant] = []
    problems: list[str] = []
    for name, blocks, explicit in combos:
        key = tuple(b.label for b in blocks)
        if key in seen:
            continue
        seen[key] = len(variants)
        label = name or "+".join(key)
        if any(v.name == label for v in variants):
            problems.append(f"variants: two variants are named {label!r}; give them distinct names")
            continue
        try:
            pipeline = variant_pipeline(study, label, blocks, len(variants))
        except SpecError as exc:
            problems.extend(f"variant {label}: {p}" for p in exc.problems)
            continue
        variants.append(Variant(name=label, blocks=blocks, pipeline=pipeline, explicit=explicit))
    if problems:
        raise SpecError(problems)
    if len(variants) > study.search.max_variants:
        raise SpecError(
            [
                f"search.max_variants: the study expands to {len(variants)} variants, more than "
                f"{study.search.max_variants} (fix: raise max_variants, shrink the space, or use strategy = 'random')"
            ]
        )
    return variants


def space_slots(study: Study, choices: dict[str, list[BlockChoice]] | None = None) -> list[list[BlockChoice]]:
    """The search space's slots, each with every grid point of each of its blocks (a variant picks
    at most one per slot)."""
    if choices is None:
        choices = {name: block_choices(name, steps) for name, steps in study.blocks.items()}
    return [[c for block in slot for c in choices[block]] for slot in study.search.space]


def _refuse_explosion(study: Study) -> None:
    """Refuse, before listing them, combinations so many that listing them would itself hang.

    Counts grid points and slot picks without enumerating; duplicates are dropped only later, so
    this is an upper bound, and the exact count is checked against max_variants after expansion.
    """
    points = {name: math.prod(len(v) for s in steps for v in s.grid.values()) for name, steps in study.blocks.items()}
    explicit = sum(math.prod(points.get(b, 1) for b in v.blocks) for v in study.variants)
    space = math.prod(1 + sum(points.get(b, 1) for b in slot) for slot in study.search.space) - 1
    bound = 1 + explicit + space
    if bound > EXPANSION_MARGIN * study.search.max_variants:
        raise SpecError(
            [
                f"search.max_variants: the study expands to up to {bound} variants, more than "
                f"{study.search.max_variants} (fix: raise max_variants, shrink the space, or use strategy = 'random')"
            ]
        )


def _single(spec: VariantSpec, choices: dict[str, list[BlockChoice]]) -> bool:
    """Whether an explicit variant expands to exactly one combination (so its name fits it alone)."""
    return all(len(choices[b]) == 1 for b in spec.blocks)


# -- Loading --------------------------------------------------------------------------------


def study_problems(exc: ValidationError) -> list[str]:
    """One line per validation error, naming the field by its dotted path."""
    lines = []
    for err in exc.errors():
        field_name = field_path(err["loc"])
        msg = error_message(err)
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; docs/study.md lists the fields)"
        if err["type"] == "value_error" and not field_name:
            lines.extend(msg.split("; "))
            continue
        lines.append(f"{field_name + ': ' if field_name else ''}{msg}")
    return lines


def study_from_dict(data: Any, *, base_dir: Path | None = None, source: str | None = None) -> Study:
    try:
        study = Study.model_validate(data)
    except ValidationError as exc:
        raise SpecError(study_problems(exc), source=source) from None
    if base_dir is not None:
        study._base_dir = base_dir
    return study


def load_study(path: str | Path) -> Study:
    """Read a study from a TOML, YAML or JSON file; every problem is reported at once."""
    data = read_spec_file(path, kind="study")
    return study_from_dict(data, base_dir=Path(path).resolve().parent, source=str(path))
