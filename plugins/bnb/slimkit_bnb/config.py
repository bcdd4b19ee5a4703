"""Config models of the two techniques (pydantic only, so that importing the plugin stays cheap)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

HEAD_HELP = "The classification head (and pooler) are always kept out of quantization, whatever is listed here."


class Int8Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(
        default=6.0,
        ge=0,
        description="LLM.int8 outlier threshold: activation columns above it run in 16 bits (llm_int8_threshold).",
    )
    skip_modules: list[str] = Field(
        default_factory=list, description="More module names kept in full precision. " + HEAD_HELP
    )


class FourBitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quant_type: Literal["nf4", "fp4"] = Field(
        default="nf4", description="4-bit data type: 'nf4' (NormalFloat, for normally distributed weights) or 'fp4'."
    )
    double_quant: bool = Field(
        default=True, description="Quantize the per-block scales too (about 0.4 bits per weight saved)."
    )
    compute_dtype: Literal["float32", "bfloat16", "float16"] = Field(
        default="bfloat16", description="dtype the 4-bit weights are dequantized to for the matrix products."
    )
    skip_modules: list[str] = Field(
        default_factory=list, description="More module names kept in full precision. " + HEAD_HELP
    )
