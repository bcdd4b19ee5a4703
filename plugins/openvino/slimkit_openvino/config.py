"""The options of each technique (pydantic only: importing this module stays cheap)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# OpenVINO's CPU plugin computes in bf16 by default on CPUs with avx512_bf16 or AMX; "f32" keeps the
# figures comparable with the torch baseline, the others are a choice the user makes knowingly.
InferencePrecision = Literal["f32", "bf16", "f16", "auto"]


class ExportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attn_implementation: Literal["default", "sdpa", "eager"] = Field(
        default="default",
        description="Attention implementation the model is loaded with for conversion: 'sdpa' becomes OpenVINO's "
        "ScaledDotProductAttention op (fused by the CPU plugin), 'eager' the MatMul/Softmax pattern, 'default' "
        "lets transformers choose (sdpa where the architecture supports it, e.g. not DeBERTa-v2, else eager).",
    )
    inference_precision: InferencePrecision = Field(
        default="f32",
        description="INFERENCE_PRECISION_HINT the predictor compiles this model (and the models quantized from it) "
        "with: 'f32' (as torch computes), 'bf16' or 'f16' (faster where the CPU has bf16/AMX or fp16 units, at "
        "some accuracy), 'auto' (the CPU plugin's own default: bf16 on CPUs with avx512_bf16 or AMX, else f32). "
        "The parity check always runs in f32.",
    )
    atol: float = Field(default=1e-4, gt=0, description="Parity check: absolute tolerance on logits (f32).")
    rtol: float = Field(default=1e-3, ge=0, description="Parity check: relative tolerance on logits (f32).")
    check_examples: int = Field(
        default=64, ge=1, le=100_000, description="Eval texts on which OpenVINO and torch logits must agree."
    )
    max_length: int = Field(
        default=128, ge=8, le=8192, description="Texts are truncated to this many tokens for the check."
    )


class Int8Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["ptq", "accuracy-control", "weights-only"] = Field(
        default="ptq",
        description="'ptq': nncf.quantize, int8 weights and activations calibrated on the task's training texts "
        "(FakeQuantize ops the CPU plugin runs as int8 kernels). 'accuracy-control': "
        "nncf.quantize_with_accuracy_control, the same, then layers reverted to float, most harmful first, until "
        "the metric on a validation sample drops by at most max_drop. 'weights-only': nncf.compress_weights, int8 "
        "weights and float activations, no calibration.",
    )
    preset: Literal["mixed", "performance"] = Field(
        default="mixed",
        description="NNCF quantization preset: 'mixed' (symmetric weights, asymmetric activations: NNCF's advice "
        "for transformers) or 'performance' (symmetric both).",
    )
    calibration_examples: int = Field(
        default=300,
        ge=1,
        le=100_000,
        description="Training texts (seeded sample, one text per calibration item) run through the model to "
        "calibrate activation ranges ('ptq' and 'accuracy-control').",
    )
    max_length: int = Field(
        default=128, ge=8, le=8192, description="Calibration and validation texts are truncated to this many tokens."
    )
    smooth_quant: bool = Field(
        default=True,
        description="Apply NNCF's SmoothQuant (moves activation outliers into the weights before quantizing), as "
        "NNCF does by default for transformers.",
    )
    fast_bias_correction: bool = Field(
        default=True, description="NNCF's fast bias correction (False: the slower, more exact algorithm)."
    )
    quantize_head: bool = Field(
        default=False,
        description="Also quantize the classification head (classifier / score / pre_classifier); by default it "
        "stays float, as in slimkit-onnx's quantizers.",
    )
    embeddings: Literal["int8", "int4"] = Field(
        default="int8",
        description="The embedding tables: 'int8' as NNCF quantizes them, or 'int4' (4-bit, groups of 32, "
        "compressed before the int8 quantization of the MatMuls): a lookup costs the same, the file is smaller.",
    )
    validation_examples: int = Field(
        default=300,
        ge=1,
        le=100_000,
        description="'accuracy-control': texts of the task's validation slice (carved from train, never eval) on "
        "which the metric is compared.",
    )
    max_drop: float = Field(
        default=0.01,
        gt=0,
        le=1,
        description="'accuracy-control': the largest absolute drop of the task's metric allowed on the validation "
        "sample, as a fraction (0.01 = 1 point of accuracy, or of micro-F1 in multi-label tasks).",
    )
    max_iterations: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="'accuracy-control': the most layers NNCF reverts to float (one validation pass each).",
    )
    check_examples: int = Field(
        default=128, ge=1, le=100_000, description="Eval texts on which agreement with the input model is recorded."
    )

    @model_validator(mode="after")
    def _tables_before_accuracy_control(self) -> Int8Config:
        # Accuracy control compares against its input: with the tables already 4-bit there, their
        # loss would never be counted nor reverted.
        if self.mode == "accuracy-control" and self.embeddings == "int4":
            raise ValueError(
                "embeddings = 'int4' cannot be combined with mode 'accuracy-control' (its drop would "
                "be measured after the tables were compressed); use mode 'ptq'"
            )
        return self


class Int4Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symmetric: bool = Field(
        default=True,
        description="Symmetric 4-bit weights (NNCF's INT4_SYM: one scale per group) or asymmetric (INT4_ASYM: a "
        "scale and a zero point per group).",
    )
    group_size: int = Field(
        default=32,
        ge=-1,
        description="Weights per quantization group along each output channel's inputs; -1 is one group per "
        "channel. A layer whose input width is not a multiple of it is handled as group_size_fallback says. "
        "Smaller groups keep more accuracy and store more scales.",
    )
    group_size_fallback: Literal["adjust", "ignore", "error"] = Field(
        default="adjust",
        description="A layer whose input width group_size does not divide: 'adjust' gives it a smaller power-of-two "
        "group, at least 32, that divides it, else int8 (so with group_size 32 such a layer is int8); 'ignore' "
        "leaves it float; 'error' fails the step.",
    )
    ratio: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="Share of the layers compressed to 4 bits; NNCF keeps the rest in int8, the layers whose "
        "4-bit error is largest first (measured on calibration texts when a data-aware method is on).",
    )
    all_layers: bool = Field(
        default=True,
        description="Also compress the embedding tables and the last layer before the head to 4 bits. NNCF's "
        "default (false) keeps them in int8, which suits large decoders; in a small classifier the embeddings "
        "are the largest tensor.",
    )
    scale_estimation: bool = Field(
        default=False,
        description="NNCF's scale estimation: per-group scales fitted on calibration texts to the layer's outputs.",
    )
    awq: bool = Field(
        default=False,
        description="NNCF's data-aware AWQ: channels scaled by the activations' magnitudes before rounding "
        "(applies where a MatMul follows another MatMul or a normalization).",
    )
    gptq: bool = Field(
        default=False,
        description="NNCF's GPTQ: weights rounded one column at a time, the error pushed onto the columns left, "
        "on calibration texts.",
    )
    calibration_examples: int = Field(
        default=128,
        ge=1,
        le=100_000,
        description="Training texts (seeded sample, one per item) for the data-aware methods and for ranking "
        "layers when ratio < 1.",
    )
    max_length: int = Field(
        default=128, ge=8, le=8192, description="Calibration texts are truncated to this many tokens."
    )
    quantize_head: bool = Field(
        default=False, description="Also compress the classification head; by default it stays float."
    )
    check_examples: int = Field(
        default=128, ge=1, le=100_000, description="Eval texts on which agreement with the input model is recorded."
    )

    @field_validator("group_size")
    @classmethod
    def _a_group(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must be -1 (one group per channel) or a positive number of weights")
        return value
