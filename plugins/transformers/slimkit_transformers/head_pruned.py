"""Encoder classifiers with attention heads removed, as classes that ``from_pretrained`` can load.

BERT-style configs derive the head size from ``hidden_size / num_attention_heads`` and transformers
5 dropped ``config.pruned_heads``, so a stock class cannot describe a BERT with fewer heads. A
head-pruned folder therefore says ``num_attention_heads`` (the heads kept) and
``attention_head_size`` (their unchanged size; DeBERTa-v2's name for the same thing), and its
``auto_map`` names one of the classes below. They build the stock model at its full width, then
narrow each layer's query, key and value projections and the attention output to the heads kept,
so the saved weights load into them.

This file is self-contained (torch and transformers only): ``save_pretrained`` copies it into the
folder, where ``AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)``
finds it without slimkit installed. slimkit itself loads the class from here, never from a folder.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.models.bert.modeling_bert import BertForSequenceClassification
from transformers.models.distilbert.modeling_distilbert import DistilBertForSequenceClassification
from transformers.models.electra.modeling_electra import ElectraForSequenceClassification
from transformers.models.roberta.modeling_roberta import RobertaForSequenceClassification
from transformers.models.xlm_roberta.modeling_xlm_roberta import XLMRobertaForSequenceClassification

HEAD_SIZE = "attention_head_size"
AUTO_CLASS = "AutoModelForSequenceClassification"

# Names of an attention layer's projections across these families (BERT, RoBERTa, XLM-R, ELECTRA;
# DistilBERT): query, key, value, output. MPNet is not among them: its relative-position bias has one
# column per head and is shared by all layers, which lose different heads.
ATTENTION_NAMES = {"q": ("query", "q_lin"), "k": ("key", "k_lin"), "v": ("value", "v_lin"), "o": ("out_lin",)}


def is_head_pruned(config: Any) -> bool:
    """True when the config's heads do not fill the hidden width: some heads were removed."""
    size = getattr(config, HEAD_SIZE, None)
    return isinstance(size, int) and size * config.num_attention_heads != config.hidden_size


def _named(module: Any, names: tuple[str, ...]) -> Any:
    found = next((getattr(module, n) for n in names if hasattr(module, n)), None)
    if found is None:
        raise AttributeError(f"{type(module).__name__} has none of {', '.join(names)}")
    return found


def attention_linears(layer: Any) -> tuple[Any, Any, Any, Any, Any]:
    """(attention module, query, key, value, output projection) of one encoder layer."""
    att = layer.attention
    inner = att if hasattr(att, "q_lin") else _named(att, ("self", "attn"))  # DistilBERT's attention is flat
    q, k, v = (_named(inner, ATTENTION_NAMES[x]) for x in "qkv")
    o = att.output.dense if hasattr(att, "output") else _named(inner, ATTENTION_NAMES["o"])
    return inner, q, k, v, o


def encoder_layers(model: Any) -> Any:
    base = model.base_model
    return (getattr(base, "encoder", None) or base.transformer).layer  # DistilBERT: transformer


def set_heads(attention: Any, heads: int, head_size: int) -> None:
    """Tell an attention module how many heads it has now (the families name the count differently)."""
    for name in ("num_attention_heads", "n_heads"):
        if hasattr(attention, name):
            setattr(attention, name, heads)
    if hasattr(attention, "all_head_size"):
        attention.all_head_size = heads * head_size


def _narrow(model: Any, heads: int, head_size: int) -> None:
    """Replace every layer's projections with ones for ``heads`` heads (weights come from the checkpoint)."""
    width = heads * head_size
    for layer in encoder_layers(model):
        attention, *_ = attention_linears(layer)
        for name in ("q", "k", "v"):
            owner_name = next(n for n in ATTENTION_NAMES[name] if hasattr(attention, n))
            old = getattr(attention, owner_name)
            setattr(attention, owner_name, torch.nn.Linear(old.in_features, width, bias=old.bias is not None))
        owner = layer.attention.output if hasattr(layer.attention, "output") else attention
        o_name = "dense" if owner is not attention else next(n for n in ATTENTION_NAMES["o"] if hasattr(attention, n))
        old = getattr(owner, o_name)
        setattr(owner, o_name, torch.nn.Linear(width, old.out_features, bias=old.bias is not None))
        set_heads(attention, heads, head_size)


def _head_pruned(base: type) -> type:
    """``base`` (a stock classifier class) that loads a head-pruned checkpoint of its family."""

    def __init__(self: Any, config: Any, *args: Any, **kwargs: Any) -> None:
        # The stock constructor checks hidden_size % num_attention_heads and sizes the projections
        # from it, so it sees the full head count while it builds the modules.
        kept = config.num_attention_heads
        config.num_attention_heads = config.hidden_size // getattr(config, HEAD_SIZE)
        try:
            base.__init__(self, config, *args, **kwargs)
        finally:
            config.num_attention_heads = kept
        _narrow(self, config.num_attention_heads, getattr(config, HEAD_SIZE))
        self.post_init()

    name = f"HeadPruned{base.__name__}"
    cls = type(name, (base,), {"__init__": __init__, "__module__": __name__, "__qualname__": name})
    cls.register_for_auto_class(AUTO_CLASS)
    return cls


HeadPrunedBertForSequenceClassification = _head_pruned(BertForSequenceClassification)
HeadPrunedRobertaForSequenceClassification = _head_pruned(RobertaForSequenceClassification)
HeadPrunedXLMRobertaForSequenceClassification = _head_pruned(XLMRobertaForSequenceClassification)
HeadPrunedElectraForSequenceClassification = _head_pruned(ElectraForSequenceClassification)
HeadPrunedDistilBertForSequenceClassification = _head_pruned(DistilBertForSequenceClassification)

# model_type -> the class that loads a head-pruned checkpoint of that family.
CLASSES: dict[str, type] = {
    "bert": HeadPrunedBertForSequenceClassification,
    "roberta": HeadPrunedRobertaForSequenceClassification,
    "xlm-roberta": HeadPrunedXLMRobertaForSequenceClassification,
    "electra": HeadPrunedElectraForSequenceClassification,
    "distilbert": HeadPrunedDistilBertForSequenceClassification,
}
