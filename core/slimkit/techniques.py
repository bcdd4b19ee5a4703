"""Technique declarations: what a plugin offers, validated when it registers.

A declaration is all the planner knows about a technique. It must be enough to order and check a
pipeline before any model is loaded: formats in and out, ordering relations, hardware, Python
requirements and the config model.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from slimkit.errors import PluginError, error_line
from slimkit.families import ANY_FAMILY, family_name
from slimkit.validation import error_message, one_line

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_]*\.[a-z0-9][a-z0-9_-]*$")
IMPLEMENTATION_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
FAMILY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
DeviceKind = Literal["cpu", "cuda", "mps"]


class Stage(StrEnum):
    """Pipeline stages; one hook each. Their values are the hook names."""

    TRAIN = "train"
    PRUNE = "prune"
    DISTILL = "distill"
    QUANTIZE = "quantize"
    EXPORT = "export"


STAGE_NAMES = frozenset(s.value for s in Stage)


class Goal(StrEnum):
    """What a step is asked to improve; the planner ranks candidate techniques by it."""

    SPEED = "speed"
    SIZE = "size"
    MEMORY = "memory"
    ACCURACY = "accuracy"


class NoConfig(BaseModel):
    """Config of a technique that takes no options."""

    model_config = ConfigDict(extra="forbid")


# Mark a config field added to a technique after users stored steps with it:
# ``Field(default=..., json_schema_extra=KEY_WHEN_SET)``. Step keys leave the field out while it
# holds its default (``config_key_dump``), so adding an option does not rebuild every stored step.
KEY_WHEN_SET: dict[str, Any] = {"key": "when-set"}


def config_key_dump(config: BaseModel) -> dict[str, Any]:
    """A step's config as its key hashes it: ``model_dump(mode="json")`` without the fields marked
    ``KEY_WHEN_SET`` while they hold their default."""
    data = config.model_dump(mode="json")
    for name, field in type(config).model_fields.items():
        extra = field.json_schema_extra
        marked = isinstance(extra, dict) and extra.get("key") == KEY_WHEN_SET["key"]
        if marked and name in data and getattr(config, name) == field.get_default(call_default_factory=True):
            del data[name]
    return data


def _cpu_only() -> list[DeviceKind]:
    return ["cpu"]


class HardwareSupport(BaseModel):
    """Where a technique runs, and where it actually pays off."""

    model_config = ConfigDict(extra="forbid")

    devices: list[DeviceKind] = Field(default_factory=_cpu_only, description="Device kinds it runs on.")
    cpu_arch: list[str] = Field(
        default_factory=list, description="CPU architectures it runs on (platform.machine()); empty means any."
    )
    cpu_features_required: list[str] = Field(
        default_factory=list, description="CPU flags without which it cannot run on CPU (e.g. 'avx2')."
    )
    cpu_features_beneficial: list[str] = Field(
        default_factory=list,
        description="CPU flags that make it fast (e.g. 'avx512_vnni'); without any of them the planner warns.",
    )
    min_cuda_capability: tuple[int, int] | None = Field(
        default=None, description="Lowest CUDA compute capability (major, minor) it supports."
    )
    speedup_devices: list[DeviceKind] | None = Field(
        default=None,
        description="Device kinds where it makes inference faster; None means all it runs on, [] means none.",
    )
    notes: str | None = Field(default=None, description="One sentence on performance that users must know.")


class Technique(BaseModel):
    """A technique a plugin offers. Registered through ``register_techniques(register)``."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    name: str = Field(description="Namespaced name, '<plugin>.<technique>', e.g. 'onnx.quantize-dynamic'.")
    stage: Stage = Field(description="The stage it belongs to (ordering, goals, the stage hook that wraps it).")
    implementation: str | Callable[..., Any] | None = Field(
        default=None,
        exclude=True,
        description="The function that performs it, given the StepContext: 'package.module:function' (imported "
        "only when a step uses it, so planning imports nothing heavy) or the function itself. None: the "
        "plugin's stage hook performs it (the older style, still supported).",
    )
    summary: str = Field(description="One line saying what it does.")
    consumes: list[str] = Field(description="Model formats it accepts, e.g. ['transformers'].")
    produces: str | None = Field(default=None, description="Format it writes; None means the same as its input.")
    after: list[str] = Field(
        default_factory=list,
        description="Techniques or stages that must run earlier when both are in a pipeline.",
    )
    before: list[str] = Field(
        default_factory=list,
        description="Techniques or stages that must run later when both are in a pipeline.",
    )
    conflicts: list[str] = Field(default_factory=list, description="Techniques or stages it must not be combined with.")
    goals: list[Goal] = Field(default_factory=list, description="What it improves; used to rank stage-only steps.")
    hardware: HardwareSupport = Field(default_factory=HardwareSupport, description="Where it runs and pays off.")
    requires: list[str] = Field(
        default_factory=list,
        description="PEP 508 requirements checked at plan time, e.g. 'onnxruntime>=1.17' or 'transformers<5'.",
    )
    config: type[BaseModel] = Field(default=NoConfig, description="Pydantic model of its options.")
    needs_task: bool = Field(
        default=False,
        description="Whether it reads the pipeline's task (training, calibration, vocabulary pruning): a pipeline "
        "without a [task] table is refused at plan time, before any compute.",
    )
    check_model: Callable[[BaseModel, dict[str, Any]], str | None] | None = Field(
        default=None,
        exclude=True,
        description="Plan-time check of the step's config against the source model's config.json keys (for "
        "example a group size that must divide the hidden size): returns a problem line (say what fits) or None. "
        "Called when no earlier step changes the model's shapes.",
    )
    families: dict[str, str] | None = Field(
        default=None,
        description="Model families it supports, by Hugging Face model_type ('bert', 'deberta-v2', 'llama', ...; '*' "
        "for any model), each with one line on what it does there (e.g. 'FFN neurons, heads and layers'). The planner "
        "refuses a model of another family before any compute; docs/compatibility.md is generated from it. None: "
        "not declared (any model is tried; the step finds out).",
    )
    unlabelled_texts: str | None = Field(
        default=None,
        description="The config field (if any) that takes unlabelled in-domain texts, as slimkit.spec."
        "UnlabelledTexts ({preset} or {data_file, text_column, max_rows}); `slimkit compress --unlabelled` "
        "sets it on every step of this technique in its recipes (a distillation's transfer set, say).",
    )
    priority: int = Field(default=0, description="Tie-breaker when several techniques fit a stage-only step.")
    plugin: str | None = Field(default=None, description="Set by slimkit: the plugin that registered it.")
    plugin_version: str | None = Field(default=None, description="Set by slimkit: that plugin's version.")

    @field_validator("name")
    @classmethod
    def _namespaced(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(f"{value!r} is not '<plugin>.<technique>' in lower case (e.g. 'onnx.quantize-dynamic')")
        return value

    @field_validator("after", "before", "conflicts")
    @classmethod
    def _references(cls, values: list[str]) -> list[str]:
        for ref in values:
            if ref not in STAGE_NAMES and not NAME_PATTERN.match(ref):
                raise ValueError(f"{ref!r} is neither a stage ({', '.join(sorted(STAGE_NAMES))}) nor a technique name")
        return values

    @field_validator("config")
    @classmethod
    def _config_contract(cls, config: type[BaseModel]) -> type[BaseModel]:
        if not (isinstance(config, type) and issubclass(config, BaseModel)):
            raise ValueError("config must be a pydantic BaseModel subclass")
        if config.model_config.get("extra") != "forbid":
            raise ValueError(f"{config.__name__} must set model_config = ConfigDict(extra='forbid')")
        undocumented = [n for n, f in config.model_fields.items() if not f.description]
        if undocumented:
            raise ValueError(f"{config.__name__} fields need a description: {', '.join(undocumented)}")
        return config

    @model_validator(mode="after")
    def _unlabelled_field(self) -> Technique:
        field = self.unlabelled_texts
        if field is not None and field not in self.config.model_fields:
            raise ValueError(f"unlabelled_texts names {field!r}, which is not a field of {self.config.__name__}")
        return self

    @field_validator("families")
    @classmethod
    def _family_names(cls, values: dict[str, str] | None) -> dict[str, str] | None:
        if values is not None:
            for family in values:
                if family != ANY_FAMILY and family != family_name(family):
                    raise ValueError(f"{family!r} is another name of {family_name(family)!r}: declare that one")
                if family != ANY_FAMILY and not FAMILY_PATTERN.match(family):
                    raise ValueError(f"{family!r} is not a model_type in lower case (e.g. 'bert', 'deberta-v2')")
        return values

    @field_validator("consumes")
    @classmethod
    def _formats(cls, values: list[str]) -> list[str]:
        if not values:
            raise ValueError("name at least one format")
        return values

    @field_validator("implementation")
    @classmethod
    def _implementation_path(cls, value: str | Callable[..., Any] | None) -> str | Callable[..., Any] | None:
        if isinstance(value, str) and not IMPLEMENTATION_PATTERN.match(value):
            raise ValueError(f"{value!r} is not 'package.module:function'")
        return value

    def load_implementation(self) -> Callable[..., Any] | None:
        """The function that performs this technique, imported on first use; None when the plugin's
        stage hook performs it. Raises PluginError naming the technique when it cannot be imported."""
        if self.implementation is None or callable(self.implementation):
            return self.implementation
        module_name, _, attribute = self.implementation.partition(":")
        try:
            found = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise PluginError(
                f"technique {self.name!r}: its implementation {self.implementation!r} cannot be loaded "
                f"({error_line(exc)})",
                fix=f"check the path, or install what plugin {self.plugin!r} needs",
            ) from None
        if not callable(found):
            raise PluginError(f"technique {self.name!r}: {self.implementation!r} is not a function")
        return found  # type: ignore[no-any-return]

    def unlabelled_refusal(self, texts: dict[str, Any]) -> str | None:
        """What the config says of unlabelled texts (``{data_file, max_rows}`` or ``{preset}``) in its
        ``unlabelled_texts`` field alone, e.g. a preset it does not know; None when it takes them."""
        assert self.unlabelled_texts is not None
        try:
            self.config.model_validate({self.unlabelled_texts: texts})
        except ValidationError as exc:
            own = [e for e in exc.errors() if e["loc"][:1] == (self.unlabelled_texts,)]
            if own:
                return "; ".join(error_message(e) for e in own)
        return None

    def support_for(self, family: str) -> str | None:
        """What this technique does for a model family: its declared line (may be empty), or None when it
        declares families and this is not one of them. Undeclared families mean any model."""
        if self.families is None:
            return ""
        return self.families.get(family, self.families.get(ANY_FAMILY))

    def supported_families(self) -> str:
        """The declared families, for messages: 'bert, roberta' or 'any model'."""
        if self.families is None or ANY_FAMILY in self.families:
            return "any model"
        return ", ".join(self.families) or "none"

    def output_format(self, input_format: str) -> str:
        return self.produces or input_format

    def matches(self, ref: str) -> bool:
        """Whether a relation entry (a technique name or a stage) refers to this technique."""
        return ref == self.name or ref == self.stage.value

    def validate_config(self, values: dict[str, Any]) -> BaseModel:
        """The step's options as the technique's model, validated strictly.

        Pipeline files have real numbers and booleans, so strict mode only refuses mistakes that
        lax mode would coerce: ``epochs = true`` as 1, ``batch_size = 32.0`` as 32, ``"8"`` as 8.
        """
        return self.config.model_validate(values, strict=True)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly view, with the config's JSON Schema in place of the class."""
        data = self.model_dump(exclude={"config"}, mode="json")
        data["config_schema"] = self.config.model_json_schema()
        return data


class TechniqueRegistry:
    """All declared techniques, keyed by name. Owns collisions: a second declaration is an error."""

    def __init__(self) -> None:
        self._techniques: dict[str, Technique] = {}

    def register_for(self, plugin: str, version: str | None) -> Callable[[Technique], None]:
        """The ``register`` callback handed to one plugin's ``register_techniques`` hook."""

        def register(technique: Technique | dict[str, Any]) -> None:
            try:
                declared = technique if isinstance(technique, Technique) else Technique.model_validate(technique)
                # dict(), not model_dump(): callables and classes are kept as they are.
                declared = Technique.model_validate(dict(declared) | {"plugin": plugin, "plugin_version": version})
            except ValidationError as exc:
                raise PluginError(f"plugin {plugin!r} declared an invalid technique: {one_line(exc)}") from None
            existing = self._techniques.get(declared.name)
            if existing is not None and existing.plugin == plugin:
                raise PluginError(f"plugin {plugin!r} declares technique {declared.name!r} twice")
            if existing is not None:
                raise PluginError(
                    f"technique {declared.name!r} is declared by both plugin {existing.plugin!r} and plugin {plugin!r}",
                    fix="uninstall one of them, or choose plugins with SLIMKIT_LOAD_PLUGINS",
                )
            self._techniques[declared.name] = declared

        return register

    def get(self, name: str) -> Technique | None:
        return self._techniques.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._techniques

    def all(self) -> list[Technique]:
        return sorted(self._techniques.values(), key=lambda t: t.name)

    def for_stage(self, stage: Stage) -> list[Technique]:
        return [t for t in self.all() if t.stage == stage]

    def of_plugin(self, plugin: str) -> list[Technique]:
        return [t for t in self.all() if t.plugin == plugin]

    def drop_plugin(self, plugin: str) -> None:
        for name in [n for n, t in self._techniques.items() if t.plugin == plugin]:
            del self._techniques[name]
