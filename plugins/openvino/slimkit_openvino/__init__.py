"""slimkit-openvino: OpenVINO IR export, NNCF int8 and 4-bit weights, and an OpenVINO predictor.

Techniques: ``openvino.export`` (transformers -> openvino), ``openvino.int8`` (openvino ->
openvino: NNCF post-training int8, with accuracy control, or int8 weights only) and
``openvino.int4`` (openvino -> openvino: NNCF 4-bit weights, embeddings included). Each declaration
names the function that performs it. The ``load_predictor`` hook compiles ``openvino`` artifacts
on OpenVINO's CPU plugin, so slimkit-transformers' protocol measures torch, ONNX Runtime and
OpenVINO models in one session. The recipe ``openvino.int8`` puts NNCF's int8 in
``slimkit compress``'s table.

torch, openvino and nncf are imported inside the functions that use them: importing this module
costs only pydantic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import slimkit
from slimkit import Artifact, Recipe, Technique
from slimkit.families import FAMILIES
from slimkit_openvino.config import ExportConfig, Int4Config, Int8Config

if TYPE_CHECKING:
    from slimkit import Predictor

FORMAT = "openvino"
EXPORT = "openvino.export"
INT8 = "openvino.int8"
INT4 = "openvino.int4"

OPENVINO = "openvino>=2025.0"
NNCF = "nncf>=2.18"  # GroupSizeFallbackMode (openvino.int4, 4-bit embedding tables)
INT8_CPU_FEATURES = ["avx512_vnni", "avx_vnni", "amx_int8"]  # VNNI/AMX dot products make int8 kernels fast

# Model families (Hugging Face model_type): each tested on a tiny model (tests/test_openvino_conformance.py).
TESTED = tuple(f.name for f in FAMILIES)


def _each(how: str) -> dict[str, str]:
    return dict.fromkeys(TESTED, how)


TECHNIQUES = [
    Technique(
        name=EXPORT,
        stage="export",
        summary="Convert the classifier to OpenVINO IR (openvino.convert_model, dynamic batch and sequence axes, "
        "float32 weights), checked against torch on eval texts; tokenizer and labels saved beside it.",
        consumes=["transformers"],
        produces=FORMAT,
        after=["train", "prune", "distill"],
        goals=["speed"],
        hardware={
            "devices": ["cpu"],
            "notes": "Converts on CPU; slimkit compiles the IR on OpenVINO's CPU plugin (x86 or ARM), in f32 "
            "unless inference_precision says otherwise.",
        },
        requires=["torch>=2.2", "transformers>=4.45", OPENVINO],
        config=ExportConfig,
        implementation="slimkit_openvino.export:export",
        families=_each("openvino.convert_model of the torch classifier, checked against torch on eval texts"),
    ),
    Technique(
        name=INT8,
        stage="quantize",
        summary="NNCF post-training int8 of an OpenVINO IR (nncf.quantize, transformer preset) calibrated on the "
        "task's training texts; or with accuracy control, or int8 weights only; the head stays float.",
        consumes=[FORMAT],
        produces=FORMAT,
        after=[EXPORT],
        goals=["speed", "size"],
        hardware={
            "devices": ["cpu"],
            "cpu_features_beneficial": INT8_CPU_FEATURES,
            "speedup_devices": ["cpu"],
            "notes": "OpenVINO's CPU plugin runs the FakeQuantize'd MatMuls as int8 kernels: fast with VNNI or AMX, "
            "little gain on AVX2 alone; 'weights-only' saves size and memory more than time.",
        },
        requires=[OPENVINO, NNCF],
        config=Int8Config,
        needs_task=True,  # calibrates on the task's training texts (accuracy control: its validation slice)
        implementation="slimkit_openvino.quantize:quantize",
        families=_each("int8 MatMul weights and activations (FakeQuantize) calibrated on training texts"),
    ),
    Technique(
        name=INT4,
        stage="quantize",
        summary="NNCF 4-bit weight compression of an OpenVINO IR (nncf.compress_weights, INT4 in groups, embeddings "
        "included), optionally data-aware (scale estimation, AWQ, GPTQ on training texts); the head stays float.",
        consumes=[FORMAT],
        produces=FORMAT,
        after=[EXPORT],
        goals=["size", "memory"],
        hardware={
            "devices": ["cpu"],
            "cpu_features_beneficial": INT8_CPU_FEATURES,
            "notes": "The CPU plugin unpacks the 4-bit weights and quantizes the activations to int8 on the fly: "
            "about a sixth of float's bytes; on a small encoder slower than openvino.int8's calibrated int8 "
            "kernels, on a decoder as fast as int8 weights.",
        },
        requires=[OPENVINO, NNCF],
        config=Int4Config,
        needs_task=True,  # the data-aware methods calibrate on training texts; agreement is checked on eval texts
        implementation="slimkit_openvino.int4:compress",
        families=_each("4-bit grouped weights of every MatMul and embedding table but the head"),
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
    from slimkit_openvino.predictor import OpenVinoPredictor

    return OpenVinoPredictor(artifact.path, device=device, threads=threads)


@slimkit.hookimpl
def register_recipes(register: Callable[[Recipe], None]) -> None:
    from slimkit_openvino.recipes import RECIPES

    for recipe in RECIPES:
        register(recipe)
