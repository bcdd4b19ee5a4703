"""bnb.int8 and bnb.4bit on the tiny Llama classifier: layers, the head, reloading, predictions, planning."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from slimkit.hardware import Hardware
from slimkit.planner import plan_pipeline
from slimkit.spec import pipeline_from_dict

needs_bnb = pytest.mark.skipif(find_spec("bitsandbytes") is None, reason="bitsandbytes is not installed")
TEXTS = ["i love this movie so much", "sad awful day", "the food was not very good but fun", "joy"]
CASES = [
    ("bnb.int8", {}, "Linear8bitLt", "int8"),
    ("bnb.4bit", {}, "Linear4bit", "nf4"),
    ("bnb.4bit", {"quant_type": "fp4", "double_quant": False, "compute_dtype": "float32"}, "Linear4bit", "fp4"),
]


@pytest.fixture(scope="session")
def tiny_llama64(tmp_path_factory: pytest.TempPathFactory, tiny_llama: Path) -> Path:
    """``tiny_llama`` widened to 64 (same tokenizer): bitsandbytes' 4-bit CPU path on avx512_bf16 CPUs
    repacks weights in blocks of 64 input and 32 output features and fails on narrower layers."""
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama-64")
    torch.manual_seed(0)
    config = LlamaConfig.from_pretrained(tiny_llama)
    config.hidden_size, config.intermediate_size, config.head_dim = 64, 128, 16
    LlamaForCausalLM(config).save_pretrained(folder)
    for f in tiny_llama.iterdir():
        if f.name not in ("config.json", "model.safetensors", "generation_config.json"):
            shutil.copy(f, folder / f.name)
    return folder


def _predict(predictor: Any) -> np.ndarray:
    return predictor(predictor.encode(TEXTS, max_length=32, pad_to_max=False))  # type: ignore[no-any-return]


@needs_bnb
@pytest.mark.parametrize(("technique", "config", "layer", "dtype"), CASES)
def test_quantized_forward_and_head_kept(
    technique: str, config: dict[str, Any], layer: str, dtype: str, plugins: Any, run_pipeline: Any,
    tiny_pipeline: Any, tiny_llama64: Path, tiny_task: dict[str, Any],
) -> None:  # fmt: skip
    import torch

    from slimkit_transformers.predictors import TorchPredictor

    steps = [{"name": "q", "technique": technique, "config": config}]
    result = run_pipeline(tiny_pipeline(tiny_llama64, tiny_task, steps, measure={"enabled": False}))
    assert result.exit_code == 0, [s.error for s in result.steps]
    artifact = result.steps[0].artifact
    assert artifact.format == "bnb"
    assert artifact.metadata["quantized_linears"] == 2 * 7  # q, k, v, o, gate, up, down in each of 2 layers
    assert artifact.metadata["kept_full_precision"] == ["score"]

    predictor = plugins.load_predictor(artifact, "cpu", 1)
    reference = TorchPredictor(result.source.path)
    layers = {type(m).__name__ for m in predictor.model.model.layers.modules()}
    assert layer in layers and "Linear" not in layers  # every Linear of the decoder layers is quantized
    head = predictor.model.score
    assert type(head) is torch.nn.Linear and head.weight.dtype == torch.float32
    assert torch.equal(head.weight, reference.model.score.weight)  # bit-identical after save and reload
    assert predictor.facts["head_checksum"] == reference.facts["head_checksum"] == artifact.metadata["head_checksum"]
    assert predictor.facts["dtype"] == dtype and predictor.facts["params"] == reference.facts["params"]
    logits = _predict(predictor)
    assert logits.shape == (4, 2) and np.isfinite(logits).all()
    np.testing.assert_allclose(logits, _predict(reference), atol=0.1)


@needs_bnb
def test_measured_in_the_protocol(plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_llama64: Path,
                                  tiny_task: dict[str, Any]) -> None:  # fmt: skip
    steps = [{"name": "nf4", "technique": "bnb.4bit"}]
    result = run_pipeline(tiny_pipeline(tiny_llama64, tiny_task, steps))
    assert result.exit_code == 0, [s.error for s in result.steps]
    metrics = {m.name for m in result.metrics[result.steps[0].artifact.key]}
    assert {"accuracy", "size_bytes"} <= metrics


def _hardware() -> Hardware:
    return Hardware(cpu_model="test CPU", arch="x86_64", logical_cores=2, physical_cores=2,
                    cpu_flags=["avx2", "avx512_vnni"], memory_bytes=8 << 30)  # fmt: skip


def _plan(slimkit_plugins: Any, steps: list[dict[str, Any]], device: str = "cpu") -> Any:
    pipeline = pipeline_from_dict({"model": "unused", "device": device, "steps": steps})
    return plan_pipeline(pipeline, plugins=slimkit_plugins, hardware=_hardware())


@pytest.mark.parametrize(
    ("step", "device", "warned"),
    [
        ({"technique": "bnb.4bit"}, "cpu", True),  # no goal: speed is not ruled out, so say it
        ({"technique": "bnb.4bit", "stage": "quantize", "goal": "speed"}, "cpu", True),
        ({"technique": "bnb.4bit", "stage": "quantize", "goal": "size"}, "cpu", False),
        ({"technique": "bnb.4bit"}, "cuda", False),
        ({"technique": "bnb.int8", "stage": "quantize", "goal": "speed"}, "cuda", True),
    ],
)
def test_planner_warns_when_speed_is_asked_where_it_is_slower(
    step: dict[str, Any], device: str, warned: bool, plugins: Any, slimkit_plugins: Any
) -> None:
    plan = _plan(slimkit_plugins, [step], device)
    assert plan.ok, plan.problems
    warnings = [w for w in plan.warnings if f"gives no speed-up on {device}" in w]
    assert bool(warnings) == warned, plan.warnings


def test_plan_refusals_name_the_step_and_field(plugins: Any, slimkit_plugins: Any) -> None:
    plan = _plan(slimkit_plugins, [{"name": "q4", "technique": "bnb.4bit", "config": {"quant_type": "int4"}}])
    assert plan.problems == ["step 1 (q4): config.quant_type: Input should be 'nf4' or 'fp4'"]
    plan = _plan(slimkit_plugins, [{"technique": "bnb.int8"}, {"technique": "bnb.4bit"}])
    assert any("bnb.int8 and bnb.4bit conflict" in p for p in plan.problems)
    plan = _plan(slimkit_plugins, [{"technique": "bnb.int8"}], device="mps")
    assert any("bnb.int8 runs on cpu, cuda, not mps" in p for p in plan.problems)
