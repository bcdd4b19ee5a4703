"""Options of the two techniques (pydantic only, so declaring them imports nothing heavy)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class VocabularyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    splits: list[Literal["train", "validation"]] = Field(
        default_factory=lambda: ["train", "validation"],
        description="Task splits whose texts decide the kept tokens; the eval split is never used.",
    )
    texts: list[str] = Field(default_factory=list, description="More texts whose tokens are kept.")
    text_files: list[str] = Field(
        default_factory=list,
        description="UTF-8 files with one more text per line (relative to the pipeline file).",
    )
    tokens: list[str] = Field(
        default_factory=list, description="Tokens kept whatever the texts say; each must be in the vocabulary."
    )
    min_count: int = Field(
        default=1, ge=1, description="TextPruner's min_count: a token seen fewer times in the texts is removed."
    )
    check_texts: int = Field(
        default=256,
        ge=0,
        description="Texts re-tokenized with the pruned tokenizer to check its ids against the original's.",
    )


class TransformerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_num_of_heads: int | None = Field(
        default=None, ge=1, description="Attention heads kept per layer; None keeps them all."
    )
    target_ffn_size: int | None = Field(
        default=None, ge=1, description="FFN neurons kept per layer; None keeps them all."
    )
    n_iters: int = Field(default=1, ge=1, description="TextPruner's n_iters: pruning iterations.")
    pruning_order: Literal["head-first", "ffn-first"] | None = Field(
        default=None, description="None prunes heads and neurons together; else one kind per iteration."
    )
    use_logits: bool = Field(
        default=False,
        description="Score importance against the model's own logits (self-supervised) instead of the labels.",
    )
    calibration_examples: int = Field(
        default=512,
        ge=1,
        description="Training texts used to score the heads and neurons (a seeded sample of the train split).",
    )
    batch_size: int = Field(default=32, ge=1, description="Batch size when scoring importance.")
    max_length: int = Field(default=128, ge=8, description="Texts are truncated to this many tokens when scoring.")

    @model_validator(mode="after")
    def _something_to_prune(self) -> TransformerConfig:
        if self.target_num_of_heads is None and self.target_ffn_size is None:
            raise ValueError("set target_num_of_heads, target_ffn_size or both")
        return self
