"""slimkit-torch: techniques that act on a PyTorch model rather than on a deployment format.

- ``torch.magnitude-prune``: unstructured L1 pruning with ``torch.nn.utils.prune``, made permanent.
  Dense kernels run no faster on zeros; it is declared (and measured) as giving no speed-up.
- ``torch.structured-prune``: removes FFN neurons, attention heads and whole layers, so matrices
  really shrink; the result is a normal HF folder whose config matches the new shapes.
- ``torch.low-rank-embeddings``: the word-embedding table as a low-rank product (truncated SVD), for
  BERT-style encoders; reloaded by slimkit's compact classes, like a head-pruned encoder.
- ``torch.dynamic-int8``: int8 Linear weights with dynamic activation quantization, on x86 CPUs.
  Writes the ``torch-int8`` format, which this plugin loads for measurement.
- ``torch.half``: bfloat16 or float16 weights and compute.

Each declaration names the function that performs it. Importing this module stays cheap: torch,
transformers, torch-pruning and torchao load inside the functions that use them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import slimkit
from slimkit import Artifact, Technique
from slimkit_torch.config import (
    DynamicInt8Config,
    HalfConfig,
    LowRankEmbeddingsConfig,
    MagnitudePruneConfig,
    StructuredPruneConfig,
)

if TYPE_CHECKING:
    from slimkit import Predictor

FORMAT = "transformers"
INT8_FORMAT = "torch-int8"
MAGNITUDE = "torch.magnitude-prune"
STRUCTURED = "torch.structured-prune"
LOW_RANK = "torch.low-rank-embeddings"
INT8 = "torch.dynamic-int8"
HALF = "torch.half"

__all__ = [
    "HALF",
    "INT8",
    "INT8_FORMAT",
    "LOW_RANK",
    "MAGNITUDE",
    "STRUCTURED",
    "TECHNIQUES",
    "load_predictor",
    "register_techniques",
]

# Model families (Hugging Face model_type) and what each technique does there; checked at plan
# time, listed in docs/compatibility.md, and tested on a tiny model of each
# (tests/test_torch_conformance.py).
ANY_LINEAR = {"*": "every nn.Linear outside the classification head"}
BERT_STYLE = "FFN neurons, attention heads (reloaded by slimkit's compact classes) and whole layers"
BERT_NO_HEADS = "FFN neurons and whole layers (heads: no class that reloads fewer heads)"
LLAMA_STYLE = "MLP neurons, attention heads (whole KV groups) and whole layers"
STRUCTURED_FAMILIES = {
    **dict.fromkeys(("bert", "roberta", "distilbert", "electra", "xlm-roberta"), BERT_STYLE),
    **dict.fromkeys(("deberta-v2", "mpnet"), BERT_NO_HEADS),
    **dict.fromkeys(("llama", "qwen2", "qwen3", "gemma3", "mistral"), LLAMA_STYLE),
}

TECHNIQUES = [
    Technique(
        name=MAGNITUDE,
        stage="prune",
        summary="Set the smallest weights to zero (unstructured L1, global or per layer) with "
        "torch.nn.utils.prune, made permanent. No speed-up: the matrices stay dense.",
        consumes=[FORMAT],
        produces=FORMAT,
        goals=[],
        before=["quantize", "export"],
        hardware={
            "devices": ["cpu", "cuda", "mps"],
            "speedup_devices": [],
            "notes": "Zeros in dense matrices: dense kernels run no faster and the saved file is no smaller; "
            "a later fine-tuning step (transformers.finetune) regrows the zeros. "
            "Use torch.structured-prune for speed.",
        },
        requires=["torch>=2.2", "transformers>=4.45"],
        config=MagnitudePruneConfig,
        implementation="slimkit_torch.magnitude:magnitude_prune",
        families=ANY_LINEAR,
    ),
    Technique(
        name=STRUCTURED,
        stage="prune",
        summary="Remove FFN neurons, attention heads and whole layers (by weight magnitude or gradients on "
        "training texts), so the matrices shrink; saves a normal HF folder with a matching config.",
        consumes=[FORMAT],
        produces=FORMAT,
        goals=["speed", "size", "memory"],
        before=["quantize", "export"],
        hardware={
            "devices": ["cpu", "cuda", "mps"],
            "notes": "Accuracy drops with what is removed; fine-tune afterwards (transformers.finetune) to "
            "recover it, before any quantization.",
        },
        requires=["torch>=2.2", "transformers>=4.45", "torch-pruning>=1.5"],
        config=StructuredPruneConfig,
        # Gradient importance (the default) and layer selection run the task's training texts.
        needs_task=True,
        implementation="slimkit_torch.structured:structured_prune",
        families=STRUCTURED_FAMILIES,
    ),
    Technique(
        name=LOW_RANK,
        stage="prune",
        summary="Factorise the word-embedding table into a vocabulary x rank table and a rank x width projection "
        "(truncated SVD), so the largest tensor of a small encoder shrinks; reloads as slimkit's compact class.",
        consumes=[FORMAT],
        produces=FORMAT,
        goals=["size", "memory"],
        # Vocabulary pruning cuts rows of a plain embedding table; quantizers and exporters read the result.
        after=["textpruner.vocabulary", "transformers.vocabulary"],
        before=["quantize", "export"],
        hardware={
            "devices": ["cpu", "cuda", "mps"],
            "notes": "Accuracy drops with the energy left out of the table; distil afterwards (distill.kd) to "
            "recover it, before any quantization.",
        },
        requires=["torch>=2.2", "transformers>=4.45"],
        config=LowRankEmbeddingsConfig,
        implementation="slimkit_torch.lowrank:low_rank_embeddings",
        families=dict.fromkeys(
            ("bert", "roberta", "distilbert", "electra", "xlm-roberta"),
            "the word embeddings (reloaded by slimkit's compact classes)",
        ),
    ),
    Technique(
        name=INT8,
        stage="quantize",
        summary="int8 Linear weights with dynamic per-batch activation quantization (torchao quantize_ under "
        "torch.compile, or the legacy torch.ao quantize_dynamic), on CPU; the classification head stays float32.",
        consumes=[FORMAT],
        produces=INT8_FORMAT,
        goals=["speed", "size", "memory"],
        # Quantized weights take no gradient and nothing here re-exports them: train, prune and
        # distill first.
        after=["train", "prune", "distill"],
        conflicts=[HALF],
        hardware={
            "devices": ["cpu"],
            "cpu_arch": ["x86_64", "AMD64"],
            "cpu_features_required": ["avx2"],
            "cpu_features_beneficial": ["avx512_vnni"],
            "notes": "x86 int8 kernels (torchao's compiled int8 matmuls; fbgemm for the legacy backend); "
            "fast with avx512_vnni (VNNI dot products), little gain without it.",
        },
        requires=["torch>=2.2", "transformers>=4.45", "torchao>=0.18"],
        config=DynamicInt8Config,
        implementation="slimkit_torch.int8:dynamic_int8",
        families=ANY_LINEAR,
    ),
    Technique(
        name=HALF,
        stage="quantize",
        summary="Cast weights and compute to bfloat16 (or float16); saves a normal HF folder that reloads "
        "in that dtype.",
        consumes=[FORMAT],
        produces=FORMAT,
        goals=["speed", "size", "memory"],
        after=["train", "prune", "distill"],
        conflicts=[INT8],
        hardware={
            "devices": ["cpu", "cuda", "mps"],
            "cpu_features_beneficial": ["avx512_bf16", "amx_bf16"],
            "notes": "bf16 is fast on CPUs with avx512_bf16 or AMX and on CUDA, slower than fp32 elsewhere; "
            "fp16 is fast on CUDA and slow on most CPUs.",
        },
        requires=["torch>=2.2", "transformers>=4.45"],
        config=HalfConfig,
        implementation="slimkit_torch.half:half",
        families={"*": "every weight and the compute, in bfloat16 or float16"},
    ),
]


@slimkit.hookimpl
def register_techniques(register: Callable[[Technique], None]) -> None:
    for technique in TECHNIQUES:
        register(technique)


@slimkit.hookimpl
def load_predictor(artifact: Artifact, device: str, threads: int) -> Predictor | None:
    if artifact.format != INT8_FORMAT:
        return None
    from slimkit_torch.int8 import Int8Predictor

    return Int8Predictor(artifact.path, device=device)
