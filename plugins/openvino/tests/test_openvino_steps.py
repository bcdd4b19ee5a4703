"""Convert and quantize tiny classifiers through real pipelines; declarations, bad configs, recipe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import slimkit_openvino
from slimkit_openvino import ir

NO_MEASURE = {"enabled": False}
SIDECARS = {ir.MODEL_FILE, ir.WEIGHTS_FILE, ir.MANIFEST, "config.json", "tokenizer.json", "tokenizer_config.json"}
FINETUNE = {"name": "finetune", "technique": "transformers.finetune", "config": {"max_steps": 4, "batch_size": 16}}


def _files(step: Any) -> set[str]:
    return {p.name for p in step.artifact.path.iterdir()}


def test_bert_export_and_int8(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_multilabel_task: dict[str, Any]
) -> None:
    steps = [
        FINETUNE,
        {"name": "ov-export", "technique": "openvino.export"},
        {"name": "ov-int8", "technique": "openvino.int8", "config": {"calibration_examples": 32}},
    ]
    pipe = tiny_pipeline(tiny_bert, tiny_multilabel_task, steps, baseline="finetune", measure={"latency": False})
    result = run_pipeline(pipe)
    assert result.exit_code == 0, ([s.error for s in result.steps], result.measure_errors)
    tuned, export, int8 = result.steps

    # Export: parity with torch on the task's eval texts (f32), a complete deployable folder.
    facts = export.artifact.metadata
    assert export.artifact.format == "openvino"
    assert facts["parity"]["within_tolerance"] and facts["parity"]["max_abs_diff"] < 1e-4
    assert facts["parity"]["examples"] == 40 and facts["parity"]["inputs"] == "40 eval texts of the task"
    assert facts["input_names"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert SIDECARS | {"slimkit-task.json"} <= _files(export)
    task_file = json.loads((export.artifact.path / "slimkit-task.json").read_text())
    assert task_file == json.loads((tuned.artifact.path / "slimkit-task.json").read_text())
    config = json.loads((export.artifact.path / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    manifest = ir.read_manifest(export.artifact.path)
    assert manifest["precision"] == "float32" and manifest["inference_precision"] == "f32"
    assert manifest["head_constants"] and manifest["head_ops"] and manifest["history"] == ["openvino.export"]

    # int8: FakeQuantize inserted, head float, sidecars carried, agreement with its input recorded.
    meta = int8.artifact.metadata
    assert meta["precision"] == "int8" and meta["mode"] == "ptq" and meta["fake_quantize_ops"] > 0
    assert meta["calibration_examples"] == 32 and meta["calibration_split"] == "train"
    assert meta["head_kept_float"] is True and meta["head_inputs_restored"] == 2  # SmoothQuant undone on the head
    assert meta["agreement_with_input"]["examples"] == 40 and meta["agreement_with_input"]["max_abs_diff"] < 0.1
    assert SIDECARS | {"slimkit-task.json"} <= _files(int8)
    assert ir.read_manifest(int8.artifact.path)["history"] == ["openvino.export", "openvino.int8"]
    # int8 weights: the .bin shrinks although the head and the embeddings stay float.
    assert meta["ir_bytes"] < facts["ir_bytes"]

    # Measured in the same session as the torch baseline, with the baseline's head.
    for step in (export, int8):
        metrics = {m.name: m for m in result.metrics[step.artifact.key]}
        assert metrics["micro_f1"].value is not None
        assert metrics["agreement"].details["head_changed"] is False, (step.name, metrics["agreement"].details)
    exported = {m.name: m for m in result.metrics[export.artifact.key]}
    assert exported["agreement"].value == 1.0


def test_accuracy_control_and_weights_only(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_pair_task: dict[str, Any]
) -> None:
    steps = [
        {"name": "ov-export", "technique": "openvino.export"},
        {
            "name": "ov-int8-ac",
            "technique": "openvino.int8",
            "config": {
                "mode": "accuracy-control",
                "calibration_examples": 16,
                "validation_examples": 12,
                "max_drop": 0.5,
                "max_iterations": 1,
            },
        },
    ]
    weights = {"name": "ov-int8-w", "technique": "openvino.int8", "config": {"mode": "weights-only"}}
    first = run_pipeline(tiny_pipeline(tiny_bert, tiny_pair_task, steps, measure=NO_MEASURE))
    assert first.exit_code == 0, [s.error for s in first.steps]
    export, controlled = first.steps
    # A sentence-pair task: token types are an input of the IR, and calibration ran on pairs.
    assert export.artifact.metadata["input_names"] == ["input_ids", "attention_mask", "token_type_ids"]
    meta = controlled.artifact.metadata
    assert meta["precision"] == "int8-accuracy-control" and meta["fake_quantize_ops"] > 0
    assert meta["metric"] == "accuracy" and meta["validation_examples"] == 12 and meta["max_drop"] == 0.5

    second = run_pipeline(tiny_pipeline(tiny_bert, tiny_pair_task, [steps[0], weights], measure=NO_MEASURE))
    assert second.exit_code == 0, [s.error for s in second.steps]
    compressed = second.steps[1].artifact.metadata
    assert compressed["precision"] == "int8-weights" and compressed["fake_quantize_ops"] == 0
    assert compressed["low_precision_constants"] > 0 and compressed["head_kept_float"] is True
    assert "calibration_examples" not in compressed  # no texts are used


def _low_bit_gathers(folder: Path) -> int:
    """Embedding lookups (Gather) whose table is stored in 4 bits."""
    import openvino as ov

    model = ov.Core().read_model(str(folder / ir.MODEL_FILE))
    four = {"u4", "i4"}
    found = 0
    for op in model.get_ops():
        if op.get_type_name() != "Gather":
            continue
        table = op.input_value(0).get_node()
        while table.get_type_name() != "Constant" and table.get_input_size():  # the decompression ops
            table = table.input_value(0).get_node()
        found += table.get_element_type().get_type_name() in four
    return found


def test_int4_weights_embeddings_included(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_multilabel_task: dict[str, Any]
) -> None:
    export = {"name": "ov-export", "technique": "openvino.export"}
    steps = [
        FINETUNE,
        export,
        {"name": "ov-int4", "technique": "openvino.int4"},
    ]
    pipe = tiny_pipeline(tiny_bert, tiny_multilabel_task, steps, baseline="finetune", measure={"latency": False})
    result = run_pipeline(pipe)
    assert result.exit_code == 0, ([s.error for s in result.steps], result.measure_errors)
    _, exported, int4 = result.steps
    meta = int4.artifact.metadata
    assert meta["precision"] == "int4-weights" and meta["fake_quantize_ops"] == 0
    assert meta["symmetric"] is True and meta["group_size"] == 32 and meta["all_layers"] is True
    assert meta["low_precision_constants"] >= meta["four_bit_constants"] > 0 and meta["head_kept_float"] is True
    assert "calibration_examples" not in meta  # data-free unless a data-aware method or ratio < 1 asks for texts
    assert _low_bit_gathers(int4.artifact.path) >= 1  # the word embeddings are 4-bit too
    # Fewer than 8 bits a float weight: 4 bits plus a 16-bit scale per group of 32.
    assert meta["ir_bytes"] < exported.artifact.metadata["ir_bytes"] / 4
    assert ir.read_manifest(int4.artifact.path)["history"] == ["openvino.export", "openvino.int4"]
    assert SIDECARS | {"slimkit-task.json"} <= _files(int4)
    # The predictor runs it in the same session as the torch baseline, with the baseline's head.
    metrics = {m.name: m for m in result.metrics[int4.artifact.key]}
    assert metrics["micro_f1"].value is not None
    assert metrics["agreement"].details["head_changed"] is False


def test_int8_with_four_bit_embeddings(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_task: dict[str, Any]
) -> None:
    export = {"name": "ov-export", "technique": "openvino.export"}
    for mode in ("ptq", "weights-only"):
        config = {"mode": mode, "embeddings": "int4", "calibration_examples": 16}
        step = {"name": "ov-int8", "technique": "openvino.int8", "config": config}
        result = run_pipeline(tiny_pipeline(tiny_bert, tiny_task, [export, step], measure=NO_MEASURE))
        assert result.exit_code == 0, [s.error for s in result.steps]
        exported, quantized = result.steps
        meta = quantized.artifact.metadata
        assert meta["embeddings"] == "int4" and _low_bit_gathers(quantized.artifact.path) >= 1, mode
        assert (meta["fake_quantize_ops"] > 0) == (mode == "ptq") and meta["head_kept_float"] is True
        assert meta["ir_bytes"] < exported.artifact.metadata["ir_bytes"] / 3


def test_int4_data_aware_on_a_decoder_and_a_bad_group_size(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_llama: Path, tiny_task: dict[str, Any]
) -> None:
    export = {"name": "ov-export", "technique": "openvino.export"}
    aware = {
        "name": "ov-int4",
        "technique": "openvino.int4",
        "config": {"symmetric": False, "ratio": 0.5, "scale_estimation": True, "awq": True, "calibration_examples": 16},
    }
    result = run_pipeline(tiny_pipeline(tiny_llama, tiny_task, [export, aware], measure=NO_MEASURE))
    assert result.exit_code == 0, [s.error for s in result.steps]
    meta = result.steps[1].artifact.metadata
    assert meta["calibration_examples"] == 16 and meta["calibration_split"] == "train"
    assert meta["scale_estimation"] is True and meta["awq"] is True and meta["ratio"] == 0.5
    assert meta["low_precision_constants"] > 0 and meta["head_kept_float"] is True

    # A group the layers' width (32) does not divide: refused when asked to, adjusted by default.
    refuse = {"group_size": 48, "group_size_fallback": "error"}
    odd = {"name": "ov-int4", "technique": "openvino.int4", "config": refuse}
    failed = run_pipeline(tiny_pipeline(tiny_llama, tiny_task, [export, odd], measure=NO_MEASURE))
    assert failed.exit_code != 0
    error = failed.steps[1].error
    assert error is not None and "\n" not in error and "openvino.int4" in error and "group_size" in error, error
    odd["config"] = {"group_size": 48}
    adjusted = run_pipeline(tiny_pipeline(tiny_llama, tiny_task, [export, odd], measure=NO_MEASURE))
    assert adjusted.exit_code == 0, [s.error for s in adjusted.steps]
    assert adjusted.steps[1].artifact.metadata["four_bit_constants"] > 0


def test_declarations_bad_configs_and_order(
    plugins: Any, tiny_bert: Path, tiny_task: dict[str, Any], slimkit_plugins: Any
) -> None:
    from slimkit.planner import plan_pipeline
    from slimkit.spec import pipeline_from_dict

    techniques = {t.name: t for t in slimkit_plugins.techniques.of_plugin("openvino")}
    assert set(techniques) == {"openvino.export", "openvino.int8", "openvino.int4"}
    assert techniques["openvino.export"].consumes == ["transformers"]
    assert techniques["openvino.export"].produces == "openvino"
    assert {n for n, t in techniques.items() if t.needs_task} == {"openvino.int8", "openvino.int4"}

    def plan(*steps: dict[str, Any], task: bool = True) -> Any:
        data: dict[str, Any] = {"model": str(tiny_bert), "steps": list(steps), "device": "cpu"}
        if task:
            data["task"] = tiny_task
        return plan_pipeline(pipeline_from_dict(data), plugins=slimkit_plugins)

    export = {"name": "ov-export", "technique": "openvino.export"}
    assert plan(export).ok
    bad_mode = plan(export, {"name": "q", "technique": "openvino.int8", "config": {"mode": "qat"}})
    assert len(bad_mode.problems) == 1 and "\n" not in bad_mode.problems[0]
    assert bad_mode.problems[0].startswith("step 2 (q): config.mode:")
    bad_drop = plan(export, {"name": "q", "technique": "openvino.int8", "config": {"max_drop": 0}})
    assert bad_drop.problems == ["step 2 (q): config.max_drop: Input should be greater than 0"]
    tables = {"mode": "accuracy-control", "embeddings": "int4"}
    late = plan(export, {"name": "q", "technique": "openvino.int8", "config": tables})
    assert len(late.problems) == 1 and "accuracy-control" in late.problems[0] and "\n" not in late.problems[0]
    no_group = plan(export, {"name": "q", "technique": "openvino.int4", "config": {"group_size": 0}})
    assert len(no_group.problems) == 1 and no_group.problems[0].startswith("step 2 (q): config.group_size:")
    typo = plan({"name": "ov-export", "technique": "openvino.export", "config": {"precision": "f32"}})
    assert len(typo.problems) == 1 and "config.precision" in typo.problems[0]
    unexported = plan({"technique": "openvino.int8"})
    assert any("add a step such as openvino.export" in p for p in unexported.problems)
    no_task = plan(export, {"technique": "openvino.int8"}, task=False)
    assert any("task" in p for p in no_task.problems)


def test_recipe_is_registered_for_encoders_and_decoders(plugins: Any, slimkit_plugins: Any) -> None:
    recipe = slimkit_plugins.recipes.get("openvino.int8")
    assert recipe is not None and recipe.plugin == "openvino"
    assert recipe.kinds == ["encoder", "decoder"] and "speed" in recipe.goals
    assert [s.technique for s in recipe.steps] == ["openvino.export", "openvino.int8"]


def test_importing_the_plugin_is_cheap() -> None:
    import subprocess
    import sys

    code = "import sys, slimkit_openvino; print([m for m in ('torch', 'openvino', 'nncf') if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    assert slimkit_openvino.FORMAT == "openvino"
