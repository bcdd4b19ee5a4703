"""How ``recipe = "auto"`` fine-tunes a model whose head is not trained yet (the baseline then comes
from it): all layers of an encoder; the last layers of a decoder, whose full training would not fit
the time of a CPU session."""

from __future__ import annotations

from slimkit import Recipe

RECIPES = [
    Recipe(
        name="transformers.finetune-encoder",
        summary="Fine-tune every layer, up to 6 epochs with early stopping on a validation slice of the training data.",
        goals=["accuracy"],
        role="train",
        kinds=["encoder"],
        cost=3,
        steps=[
            {
                "name": "finetune",
                "technique": "transformers.finetune",
                "config": {"epochs": 6, "learning_rate": 8e-5, "batch_size": 32, "early_stopping_patience": 2},
            }
        ],
    ),
    Recipe(
        name="transformers.finetune-decoder",
        summary="Fine-tune the last 4 layers and the head for one epoch, evaluated twice, with early stopping.",
        goals=["accuracy"],
        role="train",
        kinds=["decoder"],
        cost=4,
        steps=[
            {
                "name": "finetune",
                "technique": "transformers.finetune",
                "config": {
                    "epochs": 1, "learning_rate": 2e-4, "batch_size": 16, "train_layers": 4,
                    "early_stopping_patience": 2, "evals_per_epoch": 2,
                },
            }
        ],
    ),
]  # fmt: skip
