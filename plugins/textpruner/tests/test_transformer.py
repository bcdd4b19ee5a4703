"""textpruner.transformer: refused by the planner on transformers 5, pruning heads and FFN on 4."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from packaging.version import Version

from slimkit_transformers.models import load_classifier

TRANSFORMERS_5 = Version(transformers.__version__).major >= 5
needs_transformers_4 = pytest.mark.skipif(
    TRANSFORMERS_5, reason="prune_heads is gone in transformers 5; tox -e textpruner-tf4 runs this"
)


def _step(**config: Any) -> dict[str, Any]:
    return {"name": "heads", "technique": "textpruner.transformer", "config": config}


@pytest.mark.skipif(not TRANSFORMERS_5, reason="the refusal concerns transformers 5")
def test_the_planner_refuses_it_on_transformers_5(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_task: dict[str, Any]
) -> None:
    from slimkit.errors import PlanRefused

    pipeline = tiny_pipeline(tiny_bert, tiny_task, [_step(target_num_of_heads=1)], measure={"enabled": False})
    with pytest.raises(PlanRefused) as info:
        run_pipeline(pipeline)
    message = str(info.value)
    assert "textpruner.transformer needs transformers>=4.45,<5" in message
    assert f"transformers {transformers.__version__} is installed" in message


def test_a_config_without_targets_is_refused(
    plugins: Any, slimkit_plugins: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_task: dict[str, Any]
) -> None:
    from slimkit.planner import plan_pipeline
    from slimkit.spec import pipeline_from_dict

    pipeline = pipeline_from_dict(tiny_pipeline(tiny_bert, tiny_task, [_step(n_iters=2)]))
    plan = plan_pipeline(pipeline, plugins=slimkit_plugins)
    assert any("set target_num_of_heads, target_ffn_size or both" in p for p in plan.problems), plan.problems


@needs_transformers_4
@pytest.mark.parametrize("use_logits", [False, True])
def test_heads_and_ffn_neurons_are_removed(
    use_logits: bool,
    plugins: Any,
    run_pipeline: Any,
    tiny_pipeline: Any,
    tiny_bert: Path,
    tiny_multilabel_task: dict[str, Any],
) -> None:
    from transformers import AutoModelForSequenceClassification

    config = {"target_num_of_heads": 1, "target_ffn_size": 24, "calibration_examples": 40, "batch_size": 16}
    steps = [_step(**config, use_logits=use_logits)]
    result = run_pipeline(tiny_pipeline(tiny_bert, tiny_multilabel_task, steps, measure={"enabled": False}))
    assert result.exit_code == 0, [s.error for s in result.steps]
    artifact = result.steps[0].artifact
    meta = artifact.metadata
    assert (meta["heads_per_layer_before"], meta["heads_per_layer_after"]) == (2, [1, 1])
    assert (meta["ffn_size_before"], meta["ffn_size_after"]) == (64, [24])
    assert meta["importance_examples"] == 40
    assert meta["importance_loss"] == ("kl_to_own_logits" if use_logits else "task_loss")
    assert sorted(meta["pruned_heads"]) == [0, 1] and all(len(v) == 1 for v in meta["pruned_heads"].values())
    # Per layer: one head of 16 dims out of q, k, v (in and bias) and the output projection; 40 neurons.
    removed = 2 * (3 * (32 * 16 + 16) + 32 * 16) + 2 * (40 * 32 + 40 + 40 * 32)
    assert meta["params_before"] - meta["params_after"] == removed

    config = json.loads((artifact.path / "config.json").read_text())
    assert config["intermediate_size"] == 24 and len(config["pruned_heads"]) == 2
    assert not list(artifact.path.glob("*.bin")) and not list(artifact.path.glob("*.pt"))
    pruned = AutoModelForSequenceClassification.from_pretrained(artifact.path)
    original, tokenizer = load_classifier(result.source.path)
    assert sum(p.numel() for p in pruned.parameters()) == meta["params_after"]
    assert torch.equal(pruned.classifier.weight, original.classifier.weight)  # head intact
    with torch.inference_mode():
        logits = pruned(**tokenizer(["i love this movie", "so sad"], padding=True, return_tensors="pt")).logits
    assert logits.shape == (2, 3)


@needs_transformers_4
def test_targets_larger_than_the_model_fail_the_step(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_task: dict[str, Any]
) -> None:
    result = run_pipeline(
        tiny_pipeline(tiny_bert, tiny_task, [_step(target_num_of_heads=4)], measure={"enabled": False})
    )
    assert result.exit_code == 1
    assert "has 2 heads and 64 FFN neurons per layer; cannot keep 4 and 64" in result.steps[0].error
