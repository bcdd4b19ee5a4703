"""Metric values against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from slimkit_transformers import scores

Y = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0], [1, 1, 0]])
P = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0], [1, 1, 0]])


def test_multilabel_scores_by_hand() -> None:
    got = scores.classification_scores(Y, P, multi_label=True)
    # micro: tp=4, fp=1, fn=1 -> P=R=0.8 -> F1=0.8
    assert got["micro_f1"] == pytest.approx(0.8)
    # per label F1: label0 1.0, label1 1.0, label2 0.0 (tp0 fp1 fn1) -> macro 2/3
    assert got["macro_f1"] == pytest.approx(2 / 3)
    # jaccard per row: 1/2, 1/2, 1 (both empty), 1 -> 0.75
    assert got["jaccard"] == pytest.approx(0.75)
    assert got["exact_match"] == pytest.approx(0.5)


def test_single_label_scores_by_hand() -> None:
    got = scores.classification_scores(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 2]), multi_label=False)
    assert got["accuracy"] == pytest.approx(0.75)
    # F1: class0 1.0, class1 0.0, class2 0.8 -> macro 0.6
    assert got["macro_f1"] == pytest.approx(0.6)


def test_predict_threshold_and_argmax() -> None:
    logits = np.array([[0.1, -0.1], [2.0, -3.0]])
    assert scores.predict(logits, True, 0.5).tolist() == [[1, 0], [1, 0]]
    assert scores.predict(logits, True, 0.6).tolist() == [[0, 0], [1, 0]]
    assert scores.predict(logits, False).tolist() == [0, 0]


def test_tune_threshold_picks_best_on_grid() -> None:
    # Positives have probability 0.3, negatives 0.1: the best threshold lies in (0.1, 0.3].
    hi, lo = np.log(0.3 / 0.7), np.log(0.1 / 0.9)
    logits = np.array([[hi, lo], [lo, hi], [hi, lo], [lo, hi]])
    labels = np.array([[1, 0], [0, 1], [1, 0], [0, 1]])
    threshold = scores.tune_threshold(logits, labels)
    assert 0.1 < threshold <= 0.3


def test_agreement_and_chance() -> None:
    ref = np.array([0, 0, 0, 1])
    assert scores.agreement(np.array([0, 0, 1, 1]), ref) == 0.75
    assert scores.chance_agreement(ref) == 0.75
    assert scores.agreement(P, Y) == 0.5
