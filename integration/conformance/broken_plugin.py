"""A plugin whose techniques each break one rule of the conformance kit (integration/conformance)."""

from __future__ import annotations

import shutil
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

import slimkit
from slimkit import Artifact, StepContext, Technique

ANY = {"*": "whole model"}


class Plain(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scale: float = Field(default=1.0, description="Unused.")


class Crashing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # int() raises TypeError on a table: pydantic lets it through as a crash, not a validation error.
    width: int = Field(default=8, description="A width.")

    @field_validator("width", mode="before")
    @classmethod
    def _coerce(cls, value: Any) -> int:
        return int(value)


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")

    depth: int = 1  # no description: registration checks only the outer model's fields


class Nested(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inner: Inner = Field(default_factory=Inner, description="Nested options.")


class Unstable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A set's JSON dump follows string hashing, which differs from process to process.
    skip: set[str] = Field(default_factory=lambda: {f"layer{i}" for i in range(12)}, description="Layers left alone.")


def copy_input(step: StepContext[Any]) -> Artifact:
    shutil.copytree(step.input.path, step.output_dir, dirs_exist_ok=True)
    return step.artifact()


def fail_on_decoders(step: StepContext[Any]) -> Artifact:
    if "llama" in (step.input.path / "config.json").read_text():
        raise RuntimeError("cannot handle this model")
    return copy_input(step)


def drop_head(step: StepContext[Any]) -> Artifact:
    from transformers import AutoModel, AutoTokenizer

    AutoModel.from_pretrained(step.input.path).save_pretrained(step.output_dir)
    AutoTokenizer.from_pretrained(step.input.path).save_pretrained(step.output_dir)
    return step.artifact()


def write_into_input(step: StepContext[Any]) -> Artifact:
    (step.input.path / "notes.txt").write_text("touched")
    return copy_input(step)


def _technique(name: str, implementation: str, **fields: Any) -> Technique:
    return Technique(
        name=f"broken.{name}",
        stage="prune",
        summary=f"Breaks a rule: {name}.",
        consumes=["transformers"],
        implementation=f"broken_plugin:{implementation}",
        **{"families": ANY, "config": Plain, **fields},
    )


@slimkit.hookimpl
def register_techniques(register: Any) -> None:
    register(_technique("fine", "copy_input"))
    register(_technique("no-families", "copy_input", families=None))
    register(_technique("missing-code", "nowhere"))
    register(_technique("undocumented-nested", "copy_input", config=Nested))
    register(_technique("crashing-config", "copy_input", config=Crashing))
    register(_technique("fails-on-llama", "fail_on_decoders"))
    register(_technique("wrong-format", "copy_input", produces="onnx"))
    register(_technique("drops-head", "drop_head"))
    register(_technique("unstable-key", "copy_input", config=Unstable))
    register(_technique("writes-input", "write_into_input"))
