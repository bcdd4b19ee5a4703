"""The options of each technique (pydantic only: importing this module stays cheap)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ExportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    exporter: Literal["torchscript", "dynamo"] = Field(
        default="torchscript",
        description="torch.onnx.export path: 'torchscript' (dynamo=False; the only one whose graph ONNX Runtime's "
        "BERT optimiser fully fuses) or 'dynamo' (the current exporter, built on torch.export and onnxscript).",
    )
    attn_implementation: Literal["eager", "sdpa"] = Field(
        default="eager",
        description="Attention implementation the model is loaded with for export; 'eager' exports the "
        "MatMul/Softmax pattern that ORT fuses into Attention, 'sdpa' does not fuse.",
    )
    opset: int | None = Field(
        default=None, ge=7, description="ONNX opset; None uses 17 for 'torchscript' and 18 for 'dynamo'."
    )
    atol: float = Field(default=1e-4, gt=0, description="Parity check: absolute tolerance on logits.")
    rtol: float = Field(default=1e-3, ge=0, description="Parity check: relative tolerance on logits.")
    check_examples: int = Field(
        default=64, ge=1, description="Eval texts on which ONNX Runtime and torch logits must agree."
    )
    max_length: int = Field(default=128, ge=8, description="Texts are truncated to this many tokens for the check.")


class OptimizeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_type: str = Field(
        default="auto",
        description="onnxruntime.transformers optimiser model type ('bert', 'gpt2', ...); 'auto' picks 'bert' for "
        "BERT-class encoders (bert, roberta, xlm-roberta, distilbert, electra, camembert) and 'generic' (ONNX Runtime "
        "graph optimisations only, no transformer fusions) otherwise.",
    )
    opt_level: Literal[0, 1, 2] | None = Field(
        default=None,
        description="ONNX Runtime graph optimisation before the transformer fusions: 0 none, 1 basic, 2 extended; "
        "None uses the optimiser's default for the model type (extended for 'generic'). Level 99 (layout "
        "optimisations) is left to the session at load time: its output is tied to the machine that wrote it.",
    )
    atol: float = Field(default=1e-3, gt=0, description="Parity check against the input graph: absolute tolerance.")
    rtol: float = Field(default=1e-3, ge=0, description="Parity check against the input graph: relative tolerance.")
    check_examples: int = Field(default=32, ge=1, description="Eval texts used for the parity check.")


EMBEDDING_OPS = ["Gather", "EmbedLayerNormalization"]


class DynamicQuantConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    per_channel: bool = Field(
        default=True, description="One scale per output channel of each weight (keeps accuracy) instead of per tensor."
    )
    weight_type: Literal["qint8", "quint8"] = Field(default="qint8", description="Integer type of the weights.")
    quantize_embeddings: bool = Field(
        default=True,
        description="Also store the embedding tables in int8 (Gather / EmbedLayerNormalization ops); in MiniLM they "
        "are half of the parameters, so the size gain depends on it.",
    )
    op_types: list[str] | None = Field(
        default=None,
        description="Op types to quantize; None means MatMul, Attention and, with quantize_embeddings, the "
        "embedding ops.",
    )
    reduce_range: bool = Field(
        default=False,
        description="7-bit weights: avoids u8s8 saturation on CPUs without VNNI (AVX2/AVX-512 only), at some accuracy.",
    )
    check_examples: int = Field(
        default=128, ge=1, description="Eval texts on which agreement with the input model is recorded."
    )


class StaticQuantConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    calibration_method: Literal["minmax", "entropy", "percentile"] = Field(
        default="minmax", description="How activation ranges are chosen from the calibration batches."
    )
    percentile: float = Field(
        default=99.999, gt=90, le=100, description="Percentile kept by the 'percentile' calibration method."
    )
    calibration_examples: int = Field(
        default=256, ge=1, description="Training texts (seeded sample) run through the model to calibrate."
    )
    calibration_batch_size: int = Field(default=16, ge=1, description="Texts per calibration batch.")
    max_length: int = Field(default=128, ge=8, description="Calibration texts are truncated to this many tokens.")
    per_channel: bool = Field(default=True, description="One weight scale per output channel instead of per tensor.")
    activation_type: Literal["quint8", "qint8"] = Field(
        default="quint8", description="Integer type of the activations (asymmetric uint8 is ORT's CPU default)."
    )
    quantize_embeddings: bool = Field(
        default=True, description="Also quantize the embedding lookups (Gather ops): the tables are stored in int8."
    )
    op_types: list[str] | None = Field(
        default=None, description="Op types to quantize; None means MatMul and, with quantize_embeddings, Gather."
    )
    reduce_range: bool = Field(default=False, description="7-bit weights, for CPUs without VNNI.")
    check_examples: int = Field(
        default=128, ge=1, description="Eval texts on which agreement with the input model is recorded."
    )
