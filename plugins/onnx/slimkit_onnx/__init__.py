"""slimkit-onnx: export to ONNX, ONNX Runtime graph optimisation, int8 and 4-bit quantization, ORT predictors.

Techniques: ``onnx.export`` (transformers -> onnx), ``onnx.optimize``, ``onnx.quantize-dynamic``,
``onnx.quantize-static`` and ``onnx.quantize-weight-only`` (onnx -> onnx). Each declaration names
the function that performs it. The ``load_predictor`` hook runs ONNX artifacts under ONNX Runtime,
so slimkit-transformers' protocol measures torch and ONNX models in one session.

torch, onnx and onnxruntime are imported inside the functions that use them: importing this
module costs only pydantic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import slimkit
from slimkit import Artifact, Recipe, Technique
from slimkit.families import FAMILIES
from slimkit_onnx.config import (
    BERT_FUSED_FAMILIES,
    DynamicQuantConfig,
    ExportConfig,
    OptimizeConfig,
    StaticQuantConfig,
    WeightOnlyQuantConfig,
)

if TYPE_CHECKING:
    from slimkit import Predictor

FORMAT = "onnx"
EXPORT = "onnx.export"
OPTIMIZE = "onnx.optimize"
QUANTIZE_DYNAMIC = "onnx.quantize-dynamic"
QUANTIZE_STATIC = "onnx.quantize-static"
QUANTIZE_WEIGHT_ONLY = "onnx.quantize-weight-only"

ORT = "onnxruntime>=1.20"
ONNX = "onnx>=1.16"
INT8_CPU_FEATURES = ["avx512_vnni", "avx_vnni", "amx_int8"]  # VNNI/AMX dot products make u8s8 kernels fast
QUANTIZERS = [QUANTIZE_DYNAMIC, QUANTIZE_STATIC, QUANTIZE_WEIGHT_ONLY]

# Model families (Hugging Face model_type): each tested on a tiny model (plugins/onnx/tests/test_onnx_conformance.py).
TESTED = tuple(f.name for f in FAMILIES)
OPTIMIZE_FAMILIES = {
    f: "onnxruntime.transformers' BERT fusions (Attention, SkipLayerNorm, GELU)"
    if f in BERT_FUSED_FAMILIES
    else "ONNX Runtime's generic graph optimisations (no transformer fusions for this family)"
    for f in TESTED
}


def _each(how: str) -> dict[str, str]:
    return dict.fromkeys(TESTED, how)


TECHNIQUES = [
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
        implementation="slimkit_onnx.export:export",
        families=_each("TorchScript or dynamo export, checked against torch on eval texts"),
    ),
    # An export-stage step, although it rewrites an ONNX graph rather than exporting one: the
    # stages are train, prune, distill, quantize and export, and of those only export describes a
    # step that turns a model into the graph a runtime deploys. As a quantize technique it would
    # conflict with every technique that declares conflicts=["quantize"], and a stage-only
    # `stage = "quantize"` step could pick it although it quantizes nothing. Its order is declared
    # by name (after onnx.export, before the ONNX quantizers), not by stage.
    Technique(
        name=OPTIMIZE,
        stage="export",
        summary="ONNX Runtime graph optimisation with onnxruntime.transformers fusions (Attention, "
        "EmbedLayerNormalization, SkipLayerNormalization) for BERT-class models.",
        consumes=[FORMAT],
        produces=FORMAT,
        after=[EXPORT],
        before=QUANTIZERS,
        goals=["speed"],
        hardware={
            "devices": ["cpu", "cuda"],
            "notes": "Fused ops run on ORT's CPU and CUDA execution providers; attention fuses only for graphs "
            "exported with exporter='torchscript' and eager attention.",
        },
        requires=[ONNX, ORT],
        config=OptimizeConfig,
        implementation="slimkit_onnx.optimize:optimize",
        families=OPTIMIZE_FAMILIES,
    ),
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
        implementation="slimkit_onnx.quantize:quantize_dynamic",
        families=_each("int8 MatMul weights, dynamic activations"),
    ),
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
        needs_task=True,  # calibrates on the task's training texts
        implementation="slimkit_onnx.quantize:quantize_static",
        families=_each("int8 weights and activations calibrated on training texts"),
    ),
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
        implementation="slimkit_onnx.weight_only:quantize_weight_only",
        families=_each("4-bit or 8-bit block-wise MatMul weights (MatMulNBits)"),
    ),
]


@slimkit.hookimpl
def register_techniques(register: Callable[[Technique], None]) -> None:
    for technique in TECHNIQUES:
        register(technique)


@slimkit.hookimpl
def load_predictor(artifact: Artifact, device: str, threads: int) -> Predictor | None:
    if artifact.format != FORMAT:
        return None
    from slimkit_onnx.predictor import OnnxPredictor

    return OnnxPredictor(artifact.path, device=device, threads=threads)


@slimkit.hookimpl
def register_recipes(register: Callable[[Recipe], None]) -> None:
    from slimkit_onnx.recipes import RECIPES

    for recipe in RECIPES:
        register(recipe)
