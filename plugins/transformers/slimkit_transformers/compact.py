"""Encoder classifiers made smaller than a stock config can say, as classes that ``from_pretrained`` loads.

Two changes have no stock config field:

- **Attention heads removed.** BERT-style configs derive the head size from
  ``hidden_size / num_attention_heads`` and transformers 5 dropped ``config.pruned_heads``. Such a
  folder says ``num_attention_heads`` (the heads kept) and ``attention_head_size`` (their unchanged
  size; DeBERTa-v2's name for the same thing); every layer's query, key and value projections and
  the attention output are narrowed to the heads kept.
- **A low-rank word-embedding table.** The folder says ``embedding_rank``: the token embeddings are
  a vocabulary x rank table followed by a rank x width projection (``LowRankEmbedding``), as in
  ALBERT's factorised embeddings, but for the word embeddings only.

A stock class refuses such a folder on the shapes of its weights.

The classes below build the stock model (at its full width, which the stock constructor checks),
then make those changes, so the saved weights load into them; ``auto_map`` in the folder names
them. This file is self-contained (torch and transformers only): ``save_pretrained`` copies it into
the folder, where ``AutoModelForSequenceClassification.from_pretrained(folder,
trust_remote_code=True)`` finds it without slimkit installed. slimkit itself loads the class from
here, never from a folder.
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
RANK = "embedding_rank"
AUTO_CLASS = "AutoModelForSequenceClassification"


def is_head_pruned(config: Any) -> bool:
    """True when the config's heads do not fill the hidden width: some heads were removed."""
    size = getattr(config, HEAD_SIZE, None)
    return isinstance(size, int) and size * config.num_attention_heads != config.hidden_size


def is_compact(config: Any) -> bool:
    """True when a stock class cannot load the config's model: heads removed or a low-rank embedding table."""
    return is_head_pruned(config) or isinstance(getattr(config, RANK, None), int)


class LowRankEmbedding(torch.nn.Embedding):
    """Token embeddings as a (vocabulary x rank) table, this module's own ``weight``, times a
    (rank x width) projection: stands in for the ``nn.Embedding`` of an encoder's embeddings module.
    The table keeps the stock parameter name, so a stock class refuses the folder on its shape instead
    of silently initialising a full table."""

    def __init__(self, num_embeddings: int, rank: int, width: int, padding_idx: int | None = None) -> None:
        super().__init__(num_embeddings, rank, padding_idx=padding_idx)
        self.project = torch.nn.Linear(rank, width, bias=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.project(super().forward(input_ids))


def projections(layer: Any) -> tuple[Any, list[tuple[Any, str]], tuple[Any, str]]:
    """(attention module, (owner, name) of its query, key and value projections, (owner, name) of the
    output projection) of one encoder layer. MPNet is not covered: its relative-position bias has
    one column per head and is shared by all layers, which lose different heads."""
    att = layer.attention
    if hasattr(att, "q_lin"):  # DistilBERT: one flat module
        return att, [(att, "q_lin"), (att, "k_lin"), (att, "v_lin")], (att, "out_lin")
    return att.self, [(att.self, "query"), (att.self, "key"), (att.self, "value")], (att.output, "dense")


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
        attention, inputs, (out_owner, out_name) = projections(layer)
        for owner, name in inputs:
            old = getattr(owner, name)
            setattr(owner, name, torch.nn.Linear(old.in_features, width, bias=old.bias is not None))
        old = getattr(out_owner, out_name)
        setattr(out_owner, out_name, torch.nn.Linear(width, old.out_features, bias=old.bias is not None))
        set_heads(attention, heads, head_size)


def _low_rank(model: Any, rank: int) -> None:
    """Replace the word embeddings with a ``LowRankEmbedding`` of that rank (weights come from the checkpoint)."""
    old = model.get_input_embeddings()
    model.set_input_embeddings(LowRankEmbedding(old.num_embeddings, rank, old.embedding_dim, old.padding_idx))


def _compact(base: type) -> type:
    """``base`` (a stock classifier class) that loads a compact checkpoint of its family."""

    def __init__(self: Any, config: Any, *args: Any, **kwargs: Any) -> None:
        # The stock constructor checks hidden_size % num_attention_heads and sizes the projections
        # from it, so it sees the full head count while it builds the modules.
        kept = config.num_attention_heads
        if is_head_pruned(config):
            config.num_attention_heads = config.hidden_size // getattr(config, HEAD_SIZE)
        try:
            base.__init__(self, config, *args, **kwargs)
        finally:
            config.num_attention_heads = kept
        if is_head_pruned(config):
            _narrow(self, config.num_attention_heads, getattr(config, HEAD_SIZE))
        if getattr(config, RANK, None):
            _low_rank(self, getattr(config, RANK))
        self.post_init()  # again: the replaced modules are new, initialised like the rest

    name = f"Compact{base.__name__}"
    cls = type(name, (base,), {"__init__": __init__, "__module__": __name__, "__qualname__": name})
    cls.register_for_auto_class(AUTO_CLASS)
    return cls


CompactBertForSequenceClassification = _compact(BertForSequenceClassification)
CompactRobertaForSequenceClassification = _compact(RobertaForSequenceClassification)
CompactXLMRobertaForSequenceClassification = _compact(XLMRobertaForSequenceClassification)
CompactElectraForSequenceClassification = _compact(ElectraForSequenceClassification)
CompactDistilBertForSequenceClassification = _compact(DistilBertForSequenceClassification)

# model_type -> the class that loads a compact checkpoint of that family.
CLASSES: dict[str, type] = {
    "bert": CompactBertForSequenceClassification,
    "roberta": CompactRobertaForSequenceClassification,
    "xlm-roberta": CompactXLMRobertaForSequenceClassification,
    "electra": CompactElectraForSequenceClassification,
    "distilbert": CompactDistilBertForSequenceClassification,
}
