"""The ORT predictor, and ONNX artifacts timed with the torch baseline by the shared protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from slimkit_onnx import graph


def test_predictor_session_settings_and_encoding(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_llama: Path, tiny_task: dict[str, Any]
) -> None:
    steps = [{"name": "export", "technique": "onnx.export"}]
    result = run_pipeline(tiny_pipeline(tiny_llama, tiny_task, steps, measure={"enabled": False}))
    artifact = result.steps[0].artifact
    predictor = plugins.load_predictor(artifact, "cpu", 2)
    assert predictor.facts | {"onnxruntime": "?"} == predictor.facts | {
        "runtime": "onnxruntime",
        "onnxruntime": "?",
        "providers": ["CPUExecutionProvider"],
        "dtype": "float32",
        "intra_op_num_threads": 2,
        "inter_op_num_threads": 1,
        "execution_mode": "sequential",
        "allow_spinning": "0",
        "graph_optimization_level": "ORT_ENABLE_ALL",
    }
    assert predictor.facts["params"] == 19_840
    encoded = predictor.encode(["i love this", "bad"], max_length=16, pad_to_max=True)
    assert list(encoded) == ["input_ids", "attention_mask"]  # no token_type_ids: the graph takes none
    assert all(a.dtype == np.int64 and a.shape == (2, 16) for a in encoded.values())
    logits = predictor(encoded)
    assert logits.shape == (2, 2) and logits.dtype == np.float32
    # Right padding to 16 tokens changes nothing: the classifier reads the last real token.
    short = predictor(predictor.encode(["i love this", "bad"], max_length=16, pad_to_max=False))
    np.testing.assert_allclose(logits, short, atol=1e-5)
    predictor.close()
    source = result.source
    assert plugins.load_predictor(source, "cpu", 1) is None  # transformers folders are not ours


def test_bare_onnx_file_beside_its_tokenizer(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_task: dict[str, Any]
) -> None:
    steps = [{"name": "export", "technique": "onnx.export"}]
    result = run_pipeline(tiny_pipeline(tiny_bert, tiny_task, steps, measure={"enabled": False}))
    artifact = result.steps[0].artifact
    file_artifact = artifact.with_updates(path=artifact.path / "model.onnx")
    predictor = plugins.load_predictor(file_artifact, "cpu", 1)
    assert graph.model_file(artifact.path) == artifact.path / "model.onnx"
    assert list(predictor.encode(["good"], max_length=8, pad_to_max=True)) == [
        "input_ids", "attention_mask", "token_type_ids",
    ]  # fmt: skip


def test_latency_and_memory_measured_with_the_torch_baseline(
    plugins: Any,
    run_pipeline: Any,
    tiny_pipeline: Any,
    tiny_bert: Path,
    tiny_task: dict[str, Any],
) -> None:
    # The memory probe (a fresh process) registers the run's plugins, so ONNX artifacts load there too.
    steps = [{"name": "export", "technique": "onnx.export"}, {"name": "int8", "technique": "onnx.quantize-dynamic"}]
    measure = {"batch_sizes": [2], "sequence_lengths": [16], "dynamic_length": False, "rounds": 1, "repeats": 2}
    result = run_pipeline(tiny_pipeline(tiny_bert, tiny_task, steps, measure=measure))
    assert result.exit_code == 0, (result.measure_errors, [s.error for s in result.steps])
    for step in result.steps:
        metrics = {m.name: m for m in result.metrics[step.artifact.key]}
        latency = metrics["latency_ms.b2.s16"]
        assert latency.value > 0 and latency.details["threads"] == 1 and latency.details["timed_calls"] == 2
        assert metrics["peak_rss_bytes"].value is not None, metrics["peak_rss_bytes"].details
        assert metrics["accuracy"].value is not None
