"""torch.low-rank-embeddings on tiny encoders: the SVD factors, reloading, refusals, every family."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from slimkit_transformers.models import load_classifier

NO_MEASURE = {"enabled": False}


def _steps(rank: int, *, heads: int = 0) -> list[dict[str, Any]]:
    steps = [{"name": "low-rank", "technique": "torch.low-rank-embeddings", "config": {"rank": rank}}]
    if heads:
        prune = {"name": "prune", "technique": "torch.structured-prune", "config": {"heads": heads}}
        steps.insert(0, prune)
    return steps


def _logits(model: Any, tokenizer: Any) -> torch.Tensor:
    batch = tokenizer(["i love this movie so much", "sad awful day, not good"], padding=True, return_tensors="pt")
    with torch.no_grad():
        return model.eval()(**batch).logits


def test_bert_table_is_the_truncated_svd_and_reloads(plugins: Any, run_pipeline: Any, tiny_pipeline: Any,
                                                     tiny_bert: Path, tiny_task: dict[str, Any]) -> None:  # fmt: skip
    from transformers import AutoModelForSequenceClassification

    result = run_pipeline(tiny_pipeline(tiny_bert, tiny_task, _steps(8), measure=NO_MEASURE))
    assert result.exit_code == 0, [s.error for s in result.steps]
    artifact = result.steps[0].artifact
    config = json.loads((artifact.path / "config.json").read_text())
    assert config["embedding_rank"] == 8 and (artifact.path / "compact.py").is_file()
    factorised, tokenizer = load_classifier(artifact.path)
    assert type(factorised).__name__ == "CompactBertForSequenceClassification"
    embedding = factorised.get_input_embeddings()
    vocab = embedding.num_embeddings
    assert embedding.weight.shape == (vocab, 8) and embedding.project.weight.shape == (32, 8)
    meta = artifact.metadata
    assert meta["embedding_rank"] == {"before": 32, "after": 8}
    assert meta["embedding_params"] == {"before": vocab * 32, "after": vocab * 8 + 8 * 32}
    assert meta["params_before"] - meta["params_after"] == vocab * 24 - 8 * 32
    assert 0 < meta["energy_kept"] < 1 and 0 < meta["relative_error"] < 1

    # The source model with its table replaced by the best rank-8 approximation predicts the same.
    source, _ = load_classifier(result.source.path)
    weight = source.get_input_embeddings().weight
    u, s, vh = torch.linalg.svd(weight.detach(), full_matrices=False)
    with torch.no_grad():
        weight.copy_(u[:, :8] * s[:8] @ vh[:8])
    torch.testing.assert_close(_logits(factorised, tokenizer), _logits(source, tokenizer), atol=1e-5, rtol=1e-5)

    # Without slimkit: the code the folder carries; the stock class cannot hold the two factors.
    plain = AutoModelForSequenceClassification.from_pretrained(artifact.path, trust_remote_code=True)
    torch.testing.assert_close(_logits(plain, tokenizer), _logits(factorised, tokenizer))
    with pytest.raises(Exception, match="mismatched"):
        AutoModelForSequenceClassification.from_pretrained(artifact.path)


@pytest.mark.parametrize("family", ["roberta", "xlm-roberta", "electra", "distilbert"])
def test_each_family_with_heads_removed_first(family: str, tmp_path: Path, plugins: Any, run_pipeline: Any,
                                              tiny_pipeline: Any, tiny_task: dict[str, Any]) -> None:  # fmt: skip
    from slimkit_transformers.testing import build_tiny_model

    model = build_tiny_model(family, tmp_path / family)
    result = run_pipeline(tiny_pipeline(model, tiny_task, _steps(4, heads=1), measure=NO_MEASURE))
    assert result.exit_code == 0, [s.error for s in result.steps]
    compact, tokenizer = load_classifier(result.steps[-1].artifact.path)
    assert type(compact).__name__.startswith("Compact")
    assert compact.config.embedding_rank == 4 and compact.config.num_attention_heads == 1
    assert compact.get_input_embeddings().weight.shape[1] == 4
    assert torch.isfinite(_logits(compact, tokenizer)).all()


def test_a_rank_that_saves_nothing_and_a_second_factorisation_are_refused(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_task: dict[str, Any]
) -> None:
    result = run_pipeline(tiny_pipeline(tiny_bert, tiny_task, _steps(32), measure=NO_MEASURE))
    assert result.exit_code != 0
    assert "'low-rank'" in result.steps[0].error and "below 32" in result.steps[0].error

    twice = [*_steps(8), {"name": "again", "technique": "torch.low-rank-embeddings", "config": {"rank": 4}}]
    result = run_pipeline(tiny_pipeline(tiny_bert, tiny_task, twice, measure=NO_MEASURE))
    assert result.exit_code != 0 and "already of rank 8" in result.steps[1].error


def test_rank_ratio_is_a_share_of_the_width(plugins: Any, run_pipeline: Any, tiny_pipeline: Any,
                                            tiny_bert: Path, tiny_task: dict[str, Any]) -> None:  # fmt: skip
    steps = [{"name": "low-rank", "technique": "torch.low-rank-embeddings", "config": {"rank_ratio": 0.25}}]
    result = run_pipeline(tiny_pipeline(tiny_bert, tiny_task, steps, measure=NO_MEASURE))
    assert result.exit_code == 0, [s.error for s in result.steps]
    assert result.steps[0].artifact.metadata["embedding_rank"] == {"before": 32, "after": 8}

    steps[0]["config"] = {"rank_ratio": 0.99}  # rounds to the full width: refused, naming what was given
    result = run_pipeline(tiny_pipeline(tiny_bert, tiny_task, steps, measure=NO_MEASURE))
    assert result.exit_code != 0 and "rank_ratio = 0.99 (rank 32)" in result.steps[0].error


def test_rank_or_rank_ratio_and_keys_of_stored_steps() -> None:
    from pydantic import ValidationError

    from slimkit.techniques import config_key_dump
    from slimkit_torch.config import LowRankEmbeddingsConfig

    for bad in ({}, {"rank": 8, "rank_ratio": 0.5}):
        with pytest.raises(ValidationError, match="either 'rank'"):
            LowRankEmbeddingsConfig(**bad)
    # Steps stored before rank_ratio existed keep their keys.
    assert config_key_dump(LowRankEmbeddingsConfig(rank=192)) == {"rank": 192}
    assert LowRankEmbeddingsConfig(rank_ratio=0.5).rank_for(384) == 192
