"""Which class loads a classifier: transformers' auto class, or slimkit's compact one."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, BertConfig, DebertaV2Config

from slimkit_transformers.compact import CompactBertForSequenceClassification
from slimkit_transformers.models import classifier_class, load_classifier


def test_only_bert_style_configs_with_missing_heads_get_the_compact_class() -> None:
    full = BertConfig(hidden_size=32, num_attention_heads=2, attention_head_size=16)
    assert classifier_class(BertConfig(hidden_size=32, num_attention_heads=2)) is AutoModelForSequenceClassification
    assert classifier_class(full) is AutoModelForSequenceClassification  # heads fill the width: nothing removed
    pruned = BertConfig(hidden_size=32, num_attention_heads=1, attention_head_size=16)
    assert classifier_class(pruned) is CompactBertForSequenceClassification
    # DeBERTa-v2's own attention reads attention_head_size: its stock class is right.
    deberta = DebertaV2Config(hidden_size=32, num_attention_heads=1, attention_head_size=16)
    assert classifier_class(deberta) is AutoModelForSequenceClassification


def test_a_compact_bert_saves_and_loads_with_its_shapes(tmp_path: Path, tiny_bert: Path) -> None:
    model, tokenizer = load_classifier(tiny_bert)
    config = model.config
    config.num_attention_heads, config.attention_head_size = 1, 16  # one of two heads of 16 kept
    pruned = CompactBertForSequenceClassification(config)
    pruned.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    reloaded, _ = load_classifier(tmp_path)
    assert type(reloaded) is CompactBertForSequenceClassification
    layer = reloaded.bert.encoder.layer[0].attention
    assert layer.self.key.weight.shape == (16, 32) and layer.output.dense.weight.shape == (32, 16)
    assert layer.self.num_attention_heads == 1
    batch = tokenizer(["a short text"], return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, pruned.eval()(**batch).logits)
