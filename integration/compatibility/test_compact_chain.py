"""A BERT with attention heads removed (torch.structured-prune ``heads``) and a low-rank word-embedding
table (torch.low-rank-embeddings) goes on through the other plugins' steps: distillation, ONNX
export/optimize/quantize, OpenVINO export and NNCF int8 with 4-bit tables, torch dynamic int8, each
loading it through slimkit_transformers.compact; vocabulary pruning runs before the factorisation."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.skipif(
        any(importlib.util.find_spec(p) is None for p in ("slimkit_onnx", "slimkit_openvino", "slimkit_distill")),
        reason="needs the first-party plugins installed (scripts/setup)",
    ),
    pytest.mark.slimkit_plugins("transformers", "torch", "onnx", "openvino", "distill", "textpruner"),
]

PRUNE = {"name": "prune", "technique": "torch.structured-prune", "config": {"heads": 1, "importance": "magnitude"}}
LOW_RANK = {"name": "low-rank", "technique": "torch.low-rank-embeddings", "config": {"rank": 8}}
FAST = {"epochs": 1, "batch_size": 16, "max_length": 32}


@pytest.mark.parametrize(
    "steps",
    [
        [
            LOW_RANK,
            {"name": "export", "technique": "onnx.export"},
            {"name": "optimize", "technique": "onnx.optimize"},
            {"name": "quantize", "technique": "onnx.quantize-dynamic"},
        ],
        [
            {"name": "vocab", "technique": "textpruner.vocabulary"},
            LOW_RANK,
            {"name": "recover", "technique": "distill.kd", "config": {"student": {"from_step": "low-rank"}, **FAST}},
            {"name": "ov-export", "technique": "openvino.export"},
            {"name": "ov-int8", "technique": "openvino.int8", "config": {"embeddings": "int4"}},
        ],
        [LOW_RANK, {"name": "int8", "technique": "torch.dynamic-int8", "config": {"backend": "torch-ao-legacy"}}],
    ],
    ids=["onnx-int8", "distill-vocab-openvino", "torch-int8"],
)
def test_compact_bert_through_later_steps(steps: list[dict[str, Any]], plugins: Any, run_pipeline: Any,
                                         tiny_pipeline: Any, tiny_bert: Path,
                                         tiny_task: dict[str, Any]) -> None:  # fmt: skip
    result = run_pipeline(tiny_pipeline(tiny_bert, tiny_task, [PRUNE, *steps]))
    assert result.exit_code == 0, [s.error for s in result.steps]
    low_rank = next(s for s in result.steps if s.name == "low-rank")
    config = json.loads((low_rank.artifact.path / "config.json").read_text())
    assert (config["num_attention_heads"], config["attention_head_size"], config["embedding_rank"]) == (1, 16, 8)
    assert all(step.artifact is not None for step in result.steps)


def test_vocabulary_pruning_after_the_factorisation_is_refused_at_plan_time(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_task: dict[str, Any]
) -> None:
    from slimkit.errors import PlanRefused

    vocab = {"name": "vocab", "technique": "textpruner.vocabulary"}
    with pytest.raises(PlanRefused) as refused:
        run_pipeline(tiny_pipeline(tiny_bert, tiny_task, [LOW_RANK, vocab]))
    assert refused.value.exit_code == 3
    assert refused.value.problems == [
        "step 1 (low-rank) runs before step 2 (vocab), but torch.low-rank-embeddings declares it must come after "
        "'textpruner.vocabulary' (fix: reorder the steps, or set order = \"auto\")"
    ]
