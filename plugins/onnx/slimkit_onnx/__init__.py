"""slimkit-onnx: export to ONNX, ONNX Runtime graph optimisation, int8 and 4-bit quantization, ORT predictors.

Techniques: ``onnx.export`` (transformers -> onnx), ``onnx.optimize``, ``onnx.quantize-dynamic``,
``onnx.quantize-static`` and ``onnx.quantize-weight-only`` (onnx -> onnx). The ``load_predictor`` hook
runs ONNX artifacts under ONNX Runtime, so slimkit-transformers' protocol measures torch and ONNX
models in one session.

torch, onnx and onnxruntime are imported inside the functions that use them: importing this
module costs only pydantic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import slimkit
from slimkit import Artifact, StepContext, Technique
from slimkit_onnx.configs import (
    DynamicQuantConfig,
    ExportConfig,
    OptimizeConfig,
    StaticQuantConfig,
    WeightOnlyQuantConfig,
)

FORMAT = "onnx"
EXPORT = "onnx.export"
OPTIMIZE = "onnx.optimize"
QUANTIZE_DYNAMIC = "onnx.quantize-dynamic"
QUANTIZE_STATIC = "onnx.quantize-static"
QUANTIZE_WEIGHT_ONLY = "onnx.quantize-weight-only"

ORT = "onnxruntime>=1.20"
ONNX = "onnx>=1.16"
INT8_CPU_FEATURES = ["avx512_vnni", "avx_vnni", "amx_int8"]  # VNNI/AMX dot products make u8s8 kernels fast


@slimkit.hookimpl
def register_techniques(register: Callable[[Technique], None]) -> None:
    register(
        Technique(
            name=EXPORT,
            stage="export",
            summary="Export the classifier to ONNX (dynamic batch and sequence axes), checked against torch on "
            "eval texts; tokenizer and labels saved beside it.",
            consumes=["transformers"],
            produces=FORMAT,
            after=["train", "prune", "distill"],
            goals=["speed"],
            hardware={
                "devices": ["cpu", "cuda"],
                "notes": "Exports on CPU; the graph runs under ONNX Runtime's CPU or CUDA execution provider.",
            },
            requires=["torch>=2.2", "transformers>=4.45", ONNX, ORT, "onnxscript>=0.2"],
            config=ExportConfig,
        )
    )
    register(
        Technique(
            name=OPTIMIZE,
            stage="export",
            summary="ONNX Runtime graph optimisation with onnxruntime.transformers fusions (Attention, "
            "EmbedLayerNormalization, SkipLayerNormalization) for BERT-class models.",
            consumes=[FORMAT],
            produces=FORMAT,
            after=[EXPORT],
            before=[QUANTIZE_DYNAMIC, QUANTIZE_STATIC, QUANTIZE_WEIGHT_ONLY],
            goals=["speed"],
            hardware={
                "devices": ["cpu", "cuda"],
                "notes": "Fused ops run on ORT's CPU and CUDA execution providers; attention fuses only for graphs "
                "exported with exporter='torchscript' and eager attention.",
            },
            requires=[ONNX, ORT],
            config=OptimizeConfig,
        )
    )
    register(
        Technique(
            name=QUANTIZE_DYNAMIC,
            stage="quantize",
            summary="int8 weights, activations quantized per call (onnxruntime.quantization.quantize_dynamic), "
            "per-channel, embeddings included or not; the head stays float.",
            consumes=[FORMAT],
            produces=FORMAT,
            after=[EXPORT, OPTIMIZE],
            conflicts=[QUANTIZE_STATIC, QUANTIZE_WEIGHT_ONLY],
            goals=["speed", "size"],
            hardware={
                "devices": ["cpu"],
                "cpu_features_beneficial": INT8_CPU_FEATURES,
                "speedup_devices": ["cpu"],
                "notes": "Targets ORT's CPU execution provider (MatMulInteger, QAttention); fast with VNNI or AMX, "
                "on AVX2/AVX-512 without VNNI set reduce_range to avoid saturation.",
            },
            requires=[ONNX, ORT],
            config=DynamicQuantConfig,
        )
    )
    register(
        Technique(
            name=QUANTIZE_STATIC,
            stage="quantize",
            summary="QDQ static int8 calibrated on the task's training texts (MinMax, Entropy or Percentile); "
            "the head stays float.",
            consumes=[FORMAT],
            produces=FORMAT,
            after=[EXPORT, OPTIMIZE],
            conflicts=[QUANTIZE_DYNAMIC, QUANTIZE_WEIGHT_ONLY],
            goals=["speed", "size"],
            hardware={
                "devices": ["cpu", "cuda"],
                "cpu_features_beneficial": INT8_CPU_FEATURES,
                "speedup_devices": ["cpu"],
                "notes": "QDQ graphs run on ORT's CPU provider (fused to integer kernels at load) and can feed "
                "TensorRT's int8 path; the CUDA provider itself gains no speed from them.",
            },
            requires=[ONNX, ORT],
            config=StaticQuantConfig,
        )
    )
    register(
        Technique(
            name=QUANTIZE_WEIGHT_ONLY,
            stage="quantize",
            summary="4-bit (or 8-bit) block-wise weights, activations float (onnxruntime's MatMulNBitsQuantizer, "
            "RTN or HQQ): MatMul becomes MatMulNBits, embeddings optionally GatherBlockQuantized; the head stays "
            "float.",
            consumes=[FORMAT],
            produces=FORMAT,
            after=[EXPORT, OPTIMIZE],
            conflicts=[QUANTIZE_DYNAMIC, QUANTIZE_STATIC],
            goals=["size", "speed"],
            hardware={
                "devices": ["cpu"],
                "cpu_features_beneficial": INT8_CPU_FEATURES,
                "speedup_devices": ["cpu"],
                "notes": "Targets ORT's CPU MatMulNBits kernel, which with accuracy_level 4 computes in int8 (fast "
                "with VNNI or AMX) and gains most at small batch, where reading the weights dominates; with "
                "accuracy_level below 4, or HQQ, it computes in float and saves memory more than time.",
            },
            requires=[ONNX, ORT],
            config=WeightOnlyQuantConfig,
        )
    )


@slimkit.hookimpl
def export(step: StepContext) -> Artifact | None:
    if step.owns(EXPORT):
        from slimkit_onnx.exporting import export as run_export

        return run_export(step)
    if step.owns(OPTIMIZE):
        from slimkit_onnx.optimizing import optimize

        return optimize(step)
    return None


@slimkit.hookimpl
def quantize(step: StepContext) -> Artifact | None:
    if step.owns(QUANTIZE_DYNAMIC):
        from slimkit_onnx.quantizing import quantize_dynamic

        return quantize_dynamic(step)
    if step.owns(QUANTIZE_STATIC):
        from slimkit_onnx.quantizing import quantize_static

        return quantize_static(step)
    if step.owns(QUANTIZE_WEIGHT_ONLY):
        from slimkit_onnx.weight_only import quantize_weight_only

        return quantize_weight_only(step)
    return None


@slimkit.hookimpl
def load_predictor(artifact: Artifact, device: str, threads: int) -> Any | None:
    if artifact.format != FORMAT:
        return None
    from slimkit_onnx.predictor import OnnxPredictor

    return OnnxPredictor(artifact.path, device=device, threads=threads)
