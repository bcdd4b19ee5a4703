"""awq.quantize on tiny Llama classifiers: calibration, the GPTQ checkpoint, the head, reloading, refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import slimkit_awq
from slimkit.hardware import Hardware
from slimkit.planner import plan_pipeline
from slimkit.spec import pipeline_from_dict
from slimkit_awq.config import AwqConfig
from slimkit_awq.quantize import absorb_layers

TEXTS = ["i love this movie so much", "sad awful day", "the food was not very good but fun", "joy"]
TINY = {"group_size": 32, "calibration_examples": 32, "max_length": 16}
NO_MEASURE = {"enabled": False}


@pytest.fixture(autouse=True)
def _two_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPTQMODEL_CPU_WORKERS", "2")  # GPTQModel (which reloads the result) needs 2 at least


@pytest.fixture(scope="module")
def tiny_llama_mha(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama with as many key/value heads as query heads (no grouped-query attention), so
    that v_proj absorbs o_proj's scales too; hidden 64 so that group sizes 32 and 64 both fit."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama-mha")
    for tokenizer_file in tiny_llama.glob("tok*"):
        shutil.copy2(tokenizer_file, folder / tokenizer_file.name)
    base = LlamaConfig.from_pretrained(tiny_llama)
    config = LlamaConfig(
        vocab_size=base.vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
        pad_token_id=None, bos_token_id=base.bos_token_id, eos_token_id=base.eos_token_id,
    )  # fmt: skip
    torch.manual_seed(1)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def test_quantized_model_reloads_predicts_and_keeps_the_head(
    plugins: Any,
    slimkit_plugins: Any,
    run_pipeline: Any,
    tiny_pipeline: Any,
    tiny_llama_mha: Path,
    tiny_task: dict[str, Any],
) -> None:
    import torch
    from safetensors import safe_open

    from slimkit_transformers.predictors import TorchPredictor

    steps = [{"name": "awq4", "technique": "awq.quantize", "config": TINY}]
    result = run_pipeline(tiny_pipeline(tiny_llama_mha, tiny_task, steps, measure=NO_MEASURE))
    assert result.exit_code == 0, [s.error for s in result.steps]
    artifact = result.steps[0].artifact
    assert artifact.format == "gptq" and artifact.metadata["method"] == "awq"
    assert artifact.metadata["quantized_linears"] == 2 * 7 and artifact.metadata["kernel"] == "TorchFusedLinear"
    assert artifact.metadata["absorb_pairs"] == 4  # v_proj -> o_proj too: no grouped-query attention
    assert artifact.metadata["calibration_examples"] == 32 and artifact.metadata["calibration_sequences"] > 1

    # What INC wrote, as GPTQModel needs it: GPTQ v1, symmetric, damp_percent it accepts.
    quant = json.loads((artifact.path / "quantize_config.json").read_text())
    assert (quant["quant_method"], quant["bits"], quant["group_size"], quant["sym"]) == ("gptq", 4, 32, True)
    assert quant["damp_percent"] == 0.01
    assert json.loads((artifact.path / "config.json").read_text())["quantization_config"]["damp_percent"] == 0.01
    assert not any(p.name.startswith("quantize_config") for p in result.source.path.iterdir())  # input untouched
    assert artifact.metadata["dropped_export_tensors"] == 2 * 7 * 2  # zero biases and fp8 scales GPTQModel ignores
    with safe_open(artifact.path / "model.safetensors", "pt") as weights:
        assert not [k for k in weights.keys() if k.endswith((".bias", ".scale_bf16_to_fp8"))]  # noqa: SIM118

    # Reloaded through slimkit-gptq's predictor, as measurement does.
    predictor = slimkit_plugins.load_predictor(artifact, "cpu", 1)
    assert type(predictor).__name__ == "GptqPredictor"
    reference = TorchPredictor(result.source.path)
    head = predictor.model.score
    assert type(head) is torch.nn.Linear and head.weight.dtype == torch.float32
    assert torch.equal(head.weight, reference.model.score.weight)
    assert predictor.facts["head_checksum"] == reference.facts["head_checksum"] == artifact.metadata["head_checksum"]
    assert predictor.facts["params"] == reference.facts["params"] and predictor.facts["dtype"] == "int4 g32"
    logits = predictor(predictor.encode(TEXTS, max_length=32, pad_to_max=False))
    expected = reference(reference.encode(TEXTS, max_length=32, pad_to_max=False))
    assert logits.shape == (4, 2) and np.isfinite(logits).all()
    np.testing.assert_allclose(logits, expected, atol=0.1)
    assert (logits.argmax(-1) == expected.argmax(-1)).mean() >= 0.75


def test_qwen2_keeps_its_attention_biases(
    plugins: Any,
    slimkit_plugins: Any,
    run_pipeline: Any,
    tiny_pipeline: Any,
    tiny_task: dict[str, Any],
    tmp_path: Path,
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from slimkit_transformers.predictors import TorchPredictor
    from slimkit_transformers.testing import build_tiny_model

    source = build_tiny_model("qwen2", tmp_path / "tiny-qwen2")
    model = AutoModelForCausalLM.from_pretrained(source)
    torch.manual_seed(2)
    with torch.no_grad():
        for layer in model.model.layers:  # initialised to zero: give them values to lose
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_(std=0.1)
    model.save_pretrained(source)
    steps = [{"name": "awq4", "technique": "awq.quantize", "config": TINY}]
    result = run_pipeline(tiny_pipeline(source, tiny_task, steps, measure=NO_MEASURE))
    assert result.exit_code == 0, [s.error for s in result.steps]
    predictor = slimkit_plugins.load_predictor(result.steps[0].artifact, "cpu", 1)
    reference = TorchPredictor(result.source.path)
    bias = predictor.model.model.layers[0].self_attn.q_proj.bias
    expected_bias = reference.model.model.layers[0].self_attn.q_proj.bias
    assert torch.count_nonzero(expected_bias)
    torch.testing.assert_close(bias.float().cpu(), expected_bias, rtol=1e-3, atol=1e-4)  # kept, as float16
    logits = predictor(predictor.encode(TEXTS, max_length=32, pad_to_max=False))
    expected = reference(reference.encode(TEXTS, max_length=32, pad_to_max=False))
    np.testing.assert_allclose(logits, expected, atol=0.1)


def test_absorb_pairs_follow_the_attention_layout() -> None:
    mha = SimpleNamespace(model_type="llama", num_attention_heads=9, num_key_value_heads=9)
    gqa = SimpleNamespace(model_type="llama", num_attention_heads=9, num_key_value_heads=3)  # SmolLM2-135M
    assert absorb_layers(mha)["self_attn.v_proj"] == ["self_attn.o_proj"]
    assert absorb_layers(gqa) == {
        "input_layernorm": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
        "post_attention_layernorm": ["mlp.gate_proj", "mlp.up_proj"],
        "mlp.up_proj": ["mlp.down_proj"],
    }


def test_group_size_is_checked_at_plan_time_and_when_the_step_starts(
    plugins: Any, slimkit_plugins: Any, tiny_pipeline: Any, tiny_llama: Path, tiny_task: dict[str, Any]
) -> None:
    from slimkit.errors import SlimkitError
    from slimkit_awq.quantize import check_group_size

    expected = (
        "config.group_size: 64 does not divide the model's hidden_size 32, attention width "
        "(num_attention_heads * head_dim) 32 (fits: 32 or -1)"
    )
    steps = [{"name": "awq4", "technique": "awq.quantize", "config": TINY | {"group_size": 64}}]
    plan = plan_pipeline(pipeline_from_dict(tiny_pipeline(tiny_llama, tiny_task, steps)), plugins=slimkit_plugins)
    assert plan.problems == [f"step 1 (awq4): {expected}"]
    # After a prune step the planner cannot know the widths; the step checks before loading anything.
    config = AwqConfig(group_size=64)
    step = SimpleNamespace(index=2, name="awq4", input=SimpleNamespace(path=tiny_llama), config=config)
    with pytest.raises(SlimkitError) as info:
        check_group_size(step)  # type: ignore[arg-type]
    assert str(info.value) == f"step 2 (awq4): {expected}"


def _plan(slimkit_plugins: Any, steps: list[dict[str, Any]], task: dict[str, Any] | None, device: str = "cpu") -> Any:
    hardware = Hardware(cpu_model="test CPU", arch="x86_64", logical_cores=2, physical_cores=2,
                        cpu_flags=["avx2"], memory_bytes=8 << 30)  # fmt: skip
    pipeline = pipeline_from_dict({"model": "unused", "device": device, "steps": steps, "task": task})
    return plan_pipeline(pipeline, plugins=slimkit_plugins, hardware=hardware)


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"group_size": 48}, "config.group_size: Input should be -1, 32, 64, 128 or 256"),
        ({"bits": 8}, "config.bits: Input should be 4"),
        ({"max_length": 4}, "config.max_length: Input should be greater than or equal to 8"),
        ({"calibration_examples": 0}, "config.calibration_examples: Input should be greater than or equal to 1"),
        ({"n_grid": 20}, "config.n_grid: unknown option"),
    ],
)
def test_bad_config_is_refused_in_one_line(
    plugins: Any, slimkit_plugins: Any, tiny_task: dict[str, Any], config: dict[str, Any], problem: str
) -> None:
    plan = _plan(slimkit_plugins, [{"name": "q", "technique": "awq.quantize", "config": config}], tiny_task)
    assert plan.problems == [f"step 1 (q): {problem}"]


def test_plan_time_refusals_and_warnings(plugins: Any, slimkit_plugins: Any, tiny_task: dict[str, Any]) -> None:
    step = {"name": "q", "technique": "awq.quantize"}
    assert (
        "step 1 (q): awq.quantize runs on cpu, not cuda" in _plan(slimkit_plugins, [step], tiny_task, "cuda").problems
    )
    assert any("awq.quantize gives no speed-up on cpu" in w for w in _plan(slimkit_plugins, [step], tiny_task).warnings)
    assert _plan(slimkit_plugins, [step], None).problems == [
        "step 1 (q): awq.quantize reads the pipeline's task, and this pipeline has none (fix: add a [task] table)"
    ]


def test_recipe_is_registered_for_decoders(plugins: Any, slimkit_plugins: Any) -> None:
    recipe = slimkit_plugins.recipes.get("awq.int4")
    assert recipe is not None and recipe.plugin == "awq"
    assert recipe.kinds == ["decoder"] and "size" in recipe.goals
    assert [s.technique for s in recipe.steps] == ["awq.quantize"]


def test_importing_the_plugin_is_cheap() -> None:
    import subprocess
    import sys

    code = (
        "import sys, slimkit_awq; print([m for m in ('torch', 'neural_compressor', 'gptqmodel') if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    assert slimkit_awq.FORMAT == "gptq"  # slimkit-gptq's, so its predictor measures the result
