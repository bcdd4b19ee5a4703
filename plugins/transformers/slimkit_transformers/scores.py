"""Accuracy metrics for classification, computed with scikit-learn from logits.

Multi-label: sigmoid probabilities above a threshold (0.5, or tuned on the validation slice, never
on the eval split); micro-F1, macro-F1, Jaccard index (samples average: SemEval-2018 E-c's
official score) and subset exact-match. Single-label: accuracy and macro-F1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(2, 19))  # 0.10 .. 0.90


def sigmoid(logits: np.ndarray) -> np.ndarray:
    import numpy as np

    return 1.0 / (1.0 + np.exp(-logits))


def predict(logits: np.ndarray, multi_label: bool, threshold: float = 0.5) -> np.ndarray:
    """Predicted labels: (n, L) 0/1 ints for multi-label, (n,) ids for single-label."""
    if multi_label:
        return (sigmoid(logits) >= threshold).astype("int64")
    return logits.argmax(axis=-1)


def classification_scores(labels: np.ndarray, predictions: np.ndarray, multi_label: bool) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, jaccard_score

    if multi_label:
        y = labels.astype("int64")
        return {
            "micro_f1": float(f1_score(y, predictions, average="micro", zero_division=0)),
            "macro_f1": float(f1_score(y, predictions, average="macro", zero_division=0)),
            # Rows with neither gold nor predicted labels count as 1 (both "empty" sets agree),
            # as the SemEval-2018 scorer does.
            "jaccard": float(jaccard_score(y, predictions, average="samples", zero_division=1)),
            "exact_match": float(accuracy_score(y, predictions)),
        }
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, average="macro", zero_division=0)),
    }


def tune_threshold(logits: np.ndarray, labels: np.ndarray) -> float:
    """The threshold from a fixed grid that maximises micro-F1 (use on the validation slice only)."""
    best, best_score = 0.5, -1.0
    for threshold in THRESHOLD_GRID:
        score = classification_scores(labels, predict(logits, True, threshold), True)["micro_f1"]
        if score > best_score + 1e-12:
            best, best_score = threshold, score
    return best


def agreement(predictions: np.ndarray, reference: np.ndarray) -> float:
    """Share of rows whose prediction equals the reference model's (all labels, for multi-label)."""
    import numpy as np

    if predictions.ndim == 2:
        return float(np.mean(np.all(predictions == reference, axis=1)))
    return float(np.mean(predictions == reference))


def chance_agreement(reference: np.ndarray) -> float:
    """Agreement expected from a model that ignores its input and always predicts the most common
    answer of the reference; agreement near this means the head is effectively broken."""
    import numpy as np

    if reference.ndim == 2:
        _, counts = np.unique(reference, axis=0, return_counts=True)
    else:
        _, counts = np.unique(reference, return_counts=True)
    return float(counts.max() / counts.sum())
