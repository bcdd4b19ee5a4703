"""slimkit-distill: knowledge distillation of a transformers classifier into a smaller student.

One technique, ``distill.kd``: the model entering the step is the teacher; the student is a copy
of it with fewer layers, an earlier artifact of the pipeline (e.g. a structurally pruned teacher)
or another model. Its function is ``slimkit_distill.kd:distill``, imported only when a step runs it,
so importing this module stays cheap (no torch, no transformers).
"""

from __future__ import annotations

from collections.abc import Callable

import slimkit
from slimkit import Recipe, Technique
from slimkit.families import FAMILIES
from slimkit_distill.config import DistillConfig, StudentSpec

FORMAT = "transformers"
KD = "distill.kd"

__all__ = ["KD", "DistillConfig", "StudentSpec", "register_techniques"]


@slimkit.hookimpl
def register_techniques(register: Callable[[Technique], None]) -> None:
    register(
        Technique(
            name=KD,
            stage="distill",
            summary="Train a shallower student (every k-th layer of the teacher, a pruned teacher or any model) "
            "on the hard labels and the teacher's softened outputs, with the HF Trainer.",
            consumes=[FORMAT],
            produces=FORMAT,
            goals=["speed", "size", "memory"],
            before=["quantize", "export"],
            hardware={
                "devices": ["cpu", "cuda"],
                "notes": "Trains the student for several epochs (the teacher runs once, cached); "
                "a 3-layer MiniLM on 6k texts takes minutes on a 2-core CPU.",
            },
            requires=["transformers>=4.45", "datasets>=2.19", "accelerate>=0.26"],
            config=DistillConfig,
            implementation="slimkit_distill.kd:distill",
            # Every tested family but ModernBERT, whose first layer has no attention norm: a student
            # that keeps a later layer as its first cannot take that layer's weights.
            families={
                f.name: "a student of fewer layers (or another model) trained on the teacher's logits and hidden states"
                for f in FAMILIES
                if f.name != "modernbert"
            },
            needs_task=True,
            unlabelled_texts="transfer_texts",
        )
    )


@slimkit.hookimpl
def register_recipes(register: Callable[[Recipe], None]) -> None:
    from slimkit_distill.recipes import RECIPES

    for recipe in RECIPES:
        register(recipe)
