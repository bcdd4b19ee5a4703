"""slimkit-awq: AWQ (activation-aware weight quantization) of decoder classifiers through Intel Neural Compressor.

- ``awq.quantize``: 4-bit AWQ with a group size, calibrated on CPU on the task's training texts.
  Writes a GPTQ checkpoint (INC's Hugging Face export of symmetric 4-bit weights), the ``gptq``
  format that slimkit-gptq loads onto GPTQModel's int4 kernel for measurement.

Why INC: llm-compressor 0.14 needs transformers<=5.17 and fails on CPU (pin_memory) without a
patch, torchao's prototype AWQ is far too slow on CPU, and AutoAWQ is archived. See docs/plugins/awq.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import slimkit
from slimkit import Recipe, Technique
from slimkit_awq.config import AwqConfig
from slimkit_gptq import FORMAT  # the GPTQ checkpoint that slimkit-gptq loads and measures

QUANTIZE = "awq.quantize"

__all__ = ["FORMAT", "QUANTIZE", "RECIPES", "register_recipes", "register_techniques"]


@slimkit.hookimpl
def register_techniques(register: Callable[[Technique], None]) -> None:
    register(
        Technique(
            name=QUANTIZE,
            stage="quantize",
            summary="AWQ 4-bit weights of a decoder classifier with Intel Neural Compressor, calibrated on the "
            "task's training texts; the classification head stays float32; runs on GPTQModel's int4 kernel.",
            consumes=["transformers"],
            produces=FORMAT,
            goals=["size", "memory"],
            after=["train", "prune", "distill"],
            conflicts=["quantize"],
            hardware={
                "devices": ["cpu"],
                "speedup_devices": [],
                "notes": "INC calibrates on the CPU; the result runs on GPTQModel's int4 CPU kernel "
                "(TorchFusedLinear), which is smaller but not faster than float32.",
            },
            requires=["neural-compressor-pt>=3.10,<3.11", "gptqmodel>=7.6", "torch>=2.8", "transformers>=5.14"],
            config=AwqConfig,
            check_model=check_group_size,
            needs_task=True,  # calibrates on the task's training texts
            implementation="slimkit_awq.quantize:awq_quantize",
            families={
                f: "decoder layers' Linear weights to 4 bits with AWQ scales; the head stays float"
                for f in ("llama", "mistral", "qwen2", "qwen3")
            },
        )
    )


def check_group_size(config: Any, model_config: dict[str, Any]) -> str | None:
    """Plan time: the group size must divide every quantized layer's input width."""
    from slimkit_gptq.quantize import group_size_problem

    problem = group_size_problem(config.group_size, model_config)
    return f"config.group_size: {problem}" if problem else None


RECIPES = [
    Recipe(
        name="awq.int4",
        summary="AWQ 4-bit weights (group 64), calibrated on 128 training texts: decoder layers about 7x "
        "smaller, embeddings and head kept float32; on CPU no faster.",
        goals=["size", "memory"],
        kinds=["decoder"],
        cost=2,  # no training, but a grid search of scales and clipping per layer, on the CPU
        steps=[{"name": "awq4", "technique": QUANTIZE}],
    )
]


@slimkit.hookimpl
def register_recipes(register: Callable[[Recipe], None]) -> None:
    for recipe in RECIPES:
        register(recipe)
