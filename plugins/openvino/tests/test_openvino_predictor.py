"""The OpenVINO predictor: compile settings, logits against torch, and timing beside the torch baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from slimkit_openvino import ir

TEXTS = ["i love this movie", "bad", "the food was really awful today", "great fun and joy", "it was ok"]


def test_predictor_settings_and_logits_match_torch(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_task: dict[str, Any]
) -> None:
    from slimkit_transformers.predictors import TorchPredictor

    steps = [
        {"name": "finetune", "technique": "transformers.finetune", "config": {"max_steps": 4, "batch_size": 16}},
        {"name": "ov-export", "technique": "openvino.export"},
        {"name": "ov-int8", "technique": "openvino.int8", "config": {"calibration_examples": 32}},
    ]
    pipe = tiny_pipeline(tiny_bert, tiny_task, steps, baseline="finetune", measure={"enabled": False})
    result = run_pipeline(pipe)
    assert result.exit_code == 0, [s.error for s in result.steps]
    tuned, export, int8 = (s.artifact for s in result.steps)

    predictor = plugins.load_predictor(export, "cpu", 2)
    assert predictor.runtime == "openvino"
    assert predictor.facts | {"openvino": "?"} == predictor.facts | {
        "runtime": "openvino",
        "openvino": "?",
        "device": "CPU",
        "dtype": "float32",
        "inference_num_threads": 2,
        "num_streams": 1,
        "performance_hint": "LATENCY",
        "inference_precision": "f32",
    }
    torch_predictor = TorchPredictor(tuned.path)
    assert predictor.facts["params"] == torch_predictor.facts["params"]
    assert predictor.facts["head_checksum"] == pytest.approx(torch_predictor.facts["head_checksum"], rel=1e-6)

    encoded = predictor.encode(TEXTS, max_length=16, pad_to_max=True)
    assert list(encoded) == ["input_ids", "attention_mask", "token_type_ids"]
    assert all(a.dtype == np.int64 and a.shape == (5, 16) for a in encoded.values())
    logits = predictor(encoded)
    assert logits.shape == (5, 2) and logits.dtype == np.float32
    reference = torch_predictor(torch_predictor.encode(TEXTS, max_length=16, pad_to_max=True))
    np.testing.assert_allclose(logits, reference, atol=1e-4, rtol=1e-3)
    # Dynamic shapes: unpadded batches give the same logits, and the output is a copy, not the request's buffer.
    short = predictor(predictor.encode(TEXTS, max_length=16, pad_to_max=False))
    np.testing.assert_allclose(short, reference, atol=1e-4, rtol=1e-3)
    predictor(predictor.encode(["x"], max_length=16, pad_to_max=False))
    np.testing.assert_allclose(short, reference, atol=1e-4, rtol=1e-3)
    predictor.close()

    quantized = plugins.load_predictor(int8, "cpu", 1)
    assert quantized.facts["dtype"] == "int8" and quantized.facts["inference_num_threads"] == 1
    assert quantized.facts["dynamic_quantization_group_size"] >= 0  # 0: off; the CPU plugin's default is 32
    assert quantized.facts["head_checksum"] == pytest.approx(torch_predictor.facts["head_checksum"], rel=1e-6)
    int8_logits = quantized(quantized.encode(TEXTS, max_length=16, pad_to_max=False))
    assert np.abs(int8_logits - reference).max() < 0.1
    assert (int8_logits.argmax(-1) == reference.argmax(-1)).mean() >= 0.8
    quantized.close()

    assert plugins.load_predictor(tuned, "cpu", 1) is None  # transformers folders are not ours
    with pytest.raises(Exception, match="CPU only"):
        plugins.load_predictor(export, "cuda", 1)


def test_bare_xml_file_and_bf16_hint(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_task: dict[str, Any]
) -> None:
    steps = [{"name": "ov-export", "technique": "openvino.export", "config": {"inference_precision": "bf16"}}]
    result = run_pipeline(tiny_pipeline(tiny_bert, tiny_task, steps, measure={"enabled": False}))
    assert result.exit_code == 0, [s.error for s in result.steps]
    artifact = result.steps[0].artifact
    assert ir.read_manifest(artifact.path)["inference_precision"] == "bf16"
    file_artifact = artifact.with_updates(path=artifact.path / ir.MODEL_FILE)
    predictor = plugins.load_predictor(file_artifact, "cpu", 1)
    # The hint is honoured where the CPU computes bf16; elsewhere the plugin falls back to f32.
    assert predictor.facts["inference_precision"] in ("bf16", "f32")
    assert predictor(predictor.encode(["good"], max_length=8, pad_to_max=True)).shape == (1, 2)
    predictor.close()


def test_latency_and_memory_measured_with_the_torch_baseline(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_task: dict[str, Any]
) -> None:
    # The memory probe (a fresh process) registers the run's plugins, so OpenVINO artifacts load there too.
    steps = [
        {"name": "ov-export", "technique": "openvino.export"},
        {"name": "ov-int8", "technique": "openvino.int8", "config": {"calibration_examples": 16}},
    ]
    measure = {"batch_sizes": [2], "sequence_lengths": [16], "dynamic_length": False, "rounds": 1, "repeats": 2}
    result = run_pipeline(tiny_pipeline(tiny_bert, tiny_task, steps, measure=measure))
    assert result.exit_code == 0, (result.measure_errors, [s.error for s in result.steps])
    for step in result.steps:
        metrics = {m.name: m for m in result.metrics[step.artifact.key]}
        latency = metrics["latency_ms.b2.s16"]
        assert latency.value > 0 and latency.details["threads"] == 1 and latency.details["timed_calls"] == 2
        assert metrics["peak_rss_bytes"].value is not None, metrics["peak_rss_bytes"].details
        assert metrics["accuracy"].value is not None
