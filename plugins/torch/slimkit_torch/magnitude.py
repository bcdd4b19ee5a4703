"""``torch.magnitude-prune``: unstructured L1 pruning with ``torch.nn.utils.prune``, made permanent.

The weights stay dense matrices with zeros in them: dense kernels do the same work and the saved
file has the same size. The step says so in its metadata, and measurement shows it.
"""

from __future__ import annotations

import time
from typing import Any

from slimkit.artifacts import Artifact
from slimkit.context import StepContext
from slimkit.errors import SlimkitError
from slimkit_torch.common import check_head, count_params, head_state, save_transformers
from slimkit_torch.config import MagnitudePruneConfig
from slimkit_transformers.steps import head_module_names, is_head

NO_SPEEDUP = (
    "unstructured sparsity in dense weight matrices: dense kernels run no faster and the saved file "
    "is no smaller; use torch.structured-prune for speed"
)


def targets(model: Any, config: MagnitudePruneConfig) -> list[tuple[str, Any]]:
    """(name, module) of every weight matrix to prune."""
    import torch

    heads = [] if config.prune_head else head_module_names(model)
    kinds: tuple[type, ...] = (torch.nn.Linear, torch.nn.Embedding) if config.include_embeddings else (torch.nn.Linear,)
    return [(n, m) for n, m in model.named_modules() if isinstance(m, kinds) and not is_head(n, heads)]


def magnitude_prune(step: StepContext[MagnitudePruneConfig]) -> Artifact:
    import torch
    from torch.nn.utils import prune

    from slimkit_transformers.models import load_classifier

    config = step.config
    started = time.perf_counter()
    model, tokenizer = load_classifier(step.input.path, device=step.device)
    head = {} if config.prune_head else head_state(model)
    chosen = targets(model, config)
    if not chosen:
        raise SlimkitError(f"step {step.name!r}: no weight matrix to prune in {type(model).__name__}")
    with torch.no_grad():
        if config.scope == "global":
            prune.global_unstructured(
                [(m, "weight") for _, m in chosen], pruning_method=prune.L1Unstructured, amount=config.sparsity
            )
        else:
            for _, m in chosen:
                prune.l1_unstructured(m, "weight", amount=config.sparsity)
        for _, m in chosen:
            prune.remove(m, "weight")  # weight = weight_orig * mask, the mask and hooks dropped
    check_head(model, head, step)
    zeros = {n: int((m.weight == 0).sum().item()) for n, m in chosen}
    sizes = {n: m.weight.numel() for n, m in chosen}
    per_layer = {n: zeros[n] / sizes[n] for n in zeros}
    total, nonzero = count_params(model)
    save_transformers(model, tokenizer, step)
    return step.artifact(
        sparsity_requested=config.sparsity,
        sparsity_reached=sum(zeros.values()) / sum(sizes.values()),
        sparsity_overall=1 - nonzero / total,
        pruned_matrices=len(chosen),
        pruned_weights=sum(sizes.values()),
        layer_sparsity_min=min(per_layer.values()),
        layer_sparsity_max=max(per_layer.values()),
        scope=config.scope,
        params=total,
        nonzero_params=nonzero,
        head="kept" if not config.prune_head else "pruned",
        speedup_expected=False,
        note=NO_SPEEDUP,
        seconds=round(time.perf_counter() - started, 2),
    )
