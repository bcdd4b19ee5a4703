"""The predictor interface: a loaded model that measurers can time, whatever its format.

Plugins return one from the ``load_predictor`` hook. ``encode`` (tokenization) is never timed;
``__call__`` runs the model on encoded inputs and returns logits as a NumPy array of shape
(batch, labels).
"""

from __future__ import annotations

from typing import Any, Protocol


class Predictor(Protocol):
    runtime: str  # what runs it, e.g. 'torch' or 'onnxruntime'
    facts: dict[str, Any]  # what a report shows about the loaded model (dtype, parameter counts, ...)

    def encode(self, texts: list[str], *, max_length: int, pad_to_max: bool) -> Any:
        """Tokenize ``texts`` into the inputs ``__call__`` takes (padded to ``max_length`` when asked).

        In a sentence-pair task each entry is a ``(text, pair)`` tuple: pass the list to a Hugging
        Face tokenizer as it is, which encodes a list of 2-tuples as pairs."""
        ...

    def __call__(self, inputs: Any) -> Any:
        """Logits for encoded inputs, as a NumPy array."""
        ...

    def close(self) -> None:
        """Release the model (memory, sessions) before the next one is loaded."""
        ...
