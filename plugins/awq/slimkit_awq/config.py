"""Config model of awq.quantize (pydantic only, so that importing the plugin stays cheap)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class AwqConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bits: Literal[4] = Field(
        default=4,
        description="Bits per weight: 4, the width of GPTQModel's int4 CPU kernel that runs the result "
        "(its kernel for other widths refuses float32 models, and the head stays float32).",
    )
    group_size: Literal[-1, 32, 64, 128, 256] = Field(
        default=64,
        description="Weights sharing one scale along the input dimension (-1: one per output channel); the "
        "group sizes GPTQModel's int4 CPU kernel takes. Must divide the input width of every quantized Linear "
        "(SmolLM2-135M's hidden size 576 takes 32, 64 or -1, not 128).",
    )
    calibration_examples: int = Field(
        default=128,
        ge=1,
        le=100_000,
        description="Training texts (the seeded sample of the task's train split every slimkit technique "
        "calibrates on), joined with newlines and cut into sequences of max_length tokens.",
    )
    max_length: int = Field(
        default=128,
        ge=8,
        le=8192,
        description="Tokens per calibration sequence (the last one may be shorter).",
    )
    calibration_batch_size: int = Field(default=8, ge=1, le=1024, description="Calibration sequences per forward pass.")
    auto_scale: bool = Field(
        default=True,
        description="Search each group of Linears' activation-aware input scales (AWQ's scale search, a grid "
        "of 20 ratios in INC 3.10). False leaves plain round-to-nearest apart from clipping.",
    )
    auto_clip: bool = Field(
        default=True,
        description="Search each Linear's clipping range by output error (a grid of 100 ratios in INC 3.10); "
        "the slower half of the calibration.",
    )
