"""torch.dynamic-int8 and torch.half on tiny models: modules, formats, reloading, the head, predictions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from slimkit_transformers.models import load_classifier
from slimkit_transformers.predictors import TorchPredictor, head_checksum

NO_MEASURE = {"enabled": False}
TEXTS = ["i love this movie so much", "sad awful day", "the food was not very good but fun", "joy"]


def _run(run_pipeline: Any, tiny_pipeline: Any, model: Path, task: dict[str, Any], technique: str,
         config: dict[str, Any]) -> Any:  # fmt: skip
    steps = [{"name": "q", "technique": technique, "config": config}]
    result = run_pipeline(tiny_pipeline(model, task, steps, measure=NO_MEASURE))
    assert result.exit_code == 0, [s.error for s in result.steps]
    return result


def _predict(predictor: Any) -> np.ndarray:
    return predictor(predictor.encode(TEXTS, max_length=32, pad_to_max=False))  # type: ignore[no-any-return]


@pytest.mark.parametrize("family", ["tiny_bert", "tiny_llama"])
def test_legacy_int8_modules_and_reload(
    family: str, request: pytest.FixtureRequest, plugins: Any, run_pipeline: Any, tiny_pipeline: Any,
    tiny_task: dict[str, Any],
) -> None:  # fmt: skip
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    from slimkit_torch.int8 import Int8Predictor

    result = _run(run_pipeline, tiny_pipeline, request.getfixturevalue(family), tiny_task, "torch.dynamic-int8",
                  {"backend": "torch-ao-legacy"})  # fmt: skip
    artifact = result.steps[0].artifact
    assert artifact.format == "torch-int8" and artifact.metadata["backend"] == "torch-ao-legacy"
    assert {p.name for p in artifact.path.iterdir()} >= {"config.json", "model-int8.pt", "slimkit-int8.json"}
    manifest = json.loads((artifact.path / "slimkit-int8.json").read_text())
    linears = {"tiny_bert": 2 * 6, "tiny_llama": 2 * 7}[family]  # q, k, v, o, FFN (in, [gate,] out) per layer
    assert manifest["per_channel"] is True and len(manifest["modules"]) == linears
    assert artifact.metadata["quantized_modules"] == linears

    predictor = plugins.load_predictor(artifact, "cpu", 1)
    assert isinstance(predictor, Int8Predictor)
    head = "score" if family == "tiny_llama" else "classifier"
    quantized = [n for n, m in predictor.model.named_modules() if isinstance(m, DynamicLinear)]
    assert sorted(quantized) == sorted(manifest["modules"]) and not any(n.startswith(head) for n in quantized)
    assert type(getattr(predictor.model, head)) is torch.nn.Linear  # the head stays float32
    reference = TorchPredictor(result.source.path)
    assert predictor.facts["head_checksum"] == reference.facts["head_checksum"]
    assert predictor.facts["params"] == reference.facts["params"]
    np.testing.assert_allclose(_predict(predictor), _predict(reference), atol=0.05)


def test_torchao_int8_tensors_and_reload(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_task: dict[str, Any]
) -> None:
    from torchao.quantization import Int8Tensor

    result = _run(run_pipeline, tiny_pipeline, tiny_bert, tiny_task, "torch.dynamic-int8",
                  {"backend": "torchao", "compile": False})  # fmt: skip
    artifact = result.steps[0].artifact
    predictor = plugins.load_predictor(artifact, "cpu", 1)
    model = predictor.model
    assert isinstance(model.bert.encoder.layer[0].attention.self.query.weight, Int8Tensor)
    assert not isinstance(model.classifier.weight, Int8Tensor)
    assert "torchao" in predictor.facts["runtime"] and "compiled" not in predictor.facts["runtime"]
    np.testing.assert_allclose(_predict(predictor), _predict(TorchPredictor(result.source.path)), atol=0.05)


def test_quantize_head_when_asked(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_task: dict[str, Any]
) -> None:
    config = {"backend": "torch-ao-legacy", "quantize_head": True, "per_channel": False}
    artifact = _run(run_pipeline, tiny_pipeline, tiny_bert, tiny_task, "torch.dynamic-int8", config).steps[0].artifact
    manifest = json.loads((artifact.path / "slimkit-int8.json").read_text())
    assert "classifier" in manifest["modules"] and "bert.pooler.dense" in manifest["modules"]
    assert manifest["per_channel"] is False
    assert plugins.load_predictor(artifact, "cpu", 1).facts["head_checksum"] is None


@pytest.mark.parametrize(("family", "dtype"), [("tiny_bert", "bfloat16"), ("tiny_llama", "float16")])
def test_half_reloads_in_its_dtype(
    family: str, dtype: str, request: pytest.FixtureRequest, plugins: Any, run_pipeline: Any, tiny_pipeline: Any,
    tiny_task: dict[str, Any],
) -> None:  # fmt: skip
    result = _run(run_pipeline, tiny_pipeline, request.getfixturevalue(family), tiny_task, "torch.half",
                  {"dtype": dtype})  # fmt: skip
    artifact = result.steps[0].artifact
    assert artifact.format == "transformers" and artifact.metadata["dtype"] == dtype
    assert json.loads((artifact.path / "config.json").read_text())["dtype"] == dtype
    model, _ = load_classifier(artifact.path)
    assert {p.dtype for p in model.parameters()} == {getattr(torch, dtype)}
    # The measurement protocol's predictor runs it in that dtype, with the head's weights merely rounded.
    predictor, reference = TorchPredictor(artifact.path), TorchPredictor(result.source.path)
    assert predictor.facts["dtype"] == f"torch.{dtype}"
    assert predictor.facts["head_checksum"] == pytest.approx(reference.facts["head_checksum"], rel=1e-3)
    assert artifact.metadata["head_checksum_relative_change"] < 1e-3
    np.testing.assert_allclose(_predict(predictor), _predict(reference), atol=0.05)
    assert head_checksum(model) is not None
