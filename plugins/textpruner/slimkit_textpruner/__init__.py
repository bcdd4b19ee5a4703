"""slimkit-textpruner: TextPruner's vocabulary pruning and transformer (heads and FFN) pruning.

- ``textpruner.vocabulary``: keeps only the tokens that the task's training texts (and any texts
  the config adds) use; model and tokenizer are pruned together into a normal HF folder.
- ``textpruner.transformer``: removes attention heads and FFN neurons scored on training data.
  It relies on ``prune_heads``, which transformers 5 removed, so it requires transformers 4.

Importing this module imports neither torch nor transformers nor textpruner.
"""

from __future__ import annotations

from collections.abc import Callable

import slimkit
from slimkit import Recipe, Technique
from slimkit_textpruner.config import TransformerConfig, VocabularyConfig

FORMAT = "transformers"
VOCABULARY = "textpruner.vocabulary"
TRANSFORMER = "textpruner.transformer"
TEXTPRUNER_REQUIREMENT = "textpruner>=1.1"


@slimkit.hookimpl
def register_techniques(register: Callable[[Technique], None]) -> None:
    register(
        Technique(
            name=VOCABULARY,
            stage="prune",
            summary="Remove the embedding rows of tokens the task's training texts never use (TextPruner); "
            "the tokenizer is pruned with the model.",
            consumes=[FORMAT],
            produces=FORMAT,
            goals=["size", "memory"],
            before=["quantize", "export"],
            hardware={
                "devices": ["cpu", "cuda", "mps"],
                "speedup_devices": [],
                "notes": "Shrinks the word-embedding matrix (half of MiniLM-L6); an embedding lookup costs the "
                "same at any vocabulary size, so latency does not change.",
            },
            requires=[TEXTPRUNER_REQUIREMENT, "transformers>=4.45", "tokenizers>=0.19"],
            config=VocabularyConfig,
            implementation="slimkit_textpruner.vocabulary:prune_vocabulary",
            families={
                f: "word embeddings and WordPiece vocabulary cut to the tokens the task uses"
                for f in ("bert", "electra")
            },
        )
    )
    register(
        Technique(
            name=TRANSFORMER,
            stage="prune",
            summary="Remove attention heads and FFN neurons by importance on training data (TextPruner); "
            "transformers 4 only, as it needs prune_heads, which transformers 5 removed.",
            consumes=[FORMAT],
            produces=FORMAT,
            goals=["speed", "size", "memory"],
            before=["quantize", "export"],
            hardware={
                "devices": ["cpu", "cuda"],
                "notes": "Importance scores need a forward and backward pass over calibration_examples training "
                "texts; "
                "no fine-tuning follows unless the pipeline adds a train step.",
            },
            requires=[TEXTPRUNER_REQUIREMENT, "transformers>=4.45,<5"],
            config=TransformerConfig,
            implementation="slimkit_textpruner.transformer:prune_transformer",
            families={
                f: "FFN neurons and attention heads (TextPruner)" for f in ("bert", "roberta", "electra", "xlm-roberta")
            },
            needs_task=True,
        )
    )


@slimkit.hookimpl
def register_recipes(register: Callable[[Recipe], None]) -> None:
    from slimkit_textpruner.recipes import RECIPES

    for recipe in RECIPES:
        register(recipe)
