"""gptq.quantize on the tiny Llama classifier: quantized layers, the head, reloading, predictions, refusals."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from slimkit.hardware import Hardware
from slimkit.planner import plan_pipeline
from slimkit.spec import pipeline_from_dict
from slimkit_gptq.quantize import group_size_problem

needs_gptqmodel = pytest.mark.skipif(find_spec("gptqmodel") is None, reason="GPTQModel is not installed")
TEXTS = ["i love this movie so much", "sad awful day", "the food was not very good but fun", "joy"]
TINY = {"bits": 4, "group_size": 32, "calibration_examples": 32, "calibration_tokens": 16}
SMOLLM2 = {"hidden_size": 576, "intermediate_size": 1536, "num_attention_heads": 9, "head_dim": 64}


@pytest.fixture(autouse=True)
def _two_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPTQMODEL_CPU_WORKERS", "2")  # GPTQModel needs 2 CPU workers at least


@needs_gptqmodel
def test_quantized_model_reloads_predicts_and_keeps_the_head(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_llama: Path, tiny_task: dict[str, Any]
) -> None:
    import torch

    from slimkit_transformers.predictors import TorchPredictor

    steps = [{"name": "q4", "technique": "gptq.quantize", "config": TINY}]
    result = run_pipeline(tiny_pipeline(tiny_llama, tiny_task, steps, measure={"enabled": False}))
    assert result.exit_code == 0, [s.error for s in result.steps]
    artifact = result.steps[0].artifact
    assert artifact.format == "gptq" and artifact.metadata["quantized_linears"] == 2 * 7
    assert artifact.metadata["calibration_examples"] == 32 and 1 < artifact.metadata["calibration_sequences"] < 32

    predictor = plugins.load_predictor(artifact, "cpu", 1)
    reference = TorchPredictor(result.source.path)
    head = predictor.model.score
    assert type(head) is torch.nn.Linear and head.weight.dtype == torch.float32
    assert torch.equal(head.weight, reference.model.score.weight)
    assert predictor.facts["head_checksum"] == reference.facts["head_checksum"] == artifact.metadata["head_checksum"]
    assert predictor.facts["params"] == reference.facts["params"] and predictor.facts["dtype"] == "int4 g32"
    encoded = predictor.encode(TEXTS, max_length=32, pad_to_max=False)
    logits = predictor(encoded)
    assert logits.shape == (4, 2) and np.isfinite(logits).all()
    expected = reference(reference.encode(TEXTS, max_length=32, pad_to_max=False))
    np.testing.assert_allclose(logits, expected, atol=0.1)


def test_eight_bits_on_cpu_is_refused_before_any_work(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_llama: Path, tiny_task: dict[str, Any]
) -> None:
    steps = [{"name": "q8", "technique": "gptq.quantize", "config": TINY | {"bits": 8}}]
    result = run_pipeline(tiny_pipeline(tiny_llama, tiny_task, steps, measure={"enabled": False}))
    assert result.exit_code == 1
    assert "step 1 (q8): config.bits: 8-bit GPTQ runs on CPU only through GPTQModel's TorchLinear" in (
        result.steps[0].error
    )
    assert "fix: use bits = 4 on CPU, or device = 'cuda'" in result.steps[0].error


def test_group_size_is_checked_again_when_the_step_starts(tiny_llama: Path) -> None:
    # After a prune step the planner cannot know the widths; the step checks before loading anything.
    from types import SimpleNamespace

    from slimkit.errors import SlimkitError
    from slimkit_gptq.quantize import check_group_size

    step = SimpleNamespace(
        index=2, name="q4", input=SimpleNamespace(path=tiny_llama), config=SimpleNamespace(group_size=64)
    )
    with pytest.raises(SlimkitError) as info:
        check_group_size(step)  # type: ignore[arg-type]
    assert str(info.value) == (
        "step 2 (q4): config.group_size: 64 does not divide the model's hidden_size 32, attention width "
        "(num_attention_heads * head_dim) 32 (fits: 32 or -1)"
    )


def test_group_size_is_checked_at_plan_time(
    plugins: Any, slimkit_plugins: Any, tiny_pipeline: Any, tiny_llama: Path, tiny_task: dict[str, Any]
) -> None:
    steps = [{"name": "q4", "technique": "gptq.quantize", "config": TINY | {"group_size": 64}}]
    plan = plan_pipeline(pipeline_from_dict(tiny_pipeline(tiny_llama, tiny_task, steps)), plugins=slimkit_plugins)
    assert plan.problems == [
        "step 1 (q4): config.group_size: 64 does not divide the model's hidden_size 32, attention width "
        "(num_attention_heads * head_dim) 32 (fits: 32 or -1)"
    ]
    steps[0]["config"]["group_size"] = 32
    assert plan_pipeline(pipeline_from_dict(tiny_pipeline(tiny_llama, tiny_task, steps)), plugins=slimkit_plugins).ok


def test_group_size_check_on_smollm2_dimensions() -> None:
    assert group_size_problem(64, SMOLLM2) is None and group_size_problem(32, SMOLLM2) is None
    assert group_size_problem(-1, SMOLLM2) is None
    assert group_size_problem(128, SMOLLM2) == (
        "128 does not divide the model's hidden_size 576, attention width (num_attention_heads * head_dim) 576 "
        "(fits: 32, 64 or -1)"
    )
    assert group_size_problem(96, SMOLLM2 | {"intermediate_size": 1504}) == (
        "96 does not divide the model's intermediate_size 1504 (fits: 32 or -1); hidden size 576"
    )


def _plan(slimkit_plugins: Any, steps: list[dict[str, Any]], task: dict[str, Any] | None, device: str = "cpu") -> Any:
    hardware = Hardware(cpu_model="test CPU", arch="x86_64", logical_cores=2, physical_cores=2,
                        cpu_flags=["avx2"], memory_bytes=8 << 30)  # fmt: skip
    pipeline = pipeline_from_dict({"model": "unused", "device": device, "steps": steps, "task": task})
    return plan_pipeline(pipeline, plugins=slimkit_plugins, hardware=hardware)


def test_plan_time_refusals_and_warnings(plugins: Any, slimkit_plugins: Any, tiny_task: dict[str, Any]) -> None:
    step = {"name": "q", "technique": "gptq.quantize"}
    plan = _plan(slimkit_plugins, [step | {"config": {"group_size": 0}}], tiny_task)
    assert plan.problems == [
        "step 1 (q): config.group_size: must be -1 (per output channel) or a positive number of weights"
    ]
    plan = _plan(slimkit_plugins, [step | {"config": {"bits": 5}}], tiny_task)
    assert plan.problems == ["step 1 (q): config.bits: Input should be 2, 3, 4 or 8"]
    plan = _plan(slimkit_plugins, [step], tiny_task, device="mps")
    assert "step 1 (q): gptq.quantize runs on cpu, cuda, not mps" in plan.problems
    plan = _plan(slimkit_plugins, [{"name": "q", "stage": "quantize", "goal": "speed"}], tiny_task)
    assert any("gptq.quantize gives no speed-up on cpu" in w for w in plan.warnings)
    # It calibrates on the task's training texts: a pipeline without a task is refused before any work.
    assert _plan(slimkit_plugins, [step], None).problems == [
        "step 1 (q): gptq.quantize reads the pipeline's task, and this pipeline has none (fix: add a [task] table)"
    ]
