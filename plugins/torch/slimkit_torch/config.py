"""Config models of the techniques (pydantic only, so that importing the plugin stays cheap)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from slimkit.techniques import KEY_WHEN_SET


class MagnitudePruneConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sparsity: float = Field(gt=0, lt=1, description="Share of the targeted weights set to zero, e.g. 0.5.")
    scope: Literal["global", "layer"] = Field(
        default="global",
        description="'global' ranks all targeted weights together (layers end up with different sparsity); "
        "'layer' removes the same share from every weight matrix.",
    )
    include_embeddings: bool = Field(
        default=False, description="Also prune the embedding matrices (by default only Linear layers are pruned)."
    )
    prune_head: bool = Field(
        default=False, description="Also prune the classification head (and pooler); by default they stay intact."
    )


class StructuredPruneConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ffn_ratio: float = Field(
        default=0.0, ge=0, lt=1, description="Share of FFN neurons removed from every layer, e.g. 0.5."
    )
    heads: int = Field(
        default=0,
        ge=0,
        description="Attention heads removed from every layer. Llama, Mistral, Qwen2/3, Gemma 3: with grouped-query "
        "attention a multiple of num_key_value_heads (the same number of query heads leaves each key/value "
        "group). BERT, RoBERTa, XLM-R, ELECTRA, DistilBERT: the folder then names slimkit's compact class "
        "(trust_remote_code=True loads it without slimkit).",
    )
    heads_ratio: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="Share of the attention heads removed from every layer instead of a number (0.5: 6 of 12, 8 of "
        "16), rounded, at least one head kept; with grouped-query attention rounded to whole heads per key/value "
        "group. For recipes that serve models of any size.",
        json_schema_extra=KEY_WHEN_SET,  # added after steps were stored: keys omit it while 0
    )
    layers: int = Field(
        default=0,
        ge=0,
        description="Whole layers removed: those whose output differs least from their input on the "
        "calibration texts (block influence).",
    )
    layer_indices: list[Annotated[int, Field(ge=0)]] | None = Field(
        default=None, description="Remove exactly these layers (0-based) instead of choosing 'layers' of them."
    )
    importance: Literal["magnitude", "gradient"] = Field(
        default="gradient",
        description="How neurons and heads are ranked: 'magnitude' (squared L2 norm of their weights) or "
        "'gradient' (first-order Taylor |w * dL/dw|, summed over calibration batches of the task's "
        "training texts with the classification loss).",
    )
    calibration_examples: int = Field(
        default=128,
        ge=1,
        description="Training texts (a seeded sample of the task's train split) for gradient importance and "
        "layer selection.",
    )
    calibration_batch_size: int = Field(default=16, ge=1, description="Calibration texts per batch.")
    max_length: int = Field(default=128, ge=8, description="Calibration texts are truncated to this many tokens.")

    @model_validator(mode="after")
    def _something_to_remove(self) -> StructuredPruneConfig:
        if self.layer_indices is not None and self.layers:
            raise ValueError("give either 'layers' (how many) or 'layer_indices' (which), not both")
        if self.heads and self.heads_ratio:
            raise ValueError("give either 'heads' (how many) or 'heads_ratio' (what share), not both")
        if not (self.ffn_ratio or self.heads or self.heads_ratio or self.layers or self.layer_indices):
            raise ValueError("nothing to remove: set ffn_ratio, heads, heads_ratio, layers or layer_indices")
        return self


class LowRankEmbeddingsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rank: int = Field(
        default=0,
        ge=0,
        description="Rank of the word-embedding table: it becomes a vocabulary x rank table times a rank x width "
        "projection, from its truncated SVD (e.g. 128 for a 384-wide MiniLM: a third of the table's weights). "
        "Below the embedding width.",
    )
    rank_ratio: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="The rank as a share of the embedding width instead of a number (0.5: 192 of 384, 384 of "
        "768), rounded, at least 1. For recipes that serve models of any width.",
        json_schema_extra=KEY_WHEN_SET,  # added after steps were stored: keys omit it while 0
    )

    @model_validator(mode="after")
    def _one_rank(self) -> LowRankEmbeddingsConfig:
        if bool(self.rank) == bool(self.rank_ratio):
            raise ValueError("give either 'rank' (how many) or 'rank_ratio' (what share of the width), one of them")
        return self

    def rank_for(self, width: int) -> int:
        """The rank for a table ``width`` wide."""
        return self.rank or max(1, round(width * self.rank_ratio))


class DynamicInt8Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Literal["torchao", "torch-ao-legacy"] = Field(
        default="torchao",
        description="'torchao' (default): torchao's quantize_ with Int8DynamicActivationInt8WeightConfig, the "
        "maintained API, run under torch.compile (see compile); 'torch-ao-legacy': "
        "torch.ao.quantization.quantize_dynamic (fbgemm kernels, fast in eager mode, deprecated by PyTorch).",
    )
    per_channel: bool = Field(
        default=True,
        description="torch-ao-legacy: one weight scale per output channel (keeps accuracy) instead of one per "
        "matrix. torchao always uses per-channel weights and per-token activations.",
    )
    compile: bool = Field(
        default=True,
        description="torchao: run the model under torch.compile when it is loaded for inference (its int8 "
        "matmuls are fused only then; compiling takes a minute or more per input shape on a small CPU).",
    )
    quantize_head: bool = Field(
        default=False, description="Also quantize the classification head; by default it stays float32."
    )


class HalfConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dtype: Literal["bfloat16", "float16"] = Field(
        default="bfloat16",
        description="bfloat16 (fast on CPUs with avx512_bf16/AMX and on CUDA) or float16 (fast on CUDA, slow "
        "on most CPUs).",
    )
