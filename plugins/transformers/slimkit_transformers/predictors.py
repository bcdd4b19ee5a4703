"""Predictors: a loaded model behind one small interface, so one protocol times every format.

``encode`` (tokenization) is never timed; ``__call__`` runs the model on encoded inputs and
returns logits as a NumPy array. Other plugins (ONNX Runtime, ...) provide predictors for their
formats through the ``load_predictor`` hook.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

from slimkit_transformers.steps import HEAD_NAMES, TASK_FILE


class TorchPredictor:
    """A transformers sequence classifier on a torch device, run under ``torch.inference_mode``."""

    runtime = "torch"

    def __init__(self, path: Path, device: str = "cpu") -> None:
        import torch

        from slimkit_transformers.models import load_classifier, saved_size_facts

        self.path = path
        self.device = device
        self.model, self.tokenizer = load_classifier(path, device=device)
        self.facts: dict[str, Any] = {"runtime": "torch", "dtype": str(next(self.model.parameters()).dtype)}
        self.facts |= saved_size_facts(self.model)
        self.facts["head_checksum"] = head_checksum(self.model)
        self._torch = torch

    def encode(self, texts: list[str], *, max_length: int, pad_to_max: bool) -> dict[str, Any]:
        return dict(
            self.tokenizer(
                texts,
                padding="max_length" if pad_to_max else True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(self.device)
        )

    def __call__(self, inputs: dict[str, Any]) -> np.ndarray:
        with self._torch.inference_mode():
            logits = self.model(**inputs).logits
        if self.device.startswith("cuda"):
            self._torch.cuda.synchronize()  # CUDA kernels run asynchronously; time the finished work
        return logits.float().cpu().numpy()  # type: ignore[no-any-return]

    def close(self) -> None:
        del self.model


def head_checksum(model: Any) -> float | None:
    """Sum of |w| over the classification head: equal heads give equal sums, a re-initialised
    head almost never does. None when the head is not a plain weight (e.g. quantized)."""
    for name in HEAD_NAMES:  # the output layer (classifier or score) is found first
        head = getattr(model, name, None)
        if head is None:
            continue
        weights = [p for p in head.parameters() if p.is_floating_point()]
        if weights:
            return float(sum(p.detach().float().abs().sum().item() for p in weights))
    return None


def saved_threshold(path: Path, default: float) -> float:
    """The decision threshold saved by a fine-tuning step (tuned on validation), if any."""
    folder = path if path.is_dir() else path.parent
    facts = folder / TASK_FILE
    if facts.is_file():
        return float(json.loads(facts.read_text()).get("threshold", default))
    return default
