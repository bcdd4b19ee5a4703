"""The options of ``distill.kd``: which student, which teacher, and how the losses are mixed.

Imports only pydantic and slimkit_transformers.finetune (itself light), so that the plugin's
top-level module stays cheap to import.
"""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from slimkit.spec import UnlabelledTexts
from slimkit_transformers.finetune import FinetuneConfig


class StudentSpec(BaseModel):
    """Where the student starts: a model (the teacher by default), then optionally fewer of its layers."""

    model_config = ConfigDict(extra="forbid")

    keep_every: int | None = Field(
        default=None,
        ge=1,
        description="Keep every k-th transformer layer, counted down from the top so that the last one (the one "
        "the head was trained on) stays: 6 layers with k=2 keep layers 1, 3, 5 (0-based).",
    )
    layers: list[int] | None = Field(
        default=None,
        min_length=1,
        description="Keep these layers instead (0-based, strictly increasing), e.g. [0, 2, 5].",
    )
    from_step: str | None = Field(
        default=None,
        description="Start from an earlier artifact of the pipeline ('source' or a step name), e.g. a "
        "structurally pruned teacher, instead of the teacher itself.",
    )
    model: str | None = Field(
        default=None,
        description="Start from another model: hub id, local folder or packaged short name. It gets the "
        "task's labels and a seeded head; a different tokenizer is fine (texts are tokenized for each model).",
    )

    @model_validator(mode="after")
    def _one_of_each(self) -> StudentSpec:
        if self.from_step is not None and self.model is not None:
            raise ValueError("give 'from_step' or 'model', not both")
        if self.keep_every is not None and self.layers is not None:
            raise ValueError("give 'keep_every' or 'layers', not both")
        if self.layers is not None and (
            any(i < 0 for i in self.layers) or any(b <= a for a, b in zip(self.layers, self.layers[1:], strict=False))
        ):
            raise ValueError("'layers' must be 0-based indices in strictly increasing order")
        return self

    @property
    def origin(self) -> str:
        """What the student starts from, in words for the artifact's metadata."""
        if self.from_step is not None:
            return f"step:{self.from_step}"
        if self.model is not None:
            return f"model:{self.model}"
        return "teacher"


def _half_depth() -> StudentSpec:
    return StudentSpec(keep_every=2)


class DistillConfig(FinetuneConfig):
    """Training options are those of ``transformers.finetune``; the rest say what is distilled how."""

    model_config = ConfigDict(extra="forbid")

    teacher: str | None = Field(
        default=None,
        description="None: the model that enters the step is the teacher. A step name (or 'source') uses that "
        "earlier artifact instead, e.g. the fine-tuned model when a pruning step runs in between; 'baseline' "
        "the pipeline's baseline (in a study or a recipe: the model the variant starts from).",
    )
    student: StudentSpec = Field(
        default_factory=_half_depth,
        description="The student: {keep_every = k} or {layers = [...]} of the teacher (default: every 2nd "
        "layer), {from_step = '<step>'} or {model = '<hub id or path>'}, optionally with layers chosen.",
    )
    alpha: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Weight of the distillation loss; the hard-label loss gets 1 - alpha. 0 is ordinary "
        "fine-tuning of the student (no teacher pass at all).",
    )
    temperature: float = Field(
        default=2.0,
        gt=0.0,
        description="Softens both models' outputs in the distillation loss (softmax or sigmoid of logits / T); "
        "the loss is scaled by T^2 so its gradients keep their size.",
    )
    hidden_weight: float = Field(
        default=0.0,
        ge=0.0,
        description="Weight of hidden-state matching: MSE between each student layer's output and the teacher "
        "layer it maps to, through a learned projection when widths differ. 0 turns it off. Needs both models "
        "to tokenize alike.",
    )
    augment_copies: int = Field(
        default=0,
        ge=0,
        le=10,
        description="Transfer set: this many extra copies of every training text, with words masked at random "
        "and labelled by the teacher (its outputs as soft targets, its thresholded predictions as hard "
        "labels), so the student learns the teacher's function on more inputs than the labelled rows "
        "(Tang et al., 2019). 0 is off; each copy adds one training set's worth of student passes per epoch.",
    )
    augment_mask_prob: float = Field(
        default=0.15,
        gt=0.0,
        lt=1.0,
        description="Share of the words of an augmented copy replaced by the tokenizer's mask token (dropped when "
        "the student and the teacher have no mask token in common).",
    )
    transfer_texts: UnlabelledTexts | None = Field(
        default=None,
        description="Unlabelled texts added to the transfer set, labelled by the teacher like the masked copies: "
        "{preset = 'goemotions', max_rows = 10000} or {data_file = 'texts.txt'}. In-domain text the labels do "
        "not cover (e.g. a service's unlabelled traffic) is where a teacher has most to teach.",
    )
    teacher_batch_size: int = Field(
        default=64, ge=1, description="Batch size of the single teacher pass whose outputs are cached."
    )

    @field_validator("transfer_texts")
    @classmethod
    def _known_preset(cls, texts: UnlabelledTexts | None) -> UnlabelledTexts | None:
        # Checked at plan time: a misspelt preset would otherwise fail the step after the baseline is built.
        from slimkit_transformers.tasks import PRESETS

        if texts is not None and texts.preset is not None and texts.preset not in PRESETS:
            raise ValueError(f"unknown task preset {texts.preset!r} (use one of {', '.join(PRESETS)})")
        return texts

    @model_serializer(mode="wrap")
    def _without_unset_transfer_texts(self, handler: SerializerFunctionWrapHandler) -> Any:
        # The step key hashes the dumped config: leaving the option out while it is unset keeps the
        # keys, and so the stored students, of every distillation written before it existed.
        data = handler(self)
        if isinstance(data, dict) and data.get("transfer_texts") is None:
            data.pop("transfer_texts", None)
        return data
