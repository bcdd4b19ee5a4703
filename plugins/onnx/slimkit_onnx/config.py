"""The options of each technique (pydantic only: importing this module stays cheap)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

# The families whose graphs onnxruntime.transformers' BERT optimiser fuses (Attention, SkipLayerNorm,
# GELU); the others get ONNX Runtime's generic graph optimisations.
BERT_FUSED_FAMILIES = frozenset({"bert", "roberta", "xlm-roberta", "distilbert", "electra", "camembert"})


def _not_bool(value: object) -> object:
    # True == 1 and False == 0, so a Literal of small integers takes a boolean even in strict mode.
    if isinstance(value, bool):
        raise ValueError(f"{str(value).lower()} is a boolean; give one of the numbers listed")
    return value


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

    @field_validator("opt_level", mode="before")
    @classmethod
    def _level_not_bool(cls, value: object) -> object:
        return _not_bool(value)


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


class WeightOnlyQuantConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bits: Literal[4, 8] = Field(
        default=4, description="Bits per stored weight in the MatMulNBits blocks (4, or 8 for a safer, larger graph)."
    )
    block_size: int = Field(
        default=32,
        description="Weights that share one scale (and zero point), along the input dimension: a power of two "
        "from 16 to 256. Smaller blocks follow the weights more closely and store more scales.",
    )
    algorithm: Literal["rtn", "hqq"] = Field(
        default="rtn",
        description="'rtn': ORT's built-in block-wise round-to-nearest (DefaultWeightOnlyQuantConfig, C++ kernels); "
        "'hqq': Half-Quadratic Quantization (HQQWeightOnlyQuantConfig, runs on torch), which fits each "
        "block's zero point without data; 4 bits only, always asymmetric, float zero points.",
    )
    symmetric: bool = Field(
        default=True,
        description="'rtn' only: symmetric blocks (a scale, no zero point) or asymmetric ones (a scale and a "
        "4/8-bit zero point). 'hqq' always stores a float zero point; the metadata records what was done.",
    )
    accuracy_level: Literal[0, 1, 2, 3, 4] = Field(
        default=4,
        description="MatMulNBits' accuracy_level, the lowest precision the kernel may compute in: 0 unset, "
        "1 float32, 2 float16, 3 bfloat16, 4 int8 (activations quantized block-wise to int8 inside the kernel, "
        "the fast path on CPU). With ORT 1.32 on x86, levels 0-3 computed alike in float32, and 'hqq' (float zero "
        "points) got no int8 path at 4.",
    )
    quantize_embeddings: bool | None = Field(
        default=None,
        validate_default=True,
        description="Also store the embedding tables in 4 bits (Gather -> GatherBlockQuantized; the graph is raised "
        "to opset 21). None: yes with algorithm 'rtn' and 4 bits, the only case ORT's quantizer supports.",
    )
    check_examples: int = Field(
        default=128, ge=1, description="Eval texts on which agreement with the input model is recorded."
    )

    @field_validator("accuracy_level", mode="before")
    @classmethod
    def _level_not_bool(cls, value: object) -> object:
        return _not_bool(value)

    @field_validator("block_size")
    @classmethod
    def _block(cls, value: int) -> int:
        if not 16 <= value <= 256 or value & (value - 1):
            raise ValueError(f"must be a power of two from 16 to 256 (MatMulNBits' block sizes), not {value}")
        return value

    @field_validator("algorithm")
    @classmethod
    def _hqq_bits(cls, value: str, info: ValidationInfo) -> str:
        if value == "hqq" and info.data.get("bits") == 8:
            # Its 8-bit blocks carry float zero points, which ORT's CPU MatMulNBits refuses to load.
            raise ValueError("'hqq' quantizes to 4 bits only on CPU; use bits = 4 or algorithm 'rtn'")
        return value

    @field_validator("quantize_embeddings")
    @classmethod
    def _embeddings(cls, value: bool | None, info: ValidationInfo) -> bool:
        supported = info.data.get("algorithm") == "rtn" and info.data.get("bits") == 4
        if value and not supported:
            raise ValueError(
                "ORT quantizes embedding tables only with algorithm 'rtn' and 4 bits (GatherBlockQuantized); "
                "set quantize_embeddings = false"
            )
        return supported if value is None else value
