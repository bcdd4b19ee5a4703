"""``torch.structured-prune``: remove FFN neurons, attention heads and whole layers.

torch-pruning's dependency graph (``MetaPruner``) handles transformers' BERT, but on Llama-style
attention (rotary embeddings) building a pruning group for ``q_proj``/``k_proj`` never ends
(torch-pruning 1.6.1, transformers 5; upstream VainF/Torch-Pruning#527). So the coupling of a
layer's matrices is stated here, per family, and torch-pruning's Linear pruning functions do the
slicing:

- FFN neuron j: row j of the up (and gate) projection, column j of the down projection;
- attention head h: rows of its query (and, without grouped-query attention, key and value)
  slice, columns of its slice in the output projection; with grouped-query attention the key/value
  heads stay and every group loses the same number of query heads;
- a layer: dropped from the layer list, later layers renumbered.

Pruning is uniform across layers, since a transformers config has one ``intermediate_size`` and
one ``num_attention_heads``; the saved folder reloads with ``from_pretrained`` (checked before
the step returns). BERT-style configs have no ``head_dim`` (the head size is hidden_size /
num_attention_heads, and transformers 5 dropped ``config.pruned_heads``), so heads are removed only
where the config carries ``head_dim``; FFN neurons and layers work for both families.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from slimkit.artifacts import Artifact
from slimkit.context import StepContext
from slimkit.errors import SlimkitError
from slimkit_torch.common import calibration_batches, check_head, count_params, head_state, save_transformers
from slimkit_torch.config import StructuredPruneConfig


@dataclass
class Parts:
    """The Linear layers of one transformer layer that structured pruning touches."""

    attention: Any
    q: Any
    k: Any
    v: Any
    o: Any
    ffn_in: list[Any]
    ffn_out: Any
    mlp: Any


def layer_list(model: Any) -> tuple[Any, str, str]:
    """(module holding the layer list, its attribute name, family: 'bert' or 'llama')."""
    base = model.base_model
    encoder = getattr(base, "encoder", None)
    if encoder is not None and hasattr(encoder, "layer"):
        return encoder, "layer", "bert"
    if hasattr(base, "layers"):
        return base, "layers", "llama"
    raise SlimkitError(f"torch.structured-prune: cannot find the layers of {type(model).__name__}")


def parts(layer: Any, family: str) -> Parts:
    try:
        if family == "bert":
            att = layer.attention
            return Parts(att.self, att.self.query, att.self.key, att.self.value, att.output.dense,
                         [layer.intermediate.dense], layer.output.dense, layer.intermediate)  # fmt: skip
        att, mlp = layer.self_attn, layer.mlp
        ffn_in = [mlp.gate_proj, mlp.up_proj] if hasattr(mlp, "gate_proj") else [mlp.up_proj]
        return Parts(att, att.q_proj, att.k_proj, att.v_proj, att.o_proj, ffn_in, mlp.down_proj, mlp)
    except AttributeError as exc:
        raise SlimkitError(
            f"torch.structured-prune: {type(layer).__name__} is neither a BERT-style nor a Llama-style layer "
            f"({exc}); supported: BERT, RoBERTa, MiniLM, Llama, Mistral, Qwen2/3"
        ) from None


def _score(weight: Any, criterion: str) -> Any:
    """Per-weight importance: w^2, or |w * dL/dw| with gradients summed over calibration batches."""
    if criterion == "gradient":
        if weight.grad is None:
            raise SlimkitError("torch.structured-prune: no gradient reached a weight; is it frozen?")
        return (weight.detach() * weight.grad).abs()
    return weight.detach() ** 2


def ffn_scores(p: Parts, criterion: str) -> Any:
    rows = sum(_score(lin.weight, criterion).sum(dim=1) for lin in p.ffn_in)
    return rows + _score(p.ffn_out.weight, criterion).sum(dim=0)


def head_scores(p: Parts, heads: int, head_dim: int, criterion: str, with_kv: bool) -> Any:
    rows = [p.q, p.k, p.v] if with_kv else [p.q]
    score = sum(_score(lin.weight, criterion).view(heads, head_dim, -1).sum(dim=(1, 2)) for lin in rows)
    return score + _score(p.o.weight, criterion).view(p.o.out_features, heads, head_dim).sum(dim=(0, 2))


def lowest(scores: Any, count: int) -> list[int]:
    import torch

    return sorted(torch.argsort(scores, stable=True)[:count].tolist())


def block_influence(model: Any, layers: Any, batches: list[dict[str, Any]]) -> list[float]:
    """1 - cosine(layer input, layer output), averaged over real tokens (ShortGPT's block influence)."""
    import torch

    sums = [0.0] * len(layers)
    tokens = 0
    captured: dict[int, tuple[Any, Any]] = {}

    def hook(i: int) -> Any:
        def record(module: Any, args: Any, kwargs: Any, output: Any) -> None:
            hidden_in = args[0] if args else kwargs["hidden_states"]
            hidden_out = output[0] if isinstance(output, tuple) else output
            captured[i] = (hidden_in, hidden_out)

        return record

    handles = [layer.register_forward_hook(hook(i), with_kwargs=True) for i, layer in enumerate(layers)]
    try:
        with torch.no_grad():
            for batch in batches:
                model(**{k: v for k, v in batch.items() if k != "labels"})
                mask = batch["attention_mask"].bool()
                tokens += int(mask.sum())
                for i, (hin, hout) in captured.items():
                    cos = torch.nn.functional.cosine_similarity(hin.float(), hout.float(), dim=-1)
                    sums[i] += float((1 - cos)[mask].sum())
    finally:
        for h in handles:
            h.remove()
    return [s / max(tokens, 1) for s in sums]


def accumulate_gradients(model: Any, batches: list[dict[str, Any]]) -> float:
    """Sum the classification loss's gradients over the batches (dropout off); returns the mean loss."""
    import torch

    model.zero_grad(set_to_none=True)
    total = 0.0
    with torch.enable_grad():
        for batch in batches:
            loss = model(**batch).loss
            loss.backward()
            total += float(loss.detach())
    return total / len(batches)


def structured_prune(step: StepContext) -> Artifact:
    import torch
    import torch_pruning as tp

    from slimkit_transformers.models import load_classifier

    cfg: StructuredPruneConfig = step.config  # type: ignore[assignment]
    started = time.perf_counter()
    model, tokenizer = load_classifier(step.input.path, device=step.device)
    config = model.config
    head = head_state(model)
    params_before, _ = count_params(model)
    owner, attr, family = layer_list(model)
    layers = getattr(owner, attr)
    all_parts = [parts(layer, family) for layer in layers]
    n_layers, n_heads = len(layers), config.num_attention_heads
    n_ffn = all_parts[0].ffn_out.in_features

    if cfg.heads and family == "bert":
        raise SlimkitError(
            f"step {step.name!r}: heads = {cfg.heads}: {config.model_type} configs derive the head size from "
            "hidden_size / num_attention_heads and transformers 5 no longer supports config.pruned_heads, so a "
            "model with fewer heads would not reload with from_pretrained",
            fix="prune FFN neurons (ffn_ratio) and layers instead; heads can be removed from models whose "
            "config has head_dim (Llama, Mistral, Qwen2/3)",
        )
    n_kv = getattr(config, "num_key_value_heads", None) or n_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_heads
    grouped = n_kv != n_heads  # grouped-query attention: key/value heads stay, query heads leave each group
    if cfg.heads >= n_heads or (grouped and cfg.heads % n_kv):
        raise SlimkitError(
            f"step {step.name!r}: heads = {cfg.heads}: the model has {n_heads} query heads in {n_kv} key/value "
            f"groups; remove fewer than {n_heads}"
            + (f", a multiple of {n_kv}, so that every group keeps the same number" if grouped else "")
        )
    if cfg.layer_indices is not None:
        bad = [i for i in cfg.layer_indices if not 0 <= i < n_layers]
        if bad or len(set(cfg.layer_indices)) >= n_layers:
            raise SlimkitError(f"step {step.name!r}: layer_indices {cfg.layer_indices}: the model has {n_layers} "
                               "layers (0-based) and must keep at least one")  # fmt: skip
    if cfg.layers >= n_layers:
        raise SlimkitError(f"step {step.name!r}: layers = {cfg.layers}: the model has only {n_layers}")

    drop_ffn = min(round(cfg.ffn_ratio * n_ffn), n_ffn - 1)
    n_dropped = len(set(cfg.layer_indices)) if cfg.layer_indices is not None else cfg.layers
    changes: dict[str, Any] = {
        "intermediate_size": n_ffn - drop_ffn,
        "num_attention_heads": n_heads - cfg.heads,
        "num_hidden_layers": n_layers - n_dropped,
    }
    if family == "llama":  # explicit, since hidden_size / num_attention_heads no longer gives it
        changes["head_dim"] = head_dim
    if cfg.heads and not grouped:
        changes["num_key_value_heads"] = n_heads - cfg.heads
    check_config(config, changes, step)

    needs_data = cfg.importance == "gradient" or cfg.layers > 0
    batches: list[dict[str, Any]] = []
    if needs_data:
        batches = calibration_batches(
            step, tokenizer, batches=cfg.calibration_batches, batch_size=cfg.batch_size, max_length=cfg.max_length
        )
    facts: dict[str, Any] = {"family": family, "importance": cfg.importance}
    if cfg.importance == "gradient" and (cfg.ffn_ratio or cfg.heads):
        facts["calibration_loss"] = round(accumulate_gradients(model, batches), 6)
    facts["calibration_texts"] = sum(len(b["input_ids"]) for b in batches)

    # Choose everything on the unpruned model, then slice.
    plans = []
    with torch.no_grad():
        for p in all_parts:
            ffn_idx = lowest(ffn_scores(p, cfg.importance), drop_ffn) if drop_ffn else []
            head_idx: list[int] = []
            if cfg.heads:
                scores = head_scores(p, n_heads, head_dim, cfg.importance, with_kv=not grouped)
                size = n_heads // n_kv if grouped else n_heads  # query heads per key/value group, contiguous
                per_group = cfg.heads // n_kv if grouped else cfg.heads
                for g in range(n_heads // size):
                    head_idx += [g * size + h for h in lowest(scores[g * size : (g + 1) * size], per_group)]
            plans.append((ffn_idx, head_idx))
    model.zero_grad(set_to_none=True)

    if cfg.layer_indices is not None:
        dropped = sorted(set(cfg.layer_indices))
    elif cfg.layers:
        influence = block_influence(model, layers, batches)
        facts["block_influence"] = [round(x, 6) for x in influence]
        dropped = sorted(lowest(torch.tensor(influence), cfg.layers))
    else:
        dropped = []

    with torch.no_grad():
        for p, (ffn_idx, head_idx) in zip(all_parts, plans, strict=True):
            if ffn_idx:
                for lin in p.ffn_in:
                    tp.prune_linear_out_channels(lin, ffn_idx)
                tp.prune_linear_in_channels(p.ffn_out, ffn_idx)
                if hasattr(p.mlp, "intermediate_size"):
                    p.mlp.intermediate_size = n_ffn - len(ffn_idx)
            if head_idx:
                channels = [h * head_dim + d for h in head_idx for d in range(head_dim)]
                for lin in [p.q] if grouped else [p.q, p.k, p.v]:
                    tp.prune_linear_out_channels(lin, channels)
                tp.prune_linear_in_channels(p.o, channels)
                if grouped:
                    p.attention.num_key_value_groups = (n_heads - len(head_idx)) // n_kv
    if dropped:
        kept = [layer for i, layer in enumerate(layers) if i not in dropped]
        setattr(owner, attr, torch.nn.ModuleList(kept))
        for new_index, layer in enumerate(kept):
            for module in layer.modules():
                if hasattr(module, "layer_idx"):
                    module.layer_idx = new_index
        if isinstance(getattr(config, "layer_types", None), list):
            config.layer_types = [t for i, t in enumerate(config.layer_types) if i not in dropped]
    for key, value in changes.items():
        setattr(config, key, value)
    check_head(model, head, step)
    params_after, _ = count_params(model)
    save_transformers(model, tokenizer, step)
    facts["reload_max_abs_diff"] = _reload_check(model, step, batches, tokenizer)
    return step.artifact(
        **facts,
        ffn_neurons={"before": n_ffn, "after": n_ffn - drop_ffn},
        attention_heads={"before": n_heads, "after": config.num_attention_heads},
        layers={"before": n_layers, "after": config.num_hidden_layers, "removed": dropped},
        params_before=params_before,
        params_after=params_after,
        head="kept",
        seconds=round(time.perf_counter() - started, 2),
    )


def check_config(config: Any, changes: dict[str, Any], step: StepContext) -> None:
    """Refuse, before any slicing, a shape that the model's config class would not accept on reload."""
    try:
        type(config).from_dict({**config.to_dict(), **changes})
    except Exception as exc:  # transformers' strict config validators raise various types
        cause = exc.__cause__ or exc
        raise SlimkitError(
            f"step {step.name!r}: {type(config).__name__} would not accept "
            f"{', '.join(f'{k}={v}' for k, v in changes.items())}: {str(cause).strip().splitlines()[-1]}",
            fix="choose another number of heads (transformers checks hidden_size % num_attention_heads == 0)",
        ) from None


def _reload_check(model: Any, step: StepContext, batches: list[dict[str, Any]], tokenizer: Any) -> float:
    """Reload the saved folder with from_pretrained and compare its logits with the pruned model's."""
    import torch

    from slimkit_transformers.models import load_classifier

    reloaded, _ = load_classifier(step.output_dir, device=step.device)
    inputs = (
        {k: v for k, v in batches[0].items() if k != "labels"}
        if batches
        else dict(tokenizer(["a short text", "another one, a bit longer"], padding=True, return_tensors="pt"))
    )
    inputs = {k: v.to(step.device) for k, v in inputs.items()}
    with torch.no_grad():
        diff = float((model.eval()(**inputs).logits - reloaded(**inputs).logits).abs().max())
    if diff > 1e-4:
        raise SlimkitError(f"step {step.name!r}: the saved pruned model reloads with other outputs (max |diff| {diff})")
    return diff
