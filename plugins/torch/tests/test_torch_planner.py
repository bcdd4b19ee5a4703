"""Declarations at plan time, and the issue's pipeline planned and run end to end on CPU."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from slimkit.hardware import Hardware
from slimkit.planner import plan_pipeline
from slimkit.spec import pipeline_from_dict

TINY_TRAINING = {"epochs": 1, "max_steps": 3, "batch_size": 16, "learning_rate": 1e-3, "max_length": 16}
FINETUNE = {"name": "finetune", "technique": "transformers.finetune", "config": TINY_TRAINING}
STRUCTURED = {
    "name": "prune",
    "technique": "torch.structured-prune",
    "config": {"ffn_ratio": 0.5, "layer_indices": [1], "calibration_examples": 32},
}
INT8 = {"name": "int8", "technique": "torch.dynamic-int8"}
HALF = {"name": "bf16", "technique": "torch.half"}


def _hardware(flags: list[str], arch: str = "x86_64") -> Hardware:
    return Hardware(cpu_model="test CPU", arch=arch, logical_cores=2, physical_cores=2, cpu_flags=flags,
                    memory_bytes=8 << 30)  # fmt: skip


def _plan(slimkit_plugins: Any, steps: list[dict[str, Any]], hardware: Hardware | None = None, **fields: Any) -> Any:
    pipeline = pipeline_from_dict({"model": "unused", "device": "cpu", "steps": steps, **fields})
    return plan_pipeline(pipeline, plugins=slimkit_plugins, hardware=hardware or _hardware(["avx2", "avx512_vnni"]))


def test_int8_before_finetune_is_refused_with_the_reason(plugins: Any, slimkit_plugins: Any) -> None:
    plan = _plan(slimkit_plugins, [INT8, FINETUNE])
    assert not plan.ok
    text = "\n".join(plan.problems)
    assert "transformers.finetune needs transformers input but step 1 gives torch-int8" in text
    assert "torch.dynamic-int8 declares it must come after 'train'" in text


def test_quantization_after_pruning_and_training(plugins: Any, slimkit_plugins: Any, tiny_task: dict[str, Any]) -> None:
    assert _plan(slimkit_plugins, [FINETUNE, STRUCTURED, FINETUNE | {"name": "recover"}, INT8], task=tiny_task).ok
    plan = _plan(slimkit_plugins, [HALF, STRUCTURED], task=tiny_task)
    assert any("torch.half declares it must come after 'prune'" in p for p in plan.problems)
    plan = _plan(slimkit_plugins, [STRUCTURED, HALF, INT8], task=tiny_task)
    assert any("torch.half and torch.dynamic-int8 conflict" in p for p in plan.problems)
    auto = _plan(slimkit_plugins, [INT8, STRUCTURED], order="auto", task=tiny_task)
    assert auto.ok and [s.name for s in auto.steps] == ["prune", "int8"]


def test_structured_prune_needs_a_task(plugins: Any, slimkit_plugins: Any) -> None:
    plan = _plan(slimkit_plugins, [STRUCTURED])
    assert [p for p in plan.problems if "torch.structured-prune" in p] == [
        "step 1 (prune): torch.structured-prune reads the pipeline's task, and this pipeline has none "
        "(fix: add a [task] table)"
    ]


NO_VNNI = "this CPU lacks avx512_vnni, so little speed-up is expected"


@pytest.mark.parametrize(
    ("flags", "arch", "problems", "warnings"),
    [
        (["avx2", "avx512_vnni"], "x86_64", [], []),
        (["avx2"], "x86_64", [], [NO_VNNI]),
        (["avx512f"], "x86_64", ["needs CPU features avx2"], [NO_VNNI]),
        (["neon"], "aarch64", ["needs a x86_64 or AMD64 CPU, this is aarch64", "needs CPU features avx2"], [NO_VNNI]),
    ],
)
def test_int8_hardware(
    plugins: Any, slimkit_plugins: Any, flags: list[str], arch: str, problems: list[str], warnings: list[str]
) -> None:
    plan = _plan(slimkit_plugins, [INT8], _hardware(flags, arch))
    prefix = "step 1 (int8): torch.dynamic-int8 "
    assert [p for p in plan.problems if "torch.dynamic-int8" in p] == [prefix + p for p in problems]
    assert [w for w in plan.warnings if "dynamic-int8" in w] == [prefix + w for w in warnings]


def test_half_warns_without_bf16_hardware(plugins: Any, slimkit_plugins: Any) -> None:
    assert not _plan(slimkit_plugins, [HALF], _hardware(["avx2", "avx512_bf16"])).warnings
    plan = _plan(slimkit_plugins, [HALF], _hardware(["avx2"]))
    assert plan.ok and plan.warnings == [
        "step 1 (bf16): torch.half this CPU lacks avx512_bf16 / amx_bf16, so little speed-up is expected"
    ]


def test_prune_finetune_int8_runs_and_is_measured(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_multilabel_task: dict[str, Any]
) -> None:
    # The default (torchao) backend, eager: compiling would cost minutes and test torch.compile, not us.
    steps = [FINETUNE, STRUCTURED, FINETUNE | {"name": "recover"}, INT8 | {"config": {"compile": False}}]
    result = run_pipeline(tiny_pipeline(tiny_bert, tiny_multilabel_task, steps, baseline="finetune"))
    assert result.exit_code == 0, ([s.error for s in result.steps], result.measure_errors)
    tuned, pruned, recovered, int8 = (s.artifact for s in result.steps)
    assert pruned.metadata["layers"]["after"] == 1 and int8.format == "torch-int8"
    # The tuned threshold travels with the model through every step.
    thresholds = {
        json.loads((a.path / "slimkit-task.json").read_text())["threshold"] for a in (tuned, pruned, recovered, int8)
    }
    assert len(thresholds) == 1
    metrics = {m.name: m for m in result.metrics[int8.key]}
    assert {"latency_ms.b1.s16", "latency_ms.b4.s16", "micro_f1", "agreement", "params", "size_bytes"} <= set(metrics)
    assert metrics["params"].value == {m.name: m for m in result.metrics[recovered.key]}["params"].value
