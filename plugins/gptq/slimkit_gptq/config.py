"""Config model of gptq.quantize (pydantic only, so that importing the plugin stays cheap)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class GptqConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bits: Literal[2, 3, 4, 8] = Field(
        default=4, description="Bits per weight. On CPU only 4 (GPTQModel's CPU kernel for 2, 3 and 8 bits needs fp16)."
    )
    group_size: int = Field(
        default=64,
        description="Weights sharing one scale along the input dimension; -1 means one per output channel. "
        "Must divide the input width of every quantized Linear (hidden and intermediate sizes).",
    )
    desc_act: bool = Field(default=False, description="Quantize columns in order of decreasing activation (act-order).")
    sym: bool = Field(default=True, description="Symmetric quantization (no zero point).")
    damp_percent: float = Field(
        default=0.05, gt=0, lt=1, description="Dampening added to the Hessian diagonal, as a share of its mean."
    )
    calibration_examples: int = Field(
        default=512,
        ge=1,
        description="Training texts (a seeded sample of the task's train split) packed into the calibration "
        "sequences; 512 short texts make about 128 sequences of 64 tokens.",
    )
    calibration_tokens: int = Field(
        default=64,
        ge=11,
        description="Consecutive calibration texts are joined until a sequence has at least this many tokens "
        "(GPTQModel drops sequences of 10 tokens or fewer; most single texts are that short).",
    )
    calibration_batch_size: int = Field(default=1, ge=1, description="Calibration sequences per batch.")

    @field_validator("group_size")
    @classmethod
    def _group(cls, value: int) -> int:
        if value != -1 and value < 1:
            raise ValueError("must be -1 (per output channel) or a positive number of weights")
        return value
