"""The transfer set of ``augment_copies``: training texts with words masked at random.

The teacher labels these copies (soft targets from its logits, hard labels from its thresholded
predictions), so the student sees the teacher's function on inputs the labelled rows do not
cover: masking is the cheapest of the augmentations of Tang et al. (2019), "Distilling
Task-Specific Knowledge from BERT into Simple Neural Networks".
"""

from __future__ import annotations

from typing import Any

import numpy as np


def mask_words(texts: list[str], copies: int, prob: float, seed: int, mask_token: str | None) -> list[str]:
    """``copies`` variants of every text (copy by copy, texts in order), each whitespace-separated
    word replaced by ``mask_token`` with probability ``prob``, or dropped when there is no mask
    token (a text keeps at least one word). Seeded: the same arguments give the same texts."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(copies):
        for text in texts:
            words = text.split()
            hit = rng.random(len(words)) < prob
            if mask_token is not None:
                out.append(" ".join(mask_token if h else w for w, h in zip(words, hit, strict=True)))
            else:
                kept = [w for w, h in zip(words, hit, strict=True) if not h]
                out.append(" ".join(kept or words[:1]))
    return out


def shared_mask_token(student_tokenizer: Any, teacher_tokenizer: Any) -> str | None:
    """The mask token both models read as one token, else None (words are dropped instead)."""
    token = getattr(student_tokenizer, "mask_token", None)
    return token if token and token == getattr(teacher_tokenizer, "mask_token", None) else None
