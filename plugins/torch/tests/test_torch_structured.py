"""torch.structured-prune on tiny BERT and Llama models: shapes, configs, reloading, equivalence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from slimkit_transformers.models import load_classifier

NO_MEASURE = {"enabled": False}


@pytest.fixture(scope="session")
def tiny_llama_mha(tmp_path_factory: pytest.TempPathFactory, tiny_llama: Path) -> Path:
    """Like ``tiny_llama`` (same tokenizer) but without grouped-query attention (4 heads, 4 key/value heads)."""
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama-mha")
    torch.manual_seed(1)
    config = LlamaConfig.from_pretrained(tiny_llama)
    config.num_key_value_heads = 4
    LlamaForCausalLM(config).save_pretrained(folder)
    for f in tiny_llama.iterdir():
        if f.name not in ("config.json", "model.safetensors", "generation_config.json"):
            shutil.copy(f, folder / f.name)
    return folder


def _run(run_pipeline: Any, tiny_pipeline: Any, model: Path, task: dict[str, Any], config: dict[str, Any]) -> Any:
    steps = [{"name": "prune", "technique": "torch.structured-prune", "config": config}]
    result = run_pipeline(tiny_pipeline(model, task, steps, measure=NO_MEASURE))
    return result


def _logits(model: Any, tokenizer: Any) -> torch.Tensor:
    texts = ["i love this movie so much", "sad awful day", "the food was not very good but fun"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits


def _kept_rows(pruned: torch.Tensor, original: torch.Tensor) -> list[int]:
    """Indices of the original rows that the pruned matrix kept, in order."""
    return [next(i for i in range(len(original)) if torch.equal(original[i], row)) for row in pruned]


def test_bert_ffn_and_layers(plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path,
                             tiny_task: dict[str, Any]) -> None:  # fmt: skip
    result = _run(run_pipeline, tiny_pipeline, tiny_bert, tiny_task,
                  {"ffn_ratio": 0.5, "layer_indices": [0], "importance": "magnitude"})  # fmt: skip
    assert result.exit_code == 0, [s.error for s in result.steps]
    artifact = result.steps[0].artifact
    config = json.loads((artifact.path / "config.json").read_text())
    assert (config["intermediate_size"], config["num_hidden_layers"], config["num_attention_heads"]) == (32, 1, 2)
    assert artifact.metadata["layers"] == {"before": 2, "after": 1, "removed": [0]}
    assert artifact.metadata["ffn_neurons"] == {"before": 64, "after": 32}
    pruned, tokenizer = load_classifier(artifact.path)  # a normal folder: from_pretrained
    layer = pruned.bert.encoder.layer[0]
    assert layer.intermediate.dense.weight.shape == (32, 32) and layer.output.dense.weight.shape == (32, 32)
    assert artifact.metadata["params_after"] == sum(p.numel() for p in pruned.parameters())

    # The same model unpruned, with layer 0 gone and the removed neurons' outputs zeroed, predicts the same.
    source, _ = load_classifier(result.source.path)
    assert torch.equal(source.classifier.weight, pruned.classifier.weight)
    assert torch.equal(source.bert.pooler.dense.weight, pruned.bert.pooler.dense.weight)
    kept_layer = source.bert.encoder.layer[1]
    kept = _kept_rows(layer.intermediate.dense.weight, kept_layer.intermediate.dense.weight)
    removed = sorted(set(range(64)) - set(kept))
    source.bert.encoder.layer = torch.nn.ModuleList([kept_layer])
    with torch.no_grad():
        kept_layer.output.dense.weight[:, removed] = 0
    torch.testing.assert_close(_logits(pruned, tokenizer), _logits(source, tokenizer), atol=1e-5, rtol=1e-5)
    assert (artifact.path / "tokenizer.json").is_file()


def test_magnitude_importance_removes_dead_neurons_first(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_task: dict[str, Any], tmp_path: Path
) -> None:
    # Neurons whose weights are all zero contribute nothing: removing exactly them changes no prediction.
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    with torch.no_grad():
        for layer in model.bert.encoder.layer:
            dead = list(range(0, 64, 2))
            layer.intermediate.dense.weight[dead] = 0
            layer.intermediate.dense.bias[dead] = 0
            layer.output.dense.weight[:, dead] = 0
    folder = tmp_path / "dead-neurons"
    model.save_pretrained(folder)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        (folder / name).write_bytes((tiny_bert / name).read_bytes())
    result = _run(run_pipeline, tiny_pipeline, folder, tiny_task, {"ffn_ratio": 0.5, "importance": "magnitude"})
    assert result.exit_code == 0, [s.error for s in result.steps]
    pruned, tokenizer = load_classifier(result.steps[0].artifact.path)
    source, _ = load_classifier(result.source.path)
    torch.testing.assert_close(_logits(pruned, tokenizer), _logits(source, tokenizer), atol=1e-6, rtol=1e-6)


def test_llama_gqa_heads_and_ffn_with_gradients(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_llama: Path, tiny_task: dict[str, Any]
) -> None:
    # 4 query heads in 2 key/value groups: removing 2 takes one query head from each group.
    result = _run(run_pipeline, tiny_pipeline, tiny_llama, tiny_task,
                  {"heads": 2, "ffn_ratio": 0.25, "importance": "gradient", "calibration_examples": 32})  # fmt: skip
    assert result.exit_code == 0, [s.error for s in result.steps]
    artifact = result.steps[0].artifact
    config = json.loads((artifact.path / "config.json").read_text())
    assert (config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"]) == (2, 2, 8)
    assert config["intermediate_size"] == 48
    assert artifact.metadata["calibration_texts"] == 32 and artifact.metadata["calibration_loss"] > 0
    pruned, tokenizer = load_classifier(artifact.path)
    attn = pruned.model.layers[0].self_attn
    assert attn.q_proj.weight.shape == (16, 32) and attn.o_proj.weight.shape == (32, 16)
    assert attn.k_proj.weight.shape == (16, 32) and attn.v_proj.weight.shape == (16, 32)
    assert attn.num_key_value_groups == 1

    # Equivalent unpruned model: the removed heads' columns of o_proj and FFN columns of down_proj zeroed.
    source, _ = load_classifier(result.source.path)
    assert torch.equal(source.score.weight, pruned.score.weight)
    for big, small in zip(source.model.layers, pruned.model.layers, strict=True):
        q_kept = _kept_rows(small.self_attn.q_proj.weight, big.self_attn.q_proj.weight)
        heads_kept = sorted({i // 8 for i in q_kept})
        assert len(heads_kept) == 2 and {h // 2 for h in heads_kept} == {0, 1}  # one per group
        ffn_kept = _kept_rows(small.mlp.up_proj.weight, big.mlp.up_proj.weight)
        with torch.no_grad():
            for h in set(range(4)) - set(heads_kept):
                big.self_attn.o_proj.weight[:, h * 8 : (h + 1) * 8] = 0
            big.mlp.down_proj.weight[:, sorted(set(range(64)) - set(ffn_kept))] = 0
    torch.testing.assert_close(_logits(pruned, tokenizer), _logits(source, tokenizer), atol=1e-5, rtol=1e-5)


def test_llama_without_gqa_loses_key_and_value_heads_too(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_llama_mha: Path, tiny_task: dict[str, Any]
) -> None:
    result = _run(run_pipeline, tiny_pipeline, tiny_llama_mha, tiny_task, {"heads": 2, "importance": "magnitude"})
    assert result.exit_code == 0, [s.error for s in result.steps]
    config = json.loads((result.steps[0].artifact.path / "config.json").read_text())
    assert (config["num_attention_heads"], config["num_key_value_heads"]) == (2, 2)
    pruned, _ = load_classifier(result.steps[0].artifact.path)
    attn = pruned.model.layers[1].self_attn
    assert [lin.weight.shape[0] for lin in (attn.q_proj, attn.k_proj, attn.v_proj)] == [16, 16, 16]


def test_layers_chosen_by_block_influence(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_llama: Path, tiny_task: dict[str, Any]
) -> None:
    result = _run(run_pipeline, tiny_pipeline, tiny_llama, tiny_task, {"layers": 1, "calibration_examples": 16})
    assert result.exit_code == 0, [s.error for s in result.steps]
    meta = result.steps[0].artifact.metadata
    influence = meta["block_influence"]
    assert len(influence) == 2 and meta["layers"]["removed"] == [influence.index(min(influence))]
    pruned, _ = load_classifier(result.steps[0].artifact.path)
    assert len(pruned.model.layers) == 1 and pruned.model.layers[0].self_attn.layer_idx == 0
    assert "calibration_loss" not in meta  # no FFN or head ranking, so no gradients were needed


@pytest.fixture(scope="module")
def tiny_mpnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from slimkit_transformers.testing import build_tiny_model

    return build_tiny_model("mpnet", tmp_path_factory.mktemp("tiny-mpnet"))


@pytest.mark.parametrize(
    ("family", "config", "message"),
    [
        ("tiny_llama", {"heads": 1}, "a multiple of 2"),
        ("tiny_bert", {"layer_indices": [0, 1]}, "must keep at least one"),
        ("tiny_mpnet", {"heads": 1}, "not mpnet"),
        ("tiny_llama_mha", {"heads": 1}, "is not a multiple of the number of attention heads"),
    ],
)
def test_refused_configurations(
    family: str, config: dict[str, Any], message: str, request: pytest.FixtureRequest,
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_task: dict[str, Any],
) -> None:  # fmt: skip
    result = _run(run_pipeline, tiny_pipeline, request.getfixturevalue(family), tiny_task, config)
    assert result.exit_code != 0 and message in result.steps[0].error


def test_config_needs_something_to_remove() -> None:
    from pydantic import ValidationError

    from slimkit_torch.config import StructuredPruneConfig

    with pytest.raises(ValidationError, match="nothing to remove"):
        StructuredPruneConfig()
    with pytest.raises(ValidationError, match="not both"):
        StructuredPruneConfig(layers=1, layer_indices=[0])
    with pytest.raises(ValidationError, match="not both"):
        StructuredPruneConfig(heads=1, heads_ratio=0.5)


def test_bert_heads_reload_with_and_without_slimkit(plugins: Any, run_pipeline: Any, tiny_pipeline: Any,
                                                    tiny_bert: Path, tiny_task: dict[str, Any]) -> None:  # fmt: skip
    from transformers import AutoModelForSequenceClassification

    result = _run(run_pipeline, tiny_pipeline, tiny_bert, tiny_task, {"heads": 1, "importance": "magnitude"})
    assert result.exit_code == 0, [s.error for s in result.steps]
    artifact = result.steps[0].artifact
    config = json.loads((artifact.path / "config.json").read_text())
    # 2 heads of 16 -> 1 head of 16: the config says both, since hidden_size / heads no longer gives the size.
    assert (config["num_attention_heads"], config["attention_head_size"], config["hidden_size"]) == (1, 16, 32)
    assert artifact.metadata["attention_heads"] == {"before": 2, "after": 1}
    assert (artifact.path / "compact.py").is_file() and "num_key_value_heads" not in config
    pruned, tokenizer = load_classifier(artifact.path)
    assert type(pruned).__name__ == "CompactBertForSequenceClassification"
    for layer in pruned.bert.encoder.layer:
        assert layer.attention.self.query.weight.shape == (16, 32)
        assert layer.attention.output.dense.weight.shape == (32, 16)

    # The unpruned model with the removed head's columns of the output projection zeroed predicts the same.
    source, _ = load_classifier(result.source.path)
    with torch.no_grad():
        for kept_layer, full_layer in zip(pruned.bert.encoder.layer, source.bert.encoder.layer, strict=True):
            rows = _kept_rows(kept_layer.attention.self.query.weight, full_layer.attention.self.query.weight)
            removed = sorted(set(range(32)) - set(rows))
            assert len(removed) == 16 and removed in (list(range(16)), list(range(16, 32)))
            full_layer.attention.output.dense.weight[:, removed] = 0
    torch.testing.assert_close(_logits(pruned, tokenizer), _logits(source, tokenizer), atol=1e-5, rtol=1e-5)

    # Without slimkit: the code the folder carries, as for any hub model with its own modeling file.
    plain = AutoModelForSequenceClassification.from_pretrained(artifact.path, trust_remote_code=True).eval()
    torch.testing.assert_close(_logits(plain, tokenizer), _logits(pruned, tokenizer))
    with pytest.raises(Exception, match="mismatched"):  # the stock class cannot hold it, and says so
        AutoModelForSequenceClassification.from_pretrained(artifact.path)


@pytest.mark.parametrize("family", ["roberta", "xlm-roberta", "electra", "distilbert"])
def test_encoder_heads_of_each_family_reload(family: str, tmp_path: Path, plugins: Any, run_pipeline: Any,
                                             tiny_pipeline: Any, tiny_task: dict[str, Any]) -> None:  # fmt: skip
    from slimkit_transformers.testing import build_tiny_model

    model = build_tiny_model(family, tmp_path / family)
    result = _run(run_pipeline, tiny_pipeline, model, tiny_task, {"heads": 1, "ffn_ratio": 0.5})
    assert result.exit_code == 0, [s.error for s in result.steps]
    artifact = result.steps[0].artifact
    assert artifact.metadata["attention_heads"] == {"before": 2, "after": 1}
    pruned, _ = load_classifier(artifact.path)
    assert type(pruned).__name__.startswith("Compact")
    from slimkit_transformers.compact import encoder_layers, projections

    for layer in encoder_layers(pruned):
        _, inputs, (out_owner, out_name) = projections(layer)
        assert all(getattr(owner, name).out_features == 32 for owner, name in inputs)  # one head of 32
        assert getattr(out_owner, out_name).in_features == 32


def test_heads_ratio_is_a_share_of_every_model_and_keys_omit_it_at_zero(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_task: dict[str, Any]
) -> None:
    from slimkit.techniques import config_key_dump
    from slimkit_torch.config import StructuredPruneConfig
    from slimkit_torch.structured import heads_from_ratio

    assert [heads_from_ratio(0.5, n, n) for n in (2, 12, 16)] == [1, 6, 8]
    assert heads_from_ratio(0.99, 12, 12) == 11  # one head always stays
    assert heads_from_ratio(0.5, 8, 2) == 4 and heads_from_ratio(0.3, 8, 2) == 2  # whole heads per group
    # Steps stored before heads_ratio existed keep their keys; setting it changes them.
    assert "heads_ratio" not in config_key_dump(StructuredPruneConfig(ffn_ratio=0.5))
    assert config_key_dump(StructuredPruneConfig(heads_ratio=0.5))["heads_ratio"] == 0.5
    result = _run(run_pipeline, tiny_pipeline, tiny_bert, tiny_task, {"heads_ratio": 0.5, "importance": "magnitude"})
    assert result.exit_code == 0, [s.error for s in result.steps]
    assert result.steps[0].artifact.metadata["attention_heads"] == {"before": 2, "after": 1}
