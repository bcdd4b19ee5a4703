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
num_attention_heads, and transformers 5 dropped ``config.pruned_heads``): a BERT-style model with
fewer heads says ``attention_head_size`` in its config and is saved as one of
slimkit_transformers.compact's classes, which slimkit loads and whose code the folder carries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from slimkit.artifacts import Artifact
from slimkit.context import StepContext
from slimkit.errors import SlimkitError
from slimkit_torch.common import check_head, count_params, head_state, reload_check, sample_inputs, save_transformers
from slimkit_torch.config import StructuredPruneConfig
from slimkit_transformers import compact
from slimkit_transformers.steps import calibration_batches


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
    encoder = getattr(base, "encoder", None) or getattr(base, "transformer", None)  # DistilBERT: transformer
    if encoder is not None and hasattr(encoder, "layer"):
        return encoder, "layer", "bert"
    if hasattr(base, "layers"):
        return base, "layers", "llama"
    raise SlimkitError(f"torch.structured-prune: cannot find the layers of {type(model).__name__}")


def parts(layer: Any, family: str) -> Parts:
    try:
        if family == "bert":
            return _encoder_parts(layer)
        att, mlp = layer.self_attn, layer.mlp
        ffn_in = [mlp.gate_proj, mlp.up_proj] if hasattr(mlp, "gate_proj") else [mlp.up_proj]
        return Parts(att, att.q_proj, att.k_proj, att.v_proj, att.o_proj, ffn_in, mlp.down_proj, mlp)
    except AttributeError as exc:
        raise SlimkitError(
            f"torch.structured-prune: {type(layer).__name__} is neither a BERT-style nor a Llama-style layer "
            f"({exc}); supported: BERT, RoBERTa, XLM-R, ELECTRA, DeBERTa-v2/v3, MPNet, DistilBERT, MiniLM, "
            "Llama, Mistral, Qwen2/3, Gemma 3"
        ) from None


# Names of the same Linear layers across encoder families (BERT, RoBERTa, ELECTRA; DeBERTa-v2; MPNet; DistilBERT).
_ENCODER_NAMES = {"q": ("query", "query_proj", "q", "q_lin"), "k": ("key", "key_proj", "k", "k_lin"),
                  "v": ("value", "value_proj", "v", "v_lin"), "o": ("o", "out_lin")}  # fmt: skip


def _named(module: Any, names: tuple[str, ...]) -> Any:
    found = next((getattr(module, n) for n in names if hasattr(module, n)), None)
    if found is None:
        raise AttributeError(f"{type(module).__name__} has none of {', '.join(names)}")
    return found


def _encoder_parts(layer: Any) -> Parts:
    att = layer.attention
    inner = att if hasattr(att, "q_lin") else _named(att, ("self", "attn"))  # DistilBERT's attention is flat
    q, k, v = (_named(inner, _ENCODER_NAMES[x]) for x in "qkv")
    o = att.output.dense if hasattr(att, "output") else _named(inner, _ENCODER_NAMES["o"])
    if hasattr(layer, "ffn"):  # DistilBERT
        return Parts(inner, q, k, v, o, [layer.ffn.lin1], layer.ffn.lin2, layer.ffn)
    return Parts(inner, q, k, v, o, [layer.intermediate.dense], layer.output.dense, layer.intermediate)


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


@dataclass
class Shape:
    """What one step removes from a model: its sizes and, per layer, how many of each are dropped."""

    family: str
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    drop_ffn: int
    drop_heads: int

    @property
    def grouped(self) -> bool:
        """Grouped-query attention: key/value heads stay, query heads leave each group."""
        return self.kv_heads != self.heads


def structured_prune(step: StepContext[StructuredPruneConfig]) -> Artifact:
    import torch

    from slimkit_transformers.models import load_classifier

    config = step.config
    started = time.perf_counter()
    model, tokenizer = load_classifier(step.input.path, device=step.device)
    head = head_state(model)
    params_before, _ = count_params(model)
    owner, attr, family = layer_list(model)
    layers = getattr(owner, attr)
    all_parts = [parts(layer, family) for layer in layers]
    shape = _shape(step, model.config, family, len(layers), all_parts[0].ffn_out.in_features)
    changes = _config_changes(shape, config)
    if model.config.model_type == "distilbert":  # its config names the FFN width hidden_dim
        changes["hidden_dim"] = changes.pop("intermediate_size")
    check_config(model.config, changes | _layer_types_probe(model.config, changes), step)

    batches: list[dict[str, Any]] = []
    if config.importance == "gradient" or config.layers > 0:
        batches = calibration_batches(
            step, tokenizer, examples=config.calibration_examples, batch_size=config.calibration_batch_size,
            max_length=config.max_length,
        )  # fmt: skip
    facts: dict[str, Any] = {"family": family, "importance": config.importance}
    if config.importance == "gradient" and (config.ffn_ratio or config.heads or config.heads_ratio):
        facts["calibration_loss"] = round(accumulate_gradients(model, batches), 6)
    facts["calibration_texts"] = sum(len(b["input_ids"]) for b in batches)

    # Choose everything on the unpruned model, then slice.
    plans = _choose(all_parts, shape, config.importance)
    model.zero_grad(set_to_none=True)
    if config.layer_indices is not None:
        dropped = sorted(set(config.layer_indices))
    elif config.layers:
        influence = block_influence(model, layers, batches)
        facts["block_influence"] = [round(x, 6) for x in influence]
        dropped = sorted(lowest(torch.tensor(influence), config.layers))
    else:
        dropped = []
    _slice(all_parts, plans, shape)
    _drop_layers(owner, attr, dropped, model.config)
    for key, value in changes.items():
        setattr(model.config, key, value)
    if family == "bert" and compact.is_compact(model.config):
        # The stock class cannot reload it; compact's subclass can, and save_pretrained then
        # writes its auto_map and copies its code into the folder (trust_remote_code loads).
        model.__class__ = compact.CLASSES[model.config.model_type]
    check_head(model, head, step)
    params_after, _ = count_params(model)
    save_transformers(model, tokenizer, step)
    facts["reload_max_abs_diff"] = _reload_check(model, step, batches, tokenizer)
    return step.artifact(
        **facts,
        ffn_neurons={"before": shape.ffn, "after": shape.ffn - shape.drop_ffn},
        attention_heads={"before": shape.heads, "after": model.config.num_attention_heads},
        layers={"before": shape.layers, "after": model.config.num_hidden_layers, "removed": dropped},
        params_before=params_before,
        params_after=params_after,
        head="kept",
        seconds=round(time.perf_counter() - started, 2),
    )


def _shape(
    step: StepContext[StructuredPruneConfig], model_config: Any, family: str, n_layers: int, n_ffn: int
) -> Shape:
    """The model's sizes and what the step's config removes from them; refuses what cannot be removed."""
    config = step.config
    n_heads = model_config.num_attention_heads
    n_kv = getattr(model_config, "num_key_value_heads", None) or n_heads
    grouped = n_kv != n_heads
    drop_heads = config.heads or heads_from_ratio(config.heads_ratio, n_heads, n_kv)
    if drop_heads and family == "bert" and model_config.model_type not in compact.CLASSES:
        raise SlimkitError(
            f"step {step.name!r}: {_heads_setting(config)}: slimkit reloads BERT-style models with fewer heads for "
            f"{', '.join(compact.CLASSES)}, not {model_config.model_type}",
            fix="prune FFN neurons (ffn_ratio) and layers instead",
        )
    if drop_heads >= n_heads or (grouped and drop_heads % n_kv):
        raise SlimkitError(
            f"step {step.name!r}: {_heads_setting(config)}: the model has {n_heads} query heads in {n_kv} key/value "
            f"groups; remove fewer than {n_heads}"
            + (f", a multiple of {n_kv}, so that every group keeps the same number" if grouped else "")
        )
    if config.layer_indices is not None:
        bad = [i for i in config.layer_indices if not 0 <= i < n_layers]
        if bad or len(set(config.layer_indices)) >= n_layers:
            raise SlimkitError(f"step {step.name!r}: layer_indices {config.layer_indices}: the model has {n_layers} "
                               "layers (0-based) and must keep at least one")  # fmt: skip
    if config.layers >= n_layers:
        raise SlimkitError(f"step {step.name!r}: layers = {config.layers}: the model has only {n_layers}")
    return Shape(
        family=family,
        layers=n_layers,
        heads=n_heads,
        kv_heads=n_kv,
        head_dim=head_size(model_config),
        ffn=n_ffn,
        drop_ffn=min(round(config.ffn_ratio * n_ffn), n_ffn - 1),
        drop_heads=drop_heads,
    )


def heads_from_ratio(ratio: float, n_heads: int, n_kv: int) -> int:
    """Heads to remove for a share of them, at least one kept; with grouped-query attention the same
    whole number from every key/value group."""
    groups = n_kv if n_kv != n_heads else 1
    per_group = n_heads // groups
    return min(round(ratio * per_group), per_group - 1) * groups


def _heads_setting(config: StructuredPruneConfig) -> str:
    return f"heads = {config.heads}" if config.heads else f"heads_ratio = {config.heads_ratio}"


def head_size(model_config: Any) -> int:
    """The size of one attention head: explicit in Llama-style and head-pruned configs, else derived."""
    explicit = getattr(model_config, "head_dim", None) or getattr(model_config, compact.HEAD_SIZE, None)
    return int(explicit or model_config.hidden_size // model_config.num_attention_heads)


def _config_changes(shape: Shape, config: StructuredPruneConfig) -> dict[str, Any]:
    """The config fields that describe the pruned model."""
    n_dropped = len(set(config.layer_indices)) if config.layer_indices is not None else config.layers
    changes: dict[str, Any] = {
        "intermediate_size": shape.ffn - shape.drop_ffn,
        "num_attention_heads": shape.heads - shape.drop_heads,
        "num_hidden_layers": shape.layers - n_dropped,
    }
    if shape.family == "llama":  # explicit, since hidden_size / num_attention_heads no longer gives it
        changes["head_dim"] = shape.head_dim
    elif shape.drop_heads:  # the same for encoders, in compact's field
        changes[compact.HEAD_SIZE] = shape.head_dim
    if shape.drop_heads and not shape.grouped and shape.family == "llama":
        changes["num_key_value_heads"] = shape.heads - shape.drop_heads
    return changes


def _choose(all_parts: list[Parts], shape: Shape, importance: str) -> list[tuple[list[int], list[int]]]:
    """Per layer, the FFN neurons and the query heads to remove: the least important ones."""
    import torch

    plans = []
    with torch.no_grad():
        for p in all_parts:
            ffn_idx = lowest(ffn_scores(p, importance), shape.drop_ffn) if shape.drop_ffn else []
            head_idx: list[int] = []
            if shape.drop_heads:
                scores = head_scores(p, shape.heads, shape.head_dim, importance, with_kv=not shape.grouped)
                # Query heads per key/value group, contiguous; every group loses the same number.
                size = shape.heads // shape.kv_heads if shape.grouped else shape.heads
                per_group = shape.drop_heads // shape.kv_heads if shape.grouped else shape.drop_heads
                for g in range(shape.heads // size):
                    head_idx += [g * size + h for h in lowest(scores[g * size : (g + 1) * size], per_group)]
            plans.append((ffn_idx, head_idx))
    return plans


def _slice(all_parts: list[Parts], plans: list[tuple[list[int], list[int]]], shape: Shape) -> None:
    """Remove the chosen neurons and heads from every layer's matrices."""
    import torch
    import torch_pruning as tp

    with torch.no_grad():
        for p, (ffn_idx, head_idx) in zip(all_parts, plans, strict=True):
            if ffn_idx:
                for lin in p.ffn_in:
                    tp.prune_linear_out_channels(lin, ffn_idx)
                tp.prune_linear_in_channels(p.ffn_out, ffn_idx)
                if hasattr(p.mlp, "intermediate_size"):
                    p.mlp.intermediate_size = shape.ffn - len(ffn_idx)
            if head_idx:
                channels = [h * shape.head_dim + d for h in head_idx for d in range(shape.head_dim)]
                for lin in [p.q] if shape.grouped else [p.q, p.k, p.v]:
                    tp.prune_linear_out_channels(lin, channels)
                tp.prune_linear_in_channels(p.o, channels)
                if shape.grouped:
                    p.attention.num_key_value_groups = (shape.heads - len(head_idx)) // shape.kv_heads
                if shape.family == "bert":
                    compact.set_heads(p.attention, shape.heads - len(head_idx), shape.head_dim)


def _drop_layers(owner: Any, attr: str, dropped: list[int], config: Any) -> None:
    """Remove whole layers from the layer list, renumbering the later ones."""
    import torch

    if not dropped:
        return
    kept = [layer for i, layer in enumerate(getattr(owner, attr)) if i not in dropped]
    setattr(owner, attr, torch.nn.ModuleList(kept))
    for new_index, layer in enumerate(kept):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_index
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = [t for i, t in enumerate(config.layer_types) if i not in dropped]


def _layer_types_probe(config: Any, changes: dict[str, Any]) -> dict[str, Any]:
    """A layer_types list of the new length (Qwen2/3, Gemma 3 have one entry per layer) for check_config only:
    which entries stay is known once the layers are chosen (_drop_layers cuts the real list)."""
    types = getattr(config, "layer_types", None)
    n_layers = changes.get("num_hidden_layers")
    if not isinstance(types, list) or n_layers is None or n_layers == len(types):
        return {}
    return {"layer_types": types[:n_layers]}


def check_config(config: Any, changes: dict[str, Any], step: StepContext[Any]) -> None:
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


def _reload_check(model: Any, step: StepContext[Any], batches: list[dict[str, Any]], tokenizer: Any) -> float:
    """Reload the saved folder and compare its logits with the pruned model's, on a calibration batch."""
    inputs = {k: v for k, v in batches[0].items() if k != "labels"} if batches else sample_inputs(tokenizer)
    return reload_check(model, step, inputs)
