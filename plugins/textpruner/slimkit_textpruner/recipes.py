"""The recipe slimkit-textpruner recommends: the task's vocabulary only, then ONNX int8."""

from __future__ import annotations

from typing import Any

from slimkit import Recipe

# Tokens seen at least twice in the training texts: embeddings are half of a small encoder's weights.
VOCAB_STEP: dict[str, Any] = {"name": "vocab", "technique": "textpruner.vocabulary", "config": {"min_count": 2}}

RECIPES = [
    Recipe(
        name="textpruner.vocab-onnx-int8",
        summary="The task's vocabulary only, then ONNX int8: about 2x smaller again than onnx.int8 for MiniLM-L6, "
        "no accuracy lost.",
        goals=["size", "speed", "memory"],
        kinds=["encoder"],
        cost=1,
        steps=[VOCAB_STEP, {"recipe": "onnx.int8"}],  # slimkit-onnx's export, fusions and int8
    ),
]
