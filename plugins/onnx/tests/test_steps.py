"""Export, optimise and quantize tiny BERT and Llama classifiers through real pipelines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import slimkit_onnx
import slimkit_onnx.export as onnx_export
from slimkit_onnx import graph

SIDECARS = {"model.onnx", "slimkit-onnx.json", "config.json", "tokenizer.json", "tokenizer_config.json"}
NO_MEASURE = {"enabled": False}


def _artifact_files(step: Any) -> set[str]:
    return {p.name for p in step.artifact.path.iterdir()}


def _op_counts(step: Any) -> dict[str, int]:
    return graph.op_counts(graph.load_graph(step.artifact.path))


def _assert_int8_logits_close(meta: dict[str, Any]) -> None:
    """int8 against its float input on the 40 eval texts, by logits, not predictions: after two
    steps the tiny model's sigmoid outputs all sit at the threshold, so a rounding of 1e-3 can flip
    every prediction (bench/onnx.py measures agreement on a fine-tuned model)."""
    compared = meta["agreement_with_input"]
    assert compared["examples"] == 40 and compared["max_abs_diff"] < 0.05


def test_bert_export_optimize_quantize_dynamic(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_multilabel_task: dict[str, Any]
) -> None:
    steps = [
        {"name": "finetune", "technique": "transformers.finetune", "config": {"max_steps": 2, "batch_size": 16}},
        {"name": "export", "technique": "onnx.export"},
        {"name": "optimize", "technique": "onnx.optimize"},
        {"name": "int8", "technique": "onnx.quantize-dynamic"},
    ]
    pipe = tiny_pipeline(tiny_bert, tiny_multilabel_task, steps, baseline="finetune", measure={"latency": False})
    result = run_pipeline(pipe)
    assert result.exit_code == 0, [s.error for s in result.steps]
    tuned, export, optimize, int8 = result.steps

    # Export: parity with torch on the task's eval texts, a complete deployable folder.
    facts = export.artifact.metadata
    assert export.artifact.format == "onnx"
    assert facts["parity"]["within_tolerance"] and facts["parity"]["max_abs_diff"] < 1e-5
    assert facts["parity"]["examples"] == 40 and facts["parity"]["inputs"] == "40 eval texts of the task"
    assert facts["input_names"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert facts["exporter"] == "torchscript" and facts["opset"] == 17
    assert SIDECARS | {"slimkit-task.json"} <= _artifact_files(export)
    task_file = json.loads((export.artifact.path / "slimkit-task.json").read_text())
    assert task_file == json.loads((tuned.artifact.path / "slimkit-task.json").read_text())
    labels = json.loads((export.artifact.path / "config.json").read_text())["id2label"]
    assert list(labels.values()) == ["positive", "negative", "mixed"]
    session = graph.open_session(export.artifact.path)
    assert [tuple(i.shape) for i in session.get_inputs()] == [("batch", "sequence")] * 3  # dynamic axes

    # Optimise: every BERT fusion, recorded in the metadata.
    assert optimize.artifact.metadata["fused_ops"] == {
        "Attention": 2, "BiasGelu": 2, "EmbedLayerNormalization": 1, "SkipLayerNormalization": 4,
    }  # fmt: skip
    assert optimize.artifact.metadata["op_counts"]["Attention"] == 2
    assert optimize.artifact.metadata["parity"]["within_tolerance"]
    assert optimize.artifact.metadata["warnings"] == []
    assert SIDECARS | {"slimkit-task.json"} <= _artifact_files(optimize)

    # Dynamic int8: integer ops, embeddings in int8, head in float and equal to the baseline's.
    meta = int8.artifact.metadata
    assert meta["integer_ops"] | {"DequantizeLinear": 0} == {
        "DequantizeLinear": 0, "DynamicQuantizeLinear": 9, "MatMulInteger": 7, "QAttention": 2,
        "QEmbedLayerNormalization": 1,
    }  # fmt: skip
    assert _op_counts(int8)["QAttention"] == 2
    assert meta["op_types"] == ["MatMul", "Attention", "Gather", "EmbedLayerNormalization"]
    assert meta["int8_weight_share"] > 0.95 and meta["head_kept_float"] is True
    assert meta["excluded_nodes"] == ["/model/classifier/Gemm"]
    _assert_int8_logits_close(meta)
    manifest = graph.read_manifest(int8.artifact.path)
    assert manifest["precision"] == "int8-dynamic"
    assert manifest["history"] == ["onnx.export", "onnx.optimize", "onnx.quantize-dynamic"]

    # Measured with the torch baseline in one session, through the ORT predictor.
    by_key = {s.name: {m.name: m for m in result.metrics[s.artifact.key]} for s in result.steps}
    for name in ("export", "optimize", "int8"):
        agreement = by_key[name]["agreement"]
        assert agreement.details["head_changed"] is False  # same head checksum as the torch model
        assert {"micro_f1", "jaccard", "size_bytes", "params"} <= set(by_key[name])
    assert by_key["export"]["micro_f1"].value == by_key["finetune"]["micro_f1"].value
    assert by_key["export"]["params"].value == by_key["finetune"]["params"].value
    assert by_key["int8"]["size_bytes"].value < by_key["optimize"]["size_bytes"].value


def test_llama_export_optimize_both_quantizations(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_llama: Path, tiny_task: dict[str, Any]
) -> None:
    steps = [
        {"name": "export", "technique": "onnx.export"},
        {"name": "optimize", "technique": "onnx.optimize"},
        {"name": "int8", "technique": "onnx.quantize-dynamic"},
    ]
    result = run_pipeline(tiny_pipeline(tiny_llama, tiny_task, steps, measure=NO_MEASURE))
    assert result.exit_code == 0, [s.error for s in result.steps]
    export, optimize, int8 = result.steps
    assert export.artifact.metadata["input_names"] == ["input_ids", "attention_mask"]
    assert export.artifact.metadata["parity"]["within_tolerance"]
    assert graph.read_manifest(export.artifact.path)["decoder"] is True
    assert optimize.artifact.metadata["model_type"] == "generic" and optimize.artifact.metadata["fused_ops"] == {}
    assert optimize.artifact.metadata["optimizer"] == "onnxruntime graph optimisation, level 2"
    assert optimize.artifact.metadata["parity"]["max_abs_diff"] < 1e-5
    assert int8.artifact.metadata["integer_ops"]["MatMulInteger"] == 14
    assert int8.artifact.metadata["head_kept_float"] is True

    static = [
        steps[0],
        {"name": "static", "technique": "onnx.quantize-static", "config": {"calibration_method": "entropy"}},
    ]
    result = run_pipeline(tiny_pipeline(tiny_llama, tiny_task, static, name="static", measure=NO_MEASURE))
    assert result.exit_code == 0, [s.error for s in result.steps]
    meta = result.steps[1].artifact.metadata
    assert result.steps[0].status == "done"
    assert meta["precision"] == "int8-static-qdq" and meta["calibration_method"] == "entropy"
    assert meta["op_types"] == ["MatMul", "Gather"] and meta["shape_inference"] is True
    assert meta["integer_ops"]["QuantizeLinear"] > 0 and meta["integer_ops"]["DequantizeLinear"] > 0
    assert meta["calibration_examples"] == 96 and meta["calibration_split"] == "train"  # 120 rows less 20% validation
    assert meta["head_kept_float"] is True and meta["excluded_nodes"] == ["/model/score/MatMul"]


@pytest.mark.parametrize("method", ["minmax", "percentile"])
def test_bert_static_qdq_on_the_optimised_graph(
    plugins: Any,
    run_pipeline: Any,
    tiny_pipeline: Any,
    tiny_bert: Path,
    tiny_multilabel_task: dict[str, Any],
    method: str,
) -> None:
    steps = [
        {"name": "export", "technique": "onnx.export"},
        {"name": "optimize", "technique": "onnx.optimize"},
        {"name": "static", "technique": "onnx.quantize-static", "config": {"calibration_method": method}},
    ]
    result = run_pipeline(tiny_pipeline(tiny_bert, tiny_multilabel_task, steps, measure=NO_MEASURE))
    assert result.exit_code == 0, [s.error for s in result.steps]
    meta = result.steps[2].artifact.metadata
    assert meta["op_types"] == ["MatMul", "Attention", "Gather", "EmbedLayerNormalization"]
    assert meta["integer_ops"]["QuantizeLinear"] > 0
    assert meta["int8_weight_share"] > 0.9 and meta["head_kept_float"] is True
    _assert_int8_logits_close(meta)
    assert _artifact_files(result.steps[2]) >= SIDECARS


def test_embeddings_can_stay_float(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_multilabel_task: dict[str, Any]
) -> None:
    steps = [
        {"name": "export", "technique": "onnx.export"},
        {"name": "int8", "technique": "onnx.quantize-dynamic", "config": {"quantize_embeddings": False}},
    ]
    result = run_pipeline(tiny_pipeline(tiny_bert, tiny_multilabel_task, steps, measure=NO_MEASURE))
    assert result.exit_code == 0, [s.error for s in result.steps]
    meta = result.steps[1].artifact.metadata
    assert meta["op_types"] == ["MatMul"]
    assert "QEmbedLayerNormalization" not in meta["integer_ops"] and meta["integer_ops"]["MatMulInteger"] > 0
    # The tiny model's tables (37 words, 256 positions) are a third of its weights, and stay float.
    assert 0.5 < meta["int8_weight_share"] < 0.8


def test_dynamo_exporter_exports_but_attention_does_not_fuse(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_multilabel_task: dict[str, Any]
) -> None:
    steps = [
        {"name": "export", "technique": "onnx.export", "config": {"exporter": "dynamo"}},
        {"name": "optimize", "technique": "onnx.optimize"},
    ]
    result = run_pipeline(tiny_pipeline(tiny_bert, tiny_multilabel_task, steps, measure=NO_MEASURE))
    assert result.exit_code == 0, [s.error for s in result.steps]
    export, optimize = result.steps
    assert export.artifact.metadata["exporter"] == "dynamo" and export.artifact.metadata["opset"] == 18
    assert export.artifact.metadata["parity"]["within_tolerance"]
    assert "Attention" not in optimize.artifact.metadata["fused_ops"]
    assert "attention was not fused" in optimize.artifact.metadata["warnings"][0]


def test_broken_export_fails_the_step_with_figures_and_keeps_earlier_results(
    plugins: Any,
    run_pipeline: Any,
    tiny_pipeline: Any,
    tiny_bert: Path,
    tiny_multilabel_task: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import numpy as np
    import onnx
    from onnx import numpy_helper

    real = onnx_export.export_graph

    def broken(*args: Any) -> None:  # an exporter that writes a graph with a wrong classifier bias
        real(*args)
        path = args[2]
        model = onnx.load(str(path))
        for init in model.graph.initializer:
            if init.name == "model.classifier.bias":
                init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + np.float32(0.5), init.name))
        onnx.save(model, str(path))

    monkeypatch.setattr(onnx_export, "export_graph", broken)
    steps = [
        {"name": "finetune", "technique": "transformers.finetune", "config": {"max_steps": 1, "batch_size": 16}},
        {"name": "export", "technique": "onnx.export"},
        {"name": "int8", "technique": "onnx.quantize-dynamic"},
    ]
    measure = {"latency": False}
    result = run_pipeline(tiny_pipeline(tiny_bert, tiny_multilabel_task, steps, baseline="finetune", measure=measure))
    assert result.exit_code == 1
    tuned, export, int8 = result.steps
    assert tuned.status == "done" and export.status == "failed" and int8.status == "skipped"
    assert "logits differ beyond tolerance on 40 texts: max |diff| 0.5" in export.error
    assert "(atol 0.0001, rtol 0.001), 120 logits outside" in export.error
    # The fine-tuned model is still on disk and measured.
    assert (tuned.artifact.path / "model.safetensors").is_file()
    assert "micro_f1" in {m.name for m in result.metrics[tuned.artifact.key]}
    data = json.loads(result.results_path.read_text())
    assert [s["status"] for s in data["steps"]] == ["done", "failed", "skipped"]


def test_exporter_error_is_one_line_with_a_fix(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_task: dict[str, Any]
) -> None:
    steps = [{"name": "export", "technique": "onnx.export", "config": {"opset": 7}}]  # too old for LayerNorm etc.
    result = run_pipeline(tiny_pipeline(tiny_bert, tiny_task, steps, measure=NO_MEASURE))
    assert result.steps[0].status == "failed"
    assert result.steps[0].error.startswith(
        "SlimkitError: onnx.export: torch.onnx.export (torchscript, opset 7) failed"
    )
    assert "(fix: try exporter" in result.steps[0].error


def test_nothing_quantized_is_an_error(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_task: dict[str, Any]
) -> None:
    steps = [
        {"name": "export", "technique": "onnx.export"},
        {"name": "int8", "technique": "onnx.quantize-dynamic", "config": {"op_types": ["Conv"]}},
    ]
    result = run_pipeline(tiny_pipeline(tiny_bert, tiny_task, steps, measure=NO_MEASURE))
    assert [s.status for s in result.steps] == ["done", "failed"]
    assert "onnx.quantize-dynamic: no op was quantized (op types ['Conv']" in result.steps[1].error


def test_steps_never_touch_their_input_folder(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_task: dict[str, Any]
) -> None:
    steps = [
        {"name": "export", "technique": "onnx.export"},
        {"name": "optimize", "technique": "onnx.optimize"},
        {"name": "int8", "technique": "onnx.quantize-dynamic"},
    ]
    result = run_pipeline(tiny_pipeline(tiny_bert, tiny_task, steps, measure=NO_MEASURE))
    assert result.exit_code == 0
    export, optimize, int8 = result.steps
    assert _artifact_files(export) == _artifact_files(optimize) == _artifact_files(int8)
    for step in result.steps:  # nothing but the model folder and the runner's manifest
        assert {p.name for p in step.artifact.path.parent.iterdir()} == {
            "model",
            "slimkit-artifact.json",
            ".slimkit-verified.json",
        }


def test_declarations_order_and_conflicts(plugins: Any, tiny_bert: Path, slimkit_plugins: Any) -> None:
    from slimkit.planner import plan_pipeline
    from slimkit.spec import pipeline_from_dict

    techniques = {t.name: t for t in slimkit_plugins.techniques.of_plugin("onnx")}
    assert set(techniques) == {
        "onnx.export", "onnx.optimize", "onnx.quantize-dynamic", "onnx.quantize-static", "onnx.quantize-weight-only",
    }  # fmt: skip
    assert techniques["onnx.export"].consumes == ["transformers"] and techniques["onnx.export"].produces == "onnx"
    assert techniques["onnx.quantize-dynamic"].hardware.cpu_features_beneficial == slimkit_onnx.INT8_CPU_FEATURES
    assert [n for n, t in techniques.items() if t.needs_task] == ["onnx.quantize-static"]  # calibration data

    def plan(*names: str, order: str = "as_written") -> Any:
        steps = [{"technique": n} for n in names]
        pipe = pipeline_from_dict({"model": str(tiny_bert), "steps": steps, "order": order, "device": "cpu"})
        return plan_pipeline(pipe, plugins=slimkit_plugins)

    assert plan("onnx.export", "onnx.optimize", "onnx.quantize-dynamic").ok
    wrong = plan("onnx.export", "onnx.quantize-dynamic", "onnx.optimize")
    assert any("onnx.quantize-dynamic declares it must come after 'onnx.optimize'" in p for p in wrong.problems)
    auto = plan("onnx.export", "onnx.quantize-dynamic", "onnx.optimize", order="auto")
    assert [s.technique.name for s in auto.steps] == ["onnx.export", "onnx.optimize", "onnx.quantize-dynamic"]
    both = plan("onnx.export", "onnx.quantize-dynamic", "onnx.quantize-static")
    assert any("conflict" in p for p in both.problems)
    unexported = plan("onnx.quantize-dynamic")
    assert any("needs onnx input but the model source gives transformers" in p for p in unexported.problems)
    assert any("add a step such as onnx.export" in p for p in unexported.problems)


def test_a_sentence_pair_task_is_exported_and_calibrated_on_its_pairs(
    plugins: Any,
    run_pipeline: Any,
    tiny_pipeline: Any,
    tiny_bert: Path,
    tiny_pair_task: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    encoded: list[tuple[Any, dict[str, Any]]] = []  # (inputs, arrays) of every batch a step encodes
    real = graph.encode

    def spy(tokenizer: Any, texts: Any, names: list[str], **kw: Any) -> dict[str, Any]:
        encoded.append((texts, out := real(tokenizer, texts, names, **kw)))
        return out

    monkeypatch.setattr(graph, "encode", spy)
    steps = [
        {"name": "export", "technique": "onnx.export"},
        {"name": "static", "technique": "onnx.quantize-static", "config": {"calibration_examples": 32}},
    ]
    result = run_pipeline(tiny_pipeline(tiny_bert, tiny_pair_task, steps, measure=NO_MEASURE))
    assert result.exit_code == 0, [s.error for s in result.steps]
    export, static = (s.artifact.metadata for s in result.steps)
    assert export["input_names"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert export["parity"]["within_tolerance"] and export["parity"]["examples"] == 40
    assert static["calibration_examples"] == 32
    # Parity checks, calibration and the int8 comparison all encode (text, pair) tuples, the pair as token type 1.
    assert encoded and all(isinstance(texts[0], tuple) for texts, _ in encoded)
    assert all((arrays["token_type_ids"] == 1).any() for _, arrays in encoded)
