"""Each loss against a value worked out by hand (math module, no torch) on a fixed batch."""

from __future__ import annotations

import math

import pytest
import torch

from slimkit_distill.losses import distillation_loss, hidden_state_loss, mix

STUDENT = [[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]]
TEACHER = [[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]


def _softmax(row: list[float], t: float) -> list[float]:
    exps = [math.exp(x / t) for x in row]
    return [e / sum(exps) for e in exps]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_single_label_loss_is_softened_kl_times_t_squared() -> None:
    t = 2.0
    by_hand = 0.0
    for s_row, t_row in zip(STUDENT, TEACHER, strict=True):
        p, q = _softmax(t_row, t), _softmax(s_row, t)
        by_hand += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))
    by_hand = by_hand / len(STUDENT) * t * t
    loss = distillation_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), t, multi_label=False)
    assert loss.item() == pytest.approx(by_hand, abs=1e-6)
    assert loss.item() == pytest.approx(0.0898907, abs=1e-6)
    same = distillation_loss(torch.tensor(TEACHER), torch.tensor(TEACHER), t, multi_label=False)
    assert same.item() == pytest.approx(0.0, abs=1e-7)


def test_multi_label_loss_is_per_label_bce_against_teacher_sigmoids() -> None:
    t = 2.0
    terms = []
    for s_row, t_row in zip(STUDENT, TEACHER, strict=True):
        for s, target_logit in zip(s_row, t_row, strict=True):
            y, q = _sigmoid(target_logit / t), _sigmoid(s / t)
            terms.append(-(y * math.log(q) + (1 - y) * math.log(1 - q)))
    by_hand = sum(terms) / len(terms) * t * t
    loss = distillation_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), t, multi_label=True)
    assert loss.item() == pytest.approx(by_hand, abs=1e-6)
    assert loss.item() == pytest.approx(2.7267888, abs=1e-6)


def test_temperature_one_is_plain_kl() -> None:
    loss = distillation_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), 1.0, multi_label=False)
    p, q = _softmax(TEACHER[0], 1.0), _softmax(STUDENT[0], 1.0)
    first = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))
    p, q = _softmax(TEACHER[1], 1.0), _softmax(STUDENT[1], 1.0)
    second = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))
    assert loss.item() == pytest.approx((first + second) / 2, abs=1e-6)


def test_hidden_state_loss_is_mean_squared_error_averaged_over_layers() -> None:
    # two layers, three real tokens, width 2; the teacher is as wide (no projection)
    student = [torch.tensor([[1.0, 2.0], [0.0, 0.0], [1.0, -1.0]]), torch.tensor([[0.0, 1.0], [2.0, 2.0], [0.0, 0.0]])]
    teacher = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [1.0, 1.0]], [[0.0, 1.0], [2.0, 2.0], [3.0, 0.0]]])
    layer0 = (0 + 4 + 1 + 1 + 0 + 4) / 6
    layer1 = (0 + 0 + 0 + 0 + 9 + 0) / 6
    assert hidden_state_loss(student, teacher).item() == pytest.approx((layer0 + layer1) / 2, abs=1e-7)


def test_hidden_state_loss_projects_a_narrower_student() -> None:
    projection = torch.nn.Linear(1, 2, bias=True)
    with torch.no_grad():
        projection.weight.copy_(torch.tensor([[2.0], [-1.0]]))
        projection.bias.copy_(torch.tensor([0.0, 1.0]))
    student = [torch.tensor([[1.0], [3.0]])]  # projected: [2, 0] and [6, -2]
    teacher = torch.tensor([[[2.0, 1.0], [4.0, -2.0]]])
    by_hand = (0 + 1 + 4 + 0) / 4
    loss = hidden_state_loss(student, teacher, torch.nn.ModuleList([projection]))
    assert loss.item() == pytest.approx(by_hand, abs=1e-7)


def test_mix_weights_the_two_losses_by_alpha() -> None:
    hard, soft = torch.tensor(2.0), torch.tensor(6.0)
    assert mix(hard, soft, 0.0) is hard  # the hard-label end: the model's own loss, untouched
    assert mix(hard, soft, 1.0) is soft
    assert mix(hard, soft, 0.25).item() == pytest.approx(0.75 * 2.0 + 0.25 * 6.0)
    assert mix(hard, None, 0.5) is hard


def test_masked_copies_are_seeded_and_mask_at_the_asked_rate() -> None:
    from slimkit_distill.augment import mask_words

    texts = [" ".join(f"w{i}" for i in range(50))] * 40
    copies = mask_words(texts, 2, 0.2, seed=3, mask_token="[MASK]")
    assert len(copies) == 80 and copies == mask_words(texts, 2, 0.2, seed=3, mask_token="[MASK]")
    words = [w for c in copies for w in c.split()]
    assert len(words) == 80 * 50  # masking keeps the length
    assert 0.17 < words.count("[MASK]") / len(words) < 0.23
    dropped = mask_words(["a b c", "d"], 1, 0.99, seed=0, mask_token=None)
    assert all(len(c.split()) >= 1 for c in dropped) and dropped[1] == "d"  # a text keeps one word
