"""A BERT with attention heads removed (torch.structured-prune ``heads``) goes on through the other
plugins' steps: distillation, vocabulary pruning, ONNX export/optimize/quantize, OpenVINO export and
NNCF int8 with 4-bit tables, torch dynamic int8, each loading it through slimkit_transformers.head_pruned."""

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
FAST = {"epochs": 1, "batch_size": 16, "max_length": 32}


@pytest.mark.parametrize(
    "steps",
    [
        [
            {"name": "export", "technique": "onnx.export"},
            {"name": "optimize", "technique": "onnx.optimize"},
            {"name": "quantize", "technique": "onnx.quantize-dynamic"},
        ],
        [
            {"name": "recover", "technique": "distill.kd", "config": {"student": {"from_step": "prune"}, **FAST}},
            {"name": "vocab", "technique": "textpruner.vocabulary"},
            {"name": "ov-export", "technique": "openvino.export"},
            {"name": "ov-int8", "technique": "openvino.int8", "config": {"embeddings": "int4"}},
        ],
        [{"name": "int8", "technique": "torch.dynamic-int8", "config": {"backend": "torch-ao-legacy"}}],
    ],
    ids=["onnx-int8", "distill-vocab-openvino", "torch-int8"],
)
def test_head_pruned_bert_through_later_steps(steps: list[dict[str, Any]], plugins: Any, run_pipeline: Any,
                                              tiny_pipeline: Any, tiny_bert: Path,
                                              tiny_task: dict[str, Any]) -> None:  # fmt: skip
    result = run_pipeline(tiny_pipeline(tiny_bert, tiny_task, [PRUNE, *steps]))
    assert result.exit_code == 0, [s.error for s in result.steps]
    config = json.loads((result.steps[0].artifact.path / "config.json").read_text())
    assert (config["num_attention_heads"], config["attention_head_size"]) == (1, 16)
    assert all(step.artifact is not None for step in result.steps)
