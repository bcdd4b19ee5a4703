"""slimkit-gptq: GPTQ weight quantization of decoder classifiers through GPTQModel.

- ``gptq.quantize``: 4-bit GPTQ (2/3/8 bits on CUDA) with a group size, calibrated on the task's training texts.
  Writes the ``gptq`` format (a GPTQModel checkpoint of the sequence classifier), which this
  plugin loads for measurement.

GPTQModel (ModelCloud), not auto-gptq: auto-gptq is archived, does not import with transformers 5
and refuses to quantize without CUDA; GPTQModel is its maintained successor and quantizes and runs
on CPU. GPTQModel loads causal LMs; this plugin gives its model definitions the
sequence-classification loader, so the decoder layers are quantized and the ``score`` head is
carried over in float32 (checked bit for bit after reloading).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import slimkit
from slimkit import Artifact, Technique
from slimkit_gptq.config import GptqConfig

if TYPE_CHECKING:
    from slimkit import Predictor

FORMAT = "gptq"
QUANTIZE = "gptq.quantize"

__all__ = ["FORMAT", "QUANTIZE", "load_predictor", "register_techniques"]


@slimkit.hookimpl
def register_techniques(register: Callable[[Technique], None]) -> None:
    register(
        Technique(
            name=QUANTIZE,
            stage="quantize",
            summary="GPTQ 4-bit (2/3/8 on CUDA) weights of a decoder classifier (Llama, Qwen, Mistral, ...) with "
            "GPTQModel, calibrated on the task's training texts; the classification head stays float32.",
            consumes=["transformers"],
            produces=FORMAT,
            goals=["size", "memory"],
            after=["train", "prune", "distill"],
            conflicts=["quantize"],
            hardware={
                "devices": ["cpu", "cuda"],
                "speedup_devices": ["cuda"],
                "notes": "on CPU GPTQModel's torch kernels dequantize the weights at every call: smaller, "
                "but not faster than float32; fast kernels (Marlin, ExLlama) are CUDA-only.",
            },
            requires=["gptqmodel>=7.6", "torch>=2.8", "transformers>=5.14"],
            config=GptqConfig,
            check_model=check_group_size,
            needs_task=True,  # calibrates on the task's training texts
            implementation="slimkit_gptq.quantize:gptq_quantize",
            families={
                f: "decoder layers' Linear weights to 2-8 bits; the head stays float"
                for f in ("llama", "qwen2", "qwen3", "gemma3", "mistral", "phi3")
            },
        )
    )


def check_group_size(config: Any, model_config: dict[str, Any]) -> str | None:
    """Plan time: the group size must divide every quantized layer's input width."""
    from slimkit_gptq.quantize import group_size_problem

    problem = group_size_problem(config.group_size, model_config)
    return f"config.group_size: {problem}" if problem else None


@slimkit.hookimpl
def load_predictor(artifact: Artifact, device: str, threads: int) -> Predictor | None:
    if artifact.format != FORMAT:
        return None
    from slimkit_gptq.quantize import GptqPredictor

    return GptqPredictor(artifact.path, device=device, threads=threads)
