"""``torch.low-rank-embeddings``: factorise an encoder's word-embedding table with a truncated SVD.

After vocabulary pruning the word embeddings can still be the largest tensor of a small encoder
(a 3-layer MiniLM student with 8,206 tokens: 3.2 M of its 6.2 M parameters). ``W`` (vocabulary x
width) becomes ``U_r S_r`` (vocabulary x rank, looked up) times ``V_r^T`` (rank x width, a
projection): the best rank-r approximation of ``W`` in the Frobenius norm (Eckart-Young). The
projection keeps orthonormal rows, so the magnitudes live in the table, which quantizers handle
per row. Accuracy drops with the energy left out; a distillation step afterwards (distill.kd)
recovers it, and trains the two factors.

The saved folder says ``embedding_rank`` and is one of slimkit_transformers.compact's classes, like
a head-pruned encoder: slimkit reloads it, and ``trust_remote_code=True`` loads it without slimkit.
"""

from __future__ import annotations

import time
from typing import Any

from slimkit.artifacts import Artifact
from slimkit.context import StepContext
from slimkit.errors import SlimkitError
from slimkit_torch.common import check_head, count_params, head_state, reload_check, sample_inputs, save_transformers
from slimkit_torch.config import LowRankEmbeddingsConfig


def low_rank_embeddings(step: StepContext[LowRankEmbeddingsConfig]) -> Artifact:
    from slimkit_transformers import compact
    from slimkit_transformers.models import load_classifier

    started = time.perf_counter()
    model, tokenizer = load_classifier(step.input.path, device=step.device)
    embedding, rank = _check(step, model)
    head = head_state(model)
    params_before, _ = count_params(model)
    factorised, facts = factorise(embedding, rank)
    model.set_input_embeddings(factorised)
    setattr(model.config, compact.RANK, rank)
    model.__class__ = compact.CLASSES[model.config.model_type]  # save_pretrained writes its auto_map and code
    check_head(model, head, step)
    params_after, _ = count_params(model)
    save_transformers(model, tokenizer, step)
    return step.artifact(
        **facts,
        params_before=params_before,
        params_after=params_after,
        reload_max_abs_diff=reload_check(model, step, sample_inputs(tokenizer)),
        head="kept",
        seconds=round(time.perf_counter() - started, 2),
    )


def factorise(embedding: Any, rank: int) -> tuple[Any, dict[str, Any]]:
    """The embedding's best rank-``rank`` approximation as a LowRankEmbedding, and what it kept."""
    import torch

    from slimkit_transformers.compact import LowRankEmbedding

    weight = embedding.weight.detach().float()
    vocab, width = weight.shape
    with torch.no_grad():
        u, s, vh = torch.linalg.svd(weight, full_matrices=False)
        factorised = LowRankEmbedding(vocab, rank, width, embedding.padding_idx)
        factorised.weight.copy_(u[:, :rank] * s[:rank])
        factorised.project.weight.copy_(vh[:rank].T)
        error = torch.linalg.norm(weight - factorised.project(factorised.weight)) / torch.linalg.norm(weight)
    factorised.to(device=embedding.weight.device, dtype=embedding.weight.dtype)
    return factorised, {
        "embedding_rank": {"before": width, "after": rank},
        "embedding_params": {"before": vocab * width, "after": vocab * rank + rank * width},
        "energy_kept": round(float((s[:rank] ** 2).sum() / (s**2).sum()), 6),
        "relative_error": round(float(error), 6),
    }


def _check(step: StepContext[LowRankEmbeddingsConfig], model: Any) -> tuple[Any, int]:
    """The model's word embeddings and their new rank, if this step can factorise them; else one line
    saying why."""
    from slimkit_transformers import compact

    model_type = model.config.model_type
    if model_type not in compact.CLASSES:
        raise SlimkitError(
            f"step {step.name!r}: torch.low-rank-embeddings reloads low-rank tables for {', '.join(compact.CLASSES)}, "
            f"not {model_type}",
            fix="remove the step, or prune the vocabulary instead (textpruner.vocabulary, transformers.vocabulary)",
        )
    embedding = model.get_input_embeddings()
    if isinstance(embedding, compact.LowRankEmbedding):
        raise SlimkitError(
            f"step {step.name!r}: the word embeddings are already of rank {embedding.embedding_dim}",
            fix="keep one torch.low-rank-embeddings step",
        )
    width = int(embedding.weight.shape[1])
    rank = step.config.rank_for(width)
    if rank >= width:
        raise SlimkitError(
            f"step {step.name!r}: {_asked(step.config, rank)}: the word embeddings are {width} wide, so a rank of "
            f"{width} or more saves nothing",
            fix=f"choose a rank below {width}, or a rank_ratio below 1",
        )
    return embedding, rank


def _asked(config: LowRankEmbeddingsConfig, rank: int) -> str:
    """The rank as the user gave it: ``rank = 32``, or ``rank_ratio = 0.99 (rank 32)``."""
    return f"rank = {rank}" if config.rank else f"rank_ratio = {config.rank_ratio} (rank {rank})"
