"""onnx.quantize-weight-only: MatMulNBits (and GatherBlockQuantized) graphs of tiny Llama and BERT classifiers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import slimkit_onnx
from slimkit_onnx import graph
from slimkit_onnx.predictor import OnnxPredictor

NO_MEASURE = {"enabled": False}
TEXTS = ["i love this movie so much", "the food was awful and sad today", "ok", "it was not very good but fun"]
WEIGHT_ONLY = "onnx.quantize-weight-only"


def _nbits_attributes(path: Path) -> list[dict[str, Any]]:
    from onnx import helper

    model = graph.load_graph(path)
    return [
        {a.name: helper.get_attribute_value(a) for a in node.attribute}
        for node in model.graph.node
        if node.op_type == "MatMulNBits"
    ]


def _logits(path: Path) -> np.ndarray:
    predictor = OnnxPredictor(path)
    try:
        return predictor(predictor.encode(TEXTS, max_length=32, pad_to_max=False))
    finally:
        predictor.close()


def _head_checksum(path: Path) -> float:
    return float(graph.read_manifest(path)["head_checksum"])


def test_llama_export_optimize_weight_only(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_llama: Path, tiny_task: dict[str, Any]
) -> None:
    steps = [
        {"name": "export", "technique": "onnx.export"},
        {"name": "optimize", "technique": "onnx.optimize"},
        {"name": "int4", "technique": WEIGHT_ONLY},
    ]
    result = run_pipeline(tiny_pipeline(tiny_llama, tiny_task, steps, measure=NO_MEASURE))
    assert result.exit_code == 0, [s.error for s in result.steps]
    export, optimize, int4 = result.steps
    meta = int4.artifact.metadata

    # Every projection and the embedding table in 4-bit blocks; the score head is the only float MatMul.
    counts = graph.op_counts(graph.load_graph(int4.artifact.path))
    assert meta["low_bit_ops"] == {"MatMulNBits": 14, "GatherBlockQuantized": 1} and meta["integer_ops"] == {}
    assert counts["MatMulNBits"] == 14 and "MatMulInteger" not in counts
    assert {(a["bits"], a["block_size"], a["accuracy_level"]) for a in _nbits_attributes(int4.artifact.path)} == {
        (4, 32, 4)
    }
    assert meta["precision"] == "int4-weight-only" and meta["kernel_compute"] == "int8"
    assert meta["embedding_tables"] == ["model.model.embed_tokens.weight"]
    # The optimised graph's fused SimplifiedLayerNormalization is unknown to onnx.version_converter.
    assert meta["opset"] == 21 and meta["opset_raised_by"] == "the quantizer (opset number only)"
    assert meta["low_bit_weight_share"] > 0.95

    # The head stays float: excluded, found again, same checksum as the exported graph's.
    assert meta["excluded_nodes"] == ["/model/score/MatMul"] and meta["head_kept_float"] is True
    assert _head_checksum(int4.artifact.path) == pytest.approx(_head_checksum(export.artifact.path), rel=1e-12)

    # Agreement with the input graph is recorded; the ORT predictor loads it and its logits stay close.
    assert meta["agreement_with_input"]["examples"] == 40
    assert meta["agreement_with_input"]["prediction_agreement"] >= 0.9
    before, after = _logits(optimize.artifact.path), _logits(int4.artifact.path)
    assert after.shape == before.shape == (len(TEXTS), 2)
    assert np.abs(after - before).max() < 0.1
    manifest = graph.read_manifest(int4.artifact.path)
    assert manifest["history"] == ["onnx.export", "onnx.optimize", WEIGHT_ONLY]
    assert int4.artifact.metadata["graph_bytes"] < optimize.artifact.path.joinpath("model.onnx").stat().st_size


def test_bert_export_weight_only_converts_the_opset_for_the_embeddings(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_multilabel_task: dict[str, Any]
) -> None:
    steps = [{"name": "export", "technique": "onnx.export"}, {"name": "int4", "technique": WEIGHT_ONLY}]
    result = run_pipeline(tiny_pipeline(tiny_bert, tiny_multilabel_task, steps, measure=NO_MEASURE))
    assert result.exit_code == 0, [s.error for s in result.steps]
    export, int4 = result.steps
    meta = int4.artifact.metadata
    # Word, position and token-type tables; q, k, v, output and both FFN projections of 2 layers.
    assert meta["low_bit_ops"] == {"MatMulNBits": 12, "GatherBlockQuantized": 3}
    assert meta["opset"] == 21 and meta["opset_raised_by"] == "onnx.version_converter"
    # The head (and the pooler) are Gemm ops, which MatMulNBits does not replace.
    assert meta["excluded_nodes"] == ["/model/classifier/Gemm"] and meta["head_kept_float"] is True
    assert _head_checksum(int4.artifact.path) == pytest.approx(_head_checksum(export.artifact.path), rel=1e-12)
    assert meta["agreement_with_input"]["prediction_agreement"] >= 0.9
    assert np.abs(_logits(int4.artifact.path) - _logits(export.artifact.path)).max() < 0.1
    assert graph.is_multi_label(int4.artifact.path)  # sidecars copied


def test_llama_hqq_8bit_and_nothing_to_quantize(
    plugins: Any,
    run_pipeline: Any,
    tiny_pipeline: Any,
    tiny_llama: Path,
    tiny_task: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    export = {"name": "export", "technique": "onnx.export"}

    def run(name: str, config: dict[str, Any]) -> Any:
        steps = [export, {"name": name, "technique": WEIGHT_ONLY, "config": config | {"check_examples": 8}}]
        return run_pipeline(tiny_pipeline(tiny_llama, tiny_task, steps, name=name, measure=NO_MEASURE))

    hqq = run("hqq", {"algorithm": "hqq"}).steps[1].artifact.metadata
    assert hqq["low_bit_ops"] == {"MatMulNBits": 14} and hqq["quantize_embeddings"] is False
    assert hqq["symmetric"] is False and hqq["kernel_compute"] == "float" and hqq["opset"] == 17

    result = run("int8", {"bits": 8})
    meta = result.steps[1].artifact.metadata
    assert meta["precision"] == "int8-weight-only" and meta["kernel_compute"] == "int8"
    assert {a["bits"] for a in _nbits_attributes(result.steps[1].artifact.path)} == {8}
    assert meta["agreement_with_input"]["max_abs_diff"] < 0.01

    # Every MatMul excluded, embeddings off: the step fails instead of writing a float graph.
    monkeypatch.setattr(graph, "head_nodes", lambda model, names: [n.name for n in model.graph.node])
    failed = run("none", {"quantize_embeddings": False})
    assert [s.status for s in failed.steps] == ["done", "failed"]
    assert f"{WEIGHT_ONLY}: no op was quantized (op types ['MatMul']" in failed.steps[1].error
    assert "(fix: quantize a graph whose MatMul weights are initializers" in failed.steps[1].error


def test_declaration_config_errors_and_conflicts(plugins: Any, tiny_llama: Path, slimkit_plugins: Any) -> None:
    from slimkit.planner import plan_pipeline
    from slimkit.spec import pipeline_from_dict

    technique = slimkit_plugins.techniques.get(WEIGHT_ONLY)
    assert technique.stage == "quantize" and technique.goals == ["size", "speed"]
    assert technique.hardware.devices == ["cpu"] and technique.hardware.speedup_devices == ["cpu"]
    assert technique.hardware.cpu_features_beneficial == slimkit_onnx.INT8_CPU_FEATURES

    def plan(*steps: str | dict[str, Any], order: str = "as_written") -> Any:
        specs = [{"technique": s} if isinstance(s, str) else s for s in steps]
        pipe = pipeline_from_dict({"model": str(tiny_llama), "steps": specs, "order": order, "device": "cpu"})
        return plan_pipeline(pipe, plugins=slimkit_plugins)

    assert plan("onnx.export", "onnx.optimize", WEIGHT_ONLY).ok
    auto = plan("onnx.export", WEIGHT_ONLY, "onnx.optimize", order="auto")
    assert [s.technique.name for s in auto.steps] == ["onnx.export", "onnx.optimize", WEIGHT_ONLY]
    for other in ("onnx.quantize-dynamic", "onnx.quantize-static"):
        refused = plan("onnx.export", other, WEIGHT_ONLY)
        assert f"cannot be combined: {other} and {WEIGHT_ONLY} conflict" in " ".join(refused.problems)

    def problems(config: dict[str, Any]) -> list[str]:
        return [p for p in plan("onnx.export", {"technique": WEIGHT_ONLY, "config": config}).problems if "config." in p]

    [bad_block] = problems({"block_size": 48})
    assert bad_block.endswith(
        "config.block_size: must be a power of two from 16 to 256 (MatMulNBits' block sizes), not 48"
    )
    assert "\n" not in bad_block
    assert problems({"algorithm": "hqq", "bits": 8})[0].endswith(
        "config.algorithm: 'hqq' quantizes to 4 bits only on CPU; use bits = 4 or algorithm 'rtn'"
    )
    assert "set quantize_embeddings = false" in problems({"bits": 8, "quantize_embeddings": True})[0]
    assert problems({"bits": 2})[0].endswith("config.bits: Input should be 4 or 8")
