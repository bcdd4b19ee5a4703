"""slimkit-bnb: bitsandbytes weight quantization of transformers classifiers.

- ``bnb.int8``: LLM.int8 (int8 weights, outlier activation columns in 16 bits).
- ``bnb.4bit``: 4-bit NormalFloat or FP4 blocks, optional double quantization, chosen compute dtype.

Both go through transformers' ``BitsAndBytesConfig`` and write the ``bnb`` format: a transformers
folder whose config carries the quantization settings, reloaded by ``from_pretrained`` (measured by
this plugin's ``load_predictor``). Each declaration names its function in ``slimkit_bnb.quantize``.
The classification head is never quantized and is compared,
bit for bit, before quantization, after it and after a save/reload round trip.

On CPU bitsandbytes saves memory and disk but runs no faster than a 16-bit model (weights are
dequantized at every call): declared with ``speedup_devices`` so the planner warns a pipeline that
wants speed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import BaseModel

import slimkit
from slimkit import Artifact, Recipe, Technique
from slimkit_bnb.config import FourBitConfig, Int8Config

if TYPE_CHECKING:
    from slimkit import Predictor

FORMAT = "bnb"
INT8 = "bnb.int8"
FOUR_BIT = "bnb.4bit"
REQUIRES = ["torch>=2.2", "transformers>=4.45", "bitsandbytes>=0.49"]
# Weight-only quantization of a trained model: nothing trains, prunes or distills it afterwards.
AFTER = ["train", "prune", "distill"]

__all__ = ["FORMAT", "FOUR_BIT", "INT8", "load_predictor", "register_techniques"]


def _declare(
    name: str, summary: str, config: type[BaseModel], function: str, speedup_devices: list[str], notes: str
) -> Technique:
    return Technique(
        name=name,
        stage="quantize",
        summary=summary + " through transformers' BitsAndBytesConfig; the classification head stays float32.",
        consumes=["transformers"],
        produces=FORMAT,
        goals=["size", "memory"],
        after=AFTER,
        conflicts=["quantize"],
        hardware={"devices": ["cpu", "cuda"], "speedup_devices": speedup_devices, "notes": notes},
        requires=REQUIRES,
        config=config,
        implementation=f"slimkit_bnb.quantize:{function}",
        families={"*": "every nn.Linear outside the classification head, through transformers' loader"},
    )


@slimkit.hookimpl
def register_techniques(register: Callable[[Technique], None]) -> None:
    register(
        _declare(
            INT8,
            "LLM.int8 weights (outlier activation columns kept in 16 bits)",
            Int8Config,
            "int8",
            [],
            "LLM.int8 trades speed for memory: slower than float32 on CPU and than float16 on CUDA.",
        )
    )
    register(
        _declare(
            FOUR_BIT,
            "4-bit NF4/FP4 weights with optional double quantization and a chosen compute dtype",
            FourBitConfig,
            "four_bit",
            ["cuda"],
            "on CPU the 4-bit weights are dequantized to the compute dtype at every call: smaller and leaner "
            "in memory, and about as fast as the model in that dtype (bf16 compute can beat float32 on a CPU "
            "with bf16 instructions); the kernels that make 4-bit beat 16-bit are CUDA's.",
        )
    )


@slimkit.hookimpl
def load_predictor(artifact: Artifact, device: str, threads: int) -> Predictor | None:
    if artifact.format != FORMAT:
        return None
    from slimkit_bnb.quantize import BnbPredictor

    return BnbPredictor(artifact.path, device=device)


@slimkit.hookimpl
def register_recipes(register: Callable[[Recipe], None]) -> None:
    from slimkit_bnb.recipes import RECIPES

    for recipe in RECIPES:
        register(recipe)
