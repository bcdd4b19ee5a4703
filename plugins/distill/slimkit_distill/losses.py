"""The distillation losses, as plain functions of tensors (tested against hand-computed values).

- single-label: KL(teacher || student) between temperature-softened softmax distributions,
  averaged over the batch and scaled by T^2 (Hinton et al., 2015);
- multi-label: per-label binary cross-entropy of the student's softened sigmoid against the
  teacher's softened sigmoid probabilities, averaged over batch and labels, scaled by T^2 (for
  large T its gradient shrinks as 1/T^2, like the softmax case);
- hidden states: MSE between student layer outputs (projected when widths differ) and the teacher
  layers they map to, over real (non-padding) tokens, averaged over the matched layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F


def soft_label_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(softmax(teacher / T) || softmax(student / T)) * T^2, mean over the batch."""
    t = temperature
    kl = F.kl_div(
        F.log_softmax(student_logits / t, dim=-1),
        F.log_softmax(teacher_logits / t, dim=-1),
        reduction="batchmean",
        log_target=True,
    )
    return kl * (t * t)


def soft_multilabel_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """BCE(sigmoid(student / T), sigmoid(teacher / T)) * T^2, mean over batch and labels."""
    t = temperature
    targets = torch.sigmoid(teacher_logits / t)
    return F.binary_cross_entropy_with_logits(student_logits / t, targets, reduction="mean") * (t * t)


def distillation_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float, multi_label: bool
) -> torch.Tensor:
    teacher_logits = teacher_logits.to(student_logits.dtype)
    if multi_label:
        return soft_multilabel_loss(student_logits, teacher_logits, temperature)
    return soft_label_loss(student_logits, teacher_logits, temperature)


def hidden_state_loss(
    student_states: Sequence[torch.Tensor], teacher_states: torch.Tensor, projections: Any = None
) -> torch.Tensor:
    """Mean over matched layers of MSE(project(student_l), teacher_l).

    ``student_states``: one (tokens, student_width) tensor per matched layer, real tokens only;
    ``teacher_states``: (layers, tokens, teacher_width), the same tokens in the same order;
    ``projections``: None when widths agree, else one Linear(student_width, teacher_width) per layer.
    """
    losses = []
    for i, student in enumerate(student_states):
        mapped = projections[i](student) if projections is not None else student
        losses.append(F.mse_loss(mapped, teacher_states[i].to(mapped.dtype), reduction="mean"))
    return torch.stack(losses).mean()


def mix(hard: torch.Tensor, soft: torch.Tensor | None, alpha: float) -> torch.Tensor:
    """(1 - alpha) * hard + alpha * soft; the hard loss alone when there is no soft term."""
    if soft is None or alpha == 0.0:
        return hard
    if alpha == 1.0:
        return soft
    return (1.0 - alpha) * hard + alpha * soft
