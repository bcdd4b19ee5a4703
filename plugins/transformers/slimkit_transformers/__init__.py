"""slimkit-transformers: Hugging Face models and data for slimkit, fine-tuning, and measurement.

Hooks implemented here stay cheap to import: torch, transformers and datasets are imported inside
the functions that use them, so ``slimkit --help`` and ``slimkit plugins`` stay fast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import slimkit
from slimkit import Artifact, MeasureContext, Metric, Recipe, Technique
from slimkit.spec import ModelSource, Pipeline, TaskSpec
from slimkit_transformers.finetune import FinetuneConfig
from slimkit_transformers.vocabulary import VocabularyConfig

FORMAT = "transformers"
FINETUNE = "transformers.finetune"
VOCABULARY = "transformers.vocabulary"
DECODER_FAMILIES = ("llama", "qwen2", "qwen3", "gemma3", "mistral", "phi3")


@slimkit.hookimpl
def register_techniques(register: Callable[[Technique], None]) -> None:
    register(
        Technique(
            name=FINETUNE,
            stage="train",
            summary="Fine-tune the classifier (all weights, or the head and the last N layers) with the HF Trainer.",
            consumes=[FORMAT],
            produces=FORMAT,
            goals=["accuracy"],
            before=["quantize", "export"],
            hardware={"devices": ["cpu", "cuda", "mps"], "notes": "Training on CPU is slow; prefer few layers."},
            requires=["transformers>=4.45", "datasets>=2.19", "accelerate>=0.26"],
            config=FinetuneConfig,
            implementation="slimkit_transformers.finetune:finetune",
            families={"*": "every layer, or the last train_layers; decoders are classified from their last token"},
            needs_task=True,
        )
    )
    register(
        Technique(
            name=VOCABULARY,
            stage="prune",
            summary="Cut a decoder's vocabulary and embedding rows to the tokens its training texts use, "
            "keeping the alphabet so any text still tokenizes (BPE or Unigram tokenizer.json).",
            consumes=[FORMAT],
            produces=FORMAT,
            goals=["size", "memory"],
            before=["quantize", "export"],
            hardware={
                "devices": ["cpu", "cuda", "mps"],
                "speedup_devices": [],
                "notes": "Shrinks the embedding table (a fifth of SmolLM2-135M, more in 150k-260k-token "
                "vocabularies); an embedding lookup costs the same at any size, so latency does not change.",
            },
            requires=["transformers>=4.45", "tokenizers>=0.19"],
            config=VocabularyConfig,
            implementation="slimkit_transformers.vocabulary:prune_vocabulary",
            families={
                f: "embedding rows, BPE vocabulary and merges (or Unigram pieces) cut to the tokens the task uses"
                for f in DECODER_FAMILIES
            },
            needs_task=True,
        )
    )


def _task(pipeline: Pipeline) -> Any:
    from slimkit_transformers.tasks import load_task

    return load_task(pipeline.task, pipeline.resolve_path) if pipeline.task is not None else None


@slimkit.hookimpl
def resolve_model(source: ModelSource, pipeline: Pipeline, cache_dir: Path) -> Artifact | None:
    from slimkit_transformers.models import resolve_source

    return resolve_source(source, pipeline, cache_dir, _task(pipeline))


@slimkit.hookimpl
def model_config(source: ModelSource, pipeline: Pipeline, cache_dir: Path) -> dict[str, Any] | None:
    from slimkit_transformers.models import read_model_config

    return read_model_config(source, pipeline, cache_dir)


@slimkit.hookimpl
def check_task(task: TaskSpec, pipeline: Pipeline) -> list[str]:
    from slimkit_transformers.tasks import task_problems

    # The same resolver as the run's load_task calls: the run (and a study's other variants)
    # reuse this load from the task cache.
    return task_problems(task, pipeline.resolve_path)


@slimkit.hookimpl(trylast=True)
def load_predictor(artifact: Artifact, device: str, threads: int) -> Any | None:
    if artifact.format != FORMAT:
        return None
    from slimkit_transformers.predictors import TorchPredictor

    return TorchPredictor(artifact.path, device=device)


@slimkit.hookimpl
def measure(artifacts: Sequence[Artifact], context: MeasureContext) -> dict[str, list[Metric]]:
    from slimkit_transformers import protocol
    from slimkit_transformers.models import set_threads

    threads = set_threads(context.settings.threads)

    def loader(artifact: Artifact) -> Any | None:
        if context.plugins is not None:
            return context.plugins.load_predictor(artifact, context.device, threads)
        return load_predictor(artifact, context.device, threads)

    return protocol.measure(artifacts, context, loader, _task(context.pipeline))


@slimkit.hookimpl
def register_recipes(register: Callable[[Recipe], None]) -> None:
    from slimkit_transformers.recipes import RECIPES

    for recipe in RECIPES:
        register(recipe)
