"""Recipes: named chains of steps that plugins declare, from which ``recipe = "auto"`` builds a study.

A recipe is data, like a technique declaration: what it does, what it is good for (goals), how
costly it is to build, and its steps (techniques with their options). Which models it fits is not
written twice: a recipe fits a model family when every technique in it is installed and declares
that family (an ``optional`` step is left out where it does not fit). Plugins register recipes
through ``register_recipes(register)``; a recipe may name techniques of other plugins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from slimkit.errors import PluginError
from slimkit.spec import StepSpec
from slimkit.techniques import NAME_PATTERN, Goal
from slimkit.validation import one_line

ModelKind = Literal["encoder", "decoder"]
KINDS: tuple[ModelKind, ...] = ("encoder", "decoder")


class RecipeStep(StepSpec):
    """A step of a recipe: a step as in a pipeline file, which may be left out where it does not fit."""

    optional: bool = Field(
        default=False,
        description="Leave the step out (instead of the whole recipe) when its technique is not installed "
        "or does not support the model's family, e.g. vocabulary pruning of a tokenizer it cannot rebuild.",
    )


class RecipeInclude(BaseModel):
    """In a recipe's steps: all the steps of another recipe, in this place, so that a chain another
    plugin owns (its export and quantization, say) is named rather than copied."""

    model_config = ConfigDict(extra="forbid")

    recipe: str = Field(description="The other recipe's name, e.g. 'onnx.int8'.")


class Recipe(BaseModel):
    """A chain of steps a plugin recommends, applied after the baseline."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Namespaced name, '<plugin>.<recipe>', e.g. 'onnx.int8'.")
    summary: str = Field(description="One line saying what it does and what it is known to give.")
    steps: list[RecipeStep | RecipeInclude] = Field(
        min_length=1, description="Its steps, in order; {recipe = '<name>'} puts another recipe's steps in its place."
    )
    goals: list[Goal] = Field(min_length=1, description="What it is good for; 'auto' tries it for these goals.")
    role: Literal["compress", "train"] = Field(
        default="compress",
        description="'compress': a candidate variant after the baseline. 'train': how 'auto' fine-tunes a model "
        "whose head is not trained yet (the baseline then comes from it).",
    )
    kinds: list[ModelKind] = Field(
        default_factory=lambda: list(KINDS),
        description="Model kinds it is meant for (its options are sized for them, e.g. epochs of training).",
    )
    cost: int = Field(
        default=1,
        ge=1,
        le=5,
        description="Rough build cost, 1 (seconds to minutes, no training) to 5 (hours of training): cheaper "
        "recipes are built first, so a short time budget still ends with results.",
    )
    plugin: str | None = Field(default=None, description="Set by slimkit: the plugin that registered it.")

    @field_validator("name")
    @classmethod
    def _namespaced(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(f"{value!r} is not '<plugin>.<recipe>' in lower case (e.g. 'onnx.int8')")
        return value

    @field_validator("steps")
    @classmethod
    def _named_techniques(cls, steps: list[RecipeStep | RecipeInclude]) -> list[RecipeStep | RecipeInclude]:
        for step in steps:
            if isinstance(step, RecipeStep) and not step.technique:
                raise ValueError(f"step {step.label!r}: a recipe names its techniques (stages are resolved per model)")
        _unique_labels([s for s in steps if isinstance(s, RecipeStep)])
        return steps


def _unique_labels(steps: list[RecipeStep]) -> None:
    labels = [s.label for s in steps]
    if len(set(labels)) < len(labels):
        raise ValueError(f"step names repeat ({', '.join(labels)}): name the steps")


class RecipeRegistry:
    """All declared recipes, keyed by name; a second declaration of a name is an error."""

    def __init__(self) -> None:
        self._recipes: dict[str, Recipe] = {}

    def register_for(self, plugin: str) -> Callable[[Recipe | dict[str, Any]], None]:
        """The ``register`` callback handed to one plugin's ``register_recipes`` hook."""

        def register(recipe: Recipe | dict[str, Any]) -> None:
            try:
                declared = recipe if isinstance(recipe, Recipe) else Recipe.model_validate(recipe)
                declared = declared.model_copy(update={"plugin": plugin})
            except ValidationError as exc:
                raise PluginError(f"plugin {plugin!r} declared an invalid recipe: {one_line(exc)}") from None
            existing = self._recipes.get(declared.name)
            if existing is not None:
                raise PluginError(
                    f"recipe {declared.name!r} is declared by both plugin {existing.plugin!r} and plugin {plugin!r}"
                )
            self._recipes[declared.name] = declared

        return register

    def get(self, name: str) -> Recipe | None:
        return self._recipes.get(name)

    def steps_of(self, recipe: Recipe, within: tuple[str, ...] = ()) -> list[RecipeStep] | str:
        """The recipe's steps with every included recipe's steps in place, or why they cannot be had
        (an included recipe not installed, a cycle, repeated step names)."""
        steps: list[RecipeStep] = []
        for step in recipe.steps:
            if isinstance(step, RecipeStep):
                steps.append(step)
                continue
            included = self._recipes.get(step.recipe)
            if included is None or step.recipe in (*within, recipe.name):
                why = "is not installed" if included is None else "includes itself"
                return f"it includes recipe {step.recipe!r}, which {why}"
            found = self.steps_of(included, (*within, recipe.name))
            if isinstance(found, str):
                return found
            steps += found
        try:
            _unique_labels(steps)
        except ValueError as exc:
            return str(exc)
        return steps

    def all(self) -> list[Recipe]:
        return sorted(self._recipes.values(), key=lambda r: (r.cost, r.name))

    def drop_plugin(self, plugin: str) -> None:
        for name in [n for n, r in self._recipes.items() if r.plugin == plugin]:
            del self._recipes[name]
