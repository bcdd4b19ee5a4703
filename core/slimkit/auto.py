"""``recipe = "auto"`` and ``slimkit compress``: a study built from the installed plugins' recipes.

From the model's family (its config.json, read without weights), the device and the goal, every
declared recipe is either kept as a candidate variant (with the reason) or left out (with the
reason), before any compute. A model whose head is not trained yet is fine-tuned first by a
``train`` recipe, and that fine-tuned model is the baseline; an already fine-tuned classifier is
its own baseline. The result is an ordinary study, run by the study machinery: built within the
time budget (cheapest recipes first), measured in one session, the best within the accuracy
budget chosen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from slimkit.errors import SpecError
from slimkit.families import family_of, kind_of
from slimkit.hardware import Hardware
from slimkit.planner import technique_blockers
from slimkit.plugins import Plugins
from slimkit.recipes import Recipe, RecipeStep
from slimkit.spec import (
    TRACKING_HELP,
    FileBased,
    MeasureSpec,
    ModelSource,
    Seed,
    StoreDir,
    TaskSpec,
    Tracking,
    UnlabelledTexts,
    model_shorthand,
    pipeline_from_dict,
    problems_of,
)
from slimkit.study.spec import Study, study_from_dict

# The study objective (search.objective) each goal stands for.
OBJECTIVES = {"speed": "latency", "size": "size", "memory": "peak_rss_bytes"}
_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m(?:in)?)?\s*(?:(\d+(?:\.\d+)?)s)?\s*$")


def parse_duration(value: str | float | int) -> float:
    """Seconds from ``90``, ``"90s"``, ``"45m"``, ``"2h"`` or ``"1h30m"``; ValueError otherwise."""
    if isinstance(value, int | float):
        seconds = float(value)
    elif not isinstance(value, str):  # a list or table from a file: say so, in the field's one line
        raise ValueError(f"{value!r} is not a duration (write e.g. 3600, '90m', '2h' or '1h30m')")
    else:
        text = value.strip().lower()
        match = _DURATION.match(text)
        if text.replace(".", "", 1).isdigit():
            seconds = float(text)
        elif match and any(match.groups()):
            hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
            seconds = hours * 3600 + minutes * 60 + secs
        else:
            raise ValueError(f"{value!r} is not a duration (write e.g. 3600, '90m', '2h' or '1h30m')")
    if seconds <= 0:
        raise ValueError(f"{value!r}: a time budget must be longer than zero")
    return seconds


class AutoSpec(FileBased):
    """A pipeline file that says ``recipe = "auto"``: what to compress and what matters, no steps."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="compress", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Run name.")
    model: ModelSource = Field(description="The model to compress: hub id, local folder or GGUF file.")
    task: TaskSpec = Field(description="Labelled data for training, calibration and accuracy, as in a pipeline.")
    recipe: Literal["auto"] = Field(description="'auto': candidate variants come from the plugins' recipes.")
    goal: Literal["speed", "size", "memory"] = Field(default="speed", description="What the chosen model improves.")
    budget: float = Field(default=1.0, ge=0, description="Accuracy the chosen model may lose, in points (x100).")
    metric: str | None = Field(default=None, description="Accuracy metric of the budget; default: the task's first.")
    time_budget: float | None = Field(
        default=None, description="Stop starting new variants after this long: seconds, or '45m', '2h', '1h30m'."
    )
    finetune: Literal["auto", "yes", "no"] = Field(
        default="auto",
        description="'auto': fine-tune first unless the model is already a classifier with named labels; "
        "'yes' always; 'no' never (the source is the baseline).",
    )
    train: dict[str, Any] = Field(default_factory=dict, description="Options over the train recipe's, e.g. epochs.")
    unlabelled: UnlabelledTexts | None = Field(
        default=None,
        description="Unlabelled in-domain texts, e.g. {data_file = 'traffic.csv'} or {preset = 'goemotions', "
        "max_rows = 10000}: given to every recipe step whose technique takes them (a distillation's transfer set, "
        "which the teacher labels).",
    )
    recipes: list[str] | None = Field(default=None, description="Only these recipes (names as `--plan` lists them).")
    measure: MeasureSpec = Field(default_factory=MeasureSpec, description="Settings of the measurement session.")
    output_dir: Path | None = Field(default=None, description="Study directory; default runs/<name>.")
    store_dir: StoreDir | None = Field(
        default=None,
        description="Step store, a folder or an fsspec URL (s3://bucket/prefix); default <output_dir>/steps.",
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(default="auto", description="As in a pipeline file.")
    seed: Seed = Field(default=0, description="Global seed passed to every step.")
    requires: list[str] = Field(default_factory=list, description="Plugin distributions required.")
    plugins: list[str] = Field(default_factory=list, description="Project-local plugin files.")
    tracking: Tracking = Field(default_factory=dict, description=TRACKING_HELP)

    @model_validator(mode="before")
    @classmethod
    def _model_shorthand(cls, data: Any) -> Any:
        return model_shorthand(data)

    @model_validator(mode="after")
    def _single_texts(self) -> AutoSpec:
        if self.unlabelled is not None and self.task.text_pair_column is not None:
            raise ValueError(
                "unlabelled texts are single texts and the task is a sentence-pair task: leave 'unlabelled' unset"
            )
        return self

    @field_validator("time_budget", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)


def is_auto(data: dict[str, Any]) -> bool:
    """Whether a pipeline file's table asks for ``recipe = "auto"``."""
    return "recipe" in data


def auto_from_dict(data: dict[str, Any], *, base_dir: Path | None = None, source: str | None = None) -> AutoSpec:
    from pydantic import ValidationError

    try:
        spec = AutoSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(problems_of(exc, data), source=source) from None
    if base_dir is not None:
        spec._base_dir = base_dir
    return spec


@dataclass
class Candidate:
    recipe: Recipe
    steps: list[RecipeStep]
    reason: str


@dataclass
class AutoPlan:
    """What ``auto`` will try and why, and the study that tries it."""

    spec: AutoSpec
    family: str | None
    kind: str
    base: str  # why the baseline is what it is
    candidates: list[Candidate] = field(default_factory=list)
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (recipe, why)
    problems: list[str] = field(default_factory=list)
    # The techniques given the unlabelled texts, each with the labels of its steps that got them.
    unlabelled_steps: dict[str, list[str]] = field(default_factory=dict)
    study: Study | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "kind": self.kind,
            "base": self.base,
            "candidates": [
                {"recipe": c.recipe.name, "steps": [s.label for s in c.steps], "why": c.reason} for c in self.candidates
            ],
            "left_out": [{"recipe": r, "why": why} for r, why in self.left_out],
            "unlabelled_steps": self.unlabelled_steps,
            "problems": self.problems,
        }


def _source_config(spec: AutoSpec, plugins: Plugins) -> dict[str, Any] | None:
    from slimkit.artifacts import cache_dir

    pipeline = pipeline_from_dict({"name": spec.name, "model": spec.model.model_dump()}, base_dir=spec.base_dir)
    return plugins.model_config(spec.model, pipeline, cache_dir())


def head_trained(config: dict[str, Any]) -> bool:
    """Whether the source is already a classifier: a sequence-classification architecture whose
    labels have names (a head that was never trained keeps transformers' LABEL_0, LABEL_1, ...)."""
    classifier = any(str(a).endswith("ForSequenceClassification") for a in config.get("architectures") or [])
    names = [str(v) for v in (config.get("id2label") or {}).values()]
    return classifier and bool(names) and not all(re.fullmatch(r"LABEL_\d+", n) for n in names)


def fit_steps(
    recipe: Recipe, plugins: Plugins, family: str | None, device: str, hardware: Hardware
) -> tuple[list[RecipeStep], list[str]] | str:
    """The recipe's steps that apply here and the labels of the optional ones left out, or why the
    recipe does not apply."""
    steps = plugins.recipes.steps_of(recipe)
    if isinstance(steps, str):
        return steps
    kept: list[RecipeStep] = []
    for step in steps:
        why = _step_misfit(step, plugins, family, device, hardware)
        if why is None:
            kept.append(step)
        elif not step.optional:
            return why
    return kept, [s.label for s in steps if s not in kept]


def _step_misfit(step: RecipeStep, plugins: Plugins, family: str | None, device: str, hardware: Hardware) -> str | None:
    assert step.technique is not None
    technique = plugins.techniques.get(step.technique)
    if technique is None:
        return f"{step.technique} is not installed"
    blockers = technique_blockers(technique, family, device, hardware)
    return f"{technique.name} {blockers[0]}" if blockers else None


def plan_auto(spec: AutoSpec, plugins: Plugins, hardware: Hardware) -> AutoPlan:
    """Choose the candidate recipes and build the study; problems are collected, never raised."""
    from slimkit.planner import load_local_plugins, resolve_device

    problems = load_local_plugins(spec.plugins, spec.resolve_path, plugins)
    config = (_source_config(spec, plugins) or {}) if not problems else {}
    family = family_of(config)
    kind = kind_of(config.get("model_type"), config.get("architectures"))
    device = resolve_device(spec.device, hardware)
    plan = AutoPlan(spec=spec, family=family, kind=kind, base="", problems=problems)
    if problems:
        return plan
    if not config:
        plan.problems.append(
            f"model: {spec.model.source}: its config.json cannot be read (a hub id needs the hub; a folder needs "
            "config.json), so its family is unknown (fix: name a local folder, a .gguf file or a reachable hub id)"
        )
        return plan
    base = _base_steps(plan, plugins, config, device, hardware)
    for recipe in plugins.recipes.all():
        if recipe.role != "compress":
            continue
        why = _recipe_misfit(recipe, spec, kind)
        fitted = fit_steps(recipe, plugins, family, device, hardware) if why is None else why
        if isinstance(fitted, str):
            plan.left_out.append((recipe.name, fitted))
        else:
            kept, dropped = fitted
            without = f" (without {', '.join(dropped)}: not for this model)" if dropped else ""
            plan.candidates.append(Candidate(recipe, kept, recipe.summary + without))
    _give_unlabelled(plan, plugins)
    if not plan.candidates:
        plan.problems.append(
            f"no installed recipe fits a {family} {kind} for goal {spec.goal} on {device} "
            "(fix: `slimkit plugins --available` lists plugins that bring recipes; see docs/compatibility.md)"
        )
    if base is not None and not plan.problems:
        plan.study = study_from_dict(_study_dict(spec, base, plan.candidates), base_dir=spec.base_dir)
    return plan


def _give_unlabelled(plan: AutoPlan, plugins: Plugins) -> None:
    """Put the spec's unlabelled texts into every candidate step whose technique takes them (unless the
    recipe already set that field), and note which steps got them; a missing file is a plan problem."""
    texts = plan.spec.unlabelled
    if texts is None:
        return
    if texts.data_file is not None and not plan.spec.resolve_path(texts.data_file).is_file():
        plan.problems.append(f"unlabelled.data_file: no such file {texts.data_file} (fix: name a file of texts)")
        return
    value = texts.model_dump(exclude_defaults=True)
    for candidate in plan.candidates:
        candidate.steps = [_with_unlabelled(step, plugins, value, plan.unlabelled_steps) for step in candidate.steps]
    for name in plan.unlabelled_steps:
        technique = plugins.techniques.get(name)
        if technique is not None and (why := technique.unlabelled_refusal(value)):
            plan.problems.append(f"unlabelled: {why} (technique {name})")


def _with_unlabelled(
    step: RecipeStep, plugins: Plugins, value: dict[str, Any], given: dict[str, list[str]]
) -> RecipeStep:
    technique = plugins.techniques.get(step.technique or "")
    field_name = technique.unlabelled_texts if technique else None
    if field_name is None or field_name in step.config:
        return step
    labels = given.setdefault(step.technique or "", [])
    if step.label not in labels:
        labels.append(step.label)
    # A copy: the declared recipe is shared by every plan made in this process.
    return step.model_copy(update={"config": {**step.config, field_name: value}})


def _recipe_misfit(recipe: Recipe, spec: AutoSpec, kind: str) -> str | None:
    if spec.recipes is not None and recipe.name not in spec.recipes:
        return "not in the file's recipes list"
    if spec.goal not in recipe.goals:
        return f"for {', '.join(recipe.goals)}, not {spec.goal}"
    if kind not in recipe.kinds:
        article = "an" if kind == "encoder" else "a"
        return f"meant for {' and '.join(recipe.kinds)}s, this is {article} {kind}"
    return None


def _base_steps(
    plan: AutoPlan, plugins: Plugins, config: dict[str, Any], device: str, hardware: Hardware
) -> list[dict[str, Any]] | None:
    """The base steps (none for a trained classifier, else a train recipe's), with ``plan.base`` saying why."""
    spec = plan.spec
    if spec.finetune == "no" or (spec.finetune == "auto" and head_trained(config)):
        plan.base = "the source is the baseline: " + (
            "finetune = 'no'" if spec.finetune == "no" else "it is already a classifier with named labels"
        )
        return []
    for recipe in plugins.recipes.all():
        if recipe.role == "train" and plan.kind in recipe.kinds:
            fitted = fit_steps(recipe, plugins, plan.family, device, hardware)
            if not isinstance(fitted, str):
                why = "its head is not trained" if spec.finetune == "auto" else "finetune = 'yes'"
                plan.base = f"fine-tuned first by {recipe.name} ({why}); that model is the baseline"
                steps = [s.model_dump(exclude_unset=True, exclude={"optional"}) for s in fitted[0]]
                steps[0]["config"] = steps[0].get("config", {}) | spec.train
                return steps
    plan.problems.append(
        f"the model needs fine-tuning and no installed train recipe fits a {plan.family} {plan.kind} "
        "(fix: install slimkit-transformers, or give an already fine-tuned classifier)"
    )
    return None


def _study_dict(spec: AutoSpec, base: list[dict[str, Any]], candidates: list[Candidate]) -> dict[str, Any]:
    data = spec.model_dump(
        include={
            "name",
            "model",
            "task",
            "measure",
            "output_dir",
            "store_dir",
            "device",
            "seed",
            "requires",
            "plugins",
            "tracking",
        },
        exclude_unset=True,
        mode="json",
    )
    data["model"] = spec.model.model_dump(exclude_unset=True)
    data["base"] = base
    data["blocks"] = {
        c.recipe.name: [s.model_dump(exclude_unset=True, exclude={"optional"}) for s in c.steps] for c in candidates
    }
    data["variants"] = [{"name": c.recipe.name, "blocks": [c.recipe.name]} for c in candidates]
    search: dict[str, Any] = {"objective": OBJECTIVES[spec.goal], "budget": {"max_drop_points": spec.budget}}
    if spec.metric is not None:
        search["budget"]["metric"] = spec.metric
    if spec.time_budget is not None:
        search["time_budget_s"] = spec.time_budget
    data["search"] = search
    return data
