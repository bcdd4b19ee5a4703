"""torch.magnitude-prune on tiny BERT and Llama models: exact sparsity, head intact, declared no speed-up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from slimkit_transformers.models import load_classifier

NO_MEASURE = {"enabled": False}


def _prune(run_pipeline: Any, tiny_pipeline: Any, model: Path, task: dict[str, Any], config: dict[str, Any]) -> Any:
    steps = [{"name": "sparse", "technique": "torch.magnitude-prune", "config": config}]
    result = run_pipeline(tiny_pipeline(model, task, steps, measure=NO_MEASURE))
    assert result.exit_code == 0, [s.error for s in result.steps]
    return result


def _linears(model: Any, skip: tuple[str, ...]) -> dict[str, torch.Tensor]:
    return {n: m.weight for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and not n.startswith(skip)}


def test_global_sparsity_is_exact_and_head_intact(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_task: dict[str, Any]
) -> None:
    result = _prune(run_pipeline, tiny_pipeline, tiny_bert, tiny_task, {"sparsity": 0.5})
    artifact = result.steps[0].artifact
    pruned, _ = load_classifier(artifact.path)
    source, _ = load_classifier(result.source.path)
    weights = _linears(pruned, ("classifier", "bert.pooler"))
    total = sum(w.numel() for w in weights.values())
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    assert zeros == round(0.5 * total) and artifact.metadata["sparsity_reached"] == zeros / total
    # Global ranking: what survives is at least as large as what was removed, across all matrices.
    originals = _linears(source, ("classifier", "bert.pooler"))
    kept = torch.cat([originals[n][w != 0].abs() for n, w in weights.items()])
    gone = torch.cat([originals[n][w == 0].abs() for n, w in weights.items()])
    assert kept.min() >= gone.max()
    for name in ("classifier.weight", "classifier.bias", "bert.pooler.dense.weight"):
        assert torch.equal(pruned.state_dict()[name], source.state_dict()[name])
    assert torch.equal(pruned.bert.embeddings.word_embeddings.weight, source.bert.embeddings.word_embeddings.weight)
    assert artifact.metadata["speedup_expected"] is False and "no faster" in artifact.metadata["note"]
    assert artifact.metadata["layer_sparsity_min"] < 0.5 < artifact.metadata["layer_sparsity_max"]
    # Permanent: no masks or reparametrisation left in the saved weights.
    assert not any(k.endswith(("_orig", "_mask")) for k in pruned.state_dict())


def test_per_layer_sparsity_on_llama(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_llama: Path, tiny_task: dict[str, Any]
) -> None:
    result = _prune(run_pipeline, tiny_pipeline, tiny_llama, tiny_task, {"sparsity": 0.3, "scope": "layer"})
    pruned, _ = load_classifier(result.steps[0].artifact.path)
    source, _ = load_classifier(result.source.path)
    weights = _linears(pruned, ("score",))
    assert len(weights) == 14  # 2 layers x (q, k, v, o, gate, up, down)
    for w in weights.values():
        assert int((w == 0).sum()) == round(0.3 * w.numel())
    assert torch.equal(pruned.score.weight, source.score.weight)
    meta = result.steps[0].artifact.metadata
    assert meta["layer_sparsity_min"] == pytest.approx(0.3, abs=1e-3) == meta["layer_sparsity_max"]


def test_embeddings_and_head_only_when_asked(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_task: dict[str, Any]
) -> None:
    config = {"sparsity": 0.4, "scope": "layer", "include_embeddings": True, "prune_head": True}
    result = _prune(run_pipeline, tiny_pipeline, tiny_bert, tiny_task, config)
    pruned, _ = load_classifier(result.steps[0].artifact.path)
    embeddings = pruned.bert.embeddings.word_embeddings.weight
    assert int((embeddings == 0).sum()) == round(0.4 * embeddings.numel())
    assert int((pruned.classifier.weight == 0).sum()) == round(0.4 * pruned.classifier.weight.numel())
    assert result.steps[0].artifact.metadata["head"] == "pruned"


def test_task_file_travels_and_planner_says_no_speedup(
    plugins: Any,
    slimkit_plugins: Any,
    run_pipeline: Any,
    tiny_pipeline: Any,
    tiny_bert: Path,
    tiny_task: dict[str, Any],
) -> None:
    from slimkit.planner import plan_pipeline
    from slimkit.spec import pipeline_from_dict

    steps = [
        {"name": "finetune", "technique": "transformers.finetune",
         "config": {"epochs": 1, "max_steps": 2, "batch_size": 16, "max_length": 16}},
        {"name": "sparse", "technique": "torch.magnitude-prune", "config": {"sparsity": 0.5}},
    ]  # fmt: skip
    pipeline = tiny_pipeline(tiny_bert, tiny_task, steps, measure=NO_MEASURE)
    result = run_pipeline(pipeline)
    assert result.exit_code == 0, [s.error for s in result.steps]
    tuned, sparse = (s.artifact.path for s in result.steps)
    assert json.loads((sparse / "slimkit-task.json").read_text()) == json.loads(
        (tuned / "slimkit-task.json").read_text()
    )
    plan = plan_pipeline(pipeline_from_dict(pipeline), plugins=slimkit_plugins)
    assert plan.ok and any("torch.magnitude-prune gives no speed-up on cpu" in w for w in plan.warnings)
