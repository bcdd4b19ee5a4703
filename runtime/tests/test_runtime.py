"""slimkit-runtime against what slimkit measured: a tiny model fine-tuned, exported and quantized by
slimkit, packaged with ``slimkit package``, served by ``Classifier``; its predictions on the eval
texts must be slimkit's own (same labels, logits within 1e-5), and serving it imports no torch."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import package_tiny, serve_in_a_clean_process

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("slimkit_onnx") is None, reason="packaging needs slimkit and slimkit-onnx installed"
)


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny multi-label model run through slimkit to ONNX int8 and packaged; plus slimkit's logits."""
    steps = [
        {"name": "export", "technique": "onnx.export"},
        {"name": "int8", "technique": "onnx.quantize-dynamic"},
    ]
    return package_tiny(tmp_path_factory.mktemp("runtime"), steps)


def _slimkit_logits(packaged: dict[str, Any]) -> tuple[Any, list[str], float]:
    """The eval texts, and slimkit's own logits of the packaged graph, as its measurement computed them."""
    from slimkit.spec import TaskSpec
    from slimkit_onnx.predictor import OnnxPredictor
    from slimkit_transformers.protocol import eval_logits
    from slimkit_transformers.tasks import load_task

    data = load_task(TaskSpec.model_validate(packaged["task"]), lambda p: Path(p))
    predictor = OnnxPredictor(packaged["folder"], threads=1)
    texts = data.eval.texts
    manifest = json.loads((packaged["folder"] / "slimkit-package.json").read_text())
    return eval_logits(predictor, texts), texts, manifest["threshold"]


def test_the_runtime_predicts_what_slimkit_measured(packaged: dict[str, Any]) -> None:
    import numpy as np

    from slimkit_runtime import Classifier

    expected, texts, threshold = _slimkit_logits(packaged)
    clf = Classifier.load(packaged["folder"], threads=1)
    logits = clf.logits(texts)
    assert logits.shape == expected.shape
    assert np.abs(logits - expected).max() <= 1e-5
    labels = clf.predict(texts)
    sigmoid = 1 / (1 + np.exp(-expected))
    assert labels == [[clf.labels[j] for j in np.flatnonzero(row >= threshold)] for row in sigmoid]
    assert np.allclose(clf.predict_proba(texts), sigmoid, atol=1e-6)


def test_the_package_carries_its_card_and_manifest(packaged: dict[str, Any]) -> None:
    folder = packaged["folder"]
    manifest = json.loads((folder / "slimkit-package.json").read_text())
    assert manifest["format"] == "onnx" and manifest["problem"] == "multi_label"
    assert manifest["labels"] == ["positive", "negative", "mixed"] and manifest["max_length"] == 128
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: onnxruntime\npipeline_tag: text-classification\n")
    assert "## Recipe" in card and "`onnx.quantize-dynamic`" in card and "| baseline |" in card


def test_serving_imports_neither_torch_nor_transformers(packaged: dict[str, Any]) -> None:
    assert serve_in_a_clean_process(packaged["folder"]) == []


def test_a_package_refuses_a_variant_that_was_not_measured(packaged: dict[str, Any], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from slimkit.cli import cli

    result = CliRunner().invoke(cli, ["package", str(packaged["run"]), "--variant", "nope", "-o", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "'nope' was not measured in" in result.output and "(measured: source, finetune, export, int8)" in (
        result.output
    )
    assert not (tmp_path / "x").exists()


def _package_copy(packaged: dict[str, Any], tmp_path: Path, **manifest: Any) -> Path:
    import shutil

    from slimkit_runtime.classifier import MANIFEST

    folder = tmp_path / "pkg"
    shutil.copytree(packaged["folder"], folder)
    data = json.loads((folder / MANIFEST).read_text()) | manifest
    (folder / MANIFEST).write_text(json.dumps(data))
    return folder


def test_a_single_label_package_loads_with_its_null_threshold(packaged: dict[str, Any], tmp_path: Path) -> None:
    from slimkit_runtime import Classifier

    # slimkit writes "threshold": null for a single-label task.
    classifier = Classifier.load(_package_copy(packaged, tmp_path, problem="single_label", threshold=None))
    predicted = classifier.predict(["i love this so much", "sad awful day"])
    assert all(isinstance(label, str) and label in classifier.labels for label in predicted)


def test_a_transformers_package_is_refused_in_one_line(packaged: dict[str, Any], tmp_path: Path) -> None:
    from slimkit_runtime import Classifier, PackageError

    with pytest.raises(PackageError, match="a transformers package; slimkit-runtime serves ONNX and OpenVINO packages"):
        Classifier.load(_package_copy(packaged, tmp_path, format="transformers"))


def test_a_study_run_again_packages_its_reused_variants(tmp_path: Path) -> None:
    import shutil

    from slimkit.package import choose

    # A study run again marks every variant it finds built as 'reused'.
    study = Path(__file__).resolve().parents[2] / "docs" / "studies" / "minilm-semeval-compress"
    shutil.copy(study / "results.json", tmp_path / "results.json")
    data = json.loads((tmp_path / "results.json").read_text())
    for variant in data["variants"]:
        variant["status"] = "reused" if variant["status"] == "built" else variant["status"]
    (tmp_path / "results.json").write_text(json.dumps(data))
    assert choose(tmp_path, None).artifact.label == data["selection"]["chosen"]
