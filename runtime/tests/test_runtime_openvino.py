"""slimkit-runtime on an OpenVINO package: a tiny model exported to IR and quantized by NNCF through
slimkit, packaged, served by ``Classifier`` on OpenVINO; the labels and logits must be those that
slimkit's own OpenVINO predictor measured, and serving imports no torch."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import package_tiny, serve_in_a_clean_process

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("slimkit_openvino") is None, reason="needs slimkit and slimkit-openvino installed"
)


QUANTIZERS = {
    "int8": {"name": "ov-int8", "technique": "openvino.int8", "config": {"calibration_examples": 32}},
    "int4": {"name": "ov-int4", "technique": "openvino.int4"},  # 4-bit weights the CPU plugin unpacks
}


@pytest.fixture(scope="module", params=sorted(QUANTIZERS))
def packaged(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    steps = [{"name": "ov-export", "technique": "openvino.export"}, QUANTIZERS[request.param]]
    return package_tiny(tmp_path_factory.mktemp(f"runtime-ov-{request.param}"), steps)


def test_the_manifest_names_the_ir_and_its_precision(packaged: dict[str, Any]) -> None:
    folder = packaged["folder"]
    manifest = json.loads((folder / "slimkit-package.json").read_text())
    assert manifest["format"] == "openvino" and manifest["model_file"] == "openvino_model.xml"
    assert manifest["inference_precision"] == "f32" and (folder / "openvino_model.bin").is_file()
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: openvino\n") and "slimkit-runtime[openvino]" in card


def test_the_runtime_serves_what_slimkit_measured_on_openvino(packaged: dict[str, Any]) -> None:
    import numpy as np

    from slimkit.spec import TaskSpec
    from slimkit_openvino.predictor import OpenVinoPredictor
    from slimkit_runtime import Classifier
    from slimkit_transformers.protocol import eval_logits
    from slimkit_transformers.tasks import load_task

    texts = load_task(TaskSpec.model_validate(packaged["task"]), lambda p: Path(p)).eval.texts
    predictor = OpenVinoPredictor(packaged["folder"], threads=1)
    expected = eval_logits(predictor, texts)
    predictor.close()
    clf = Classifier.load(packaged["folder"], threads=1)
    logits = clf.logits(texts)
    assert logits.shape == expected.shape
    assert np.abs(logits - expected).max() <= 1e-5
    threshold = json.loads((packaged["folder"] / "slimkit-package.json").read_text())["threshold"]
    sigmoid = 1 / (1 + np.exp(-expected))
    assert clf.predict(texts) == [[clf.labels[j] for j in np.flatnonzero(row >= threshold)] for row in sigmoid]


def test_serving_openvino_imports_neither_torch_nor_transformers(packaged: dict[str, Any]) -> None:
    assert serve_in_a_clean_process(packaged["folder"]) == []


def test_providers_are_refused_for_an_openvino_package(packaged: dict[str, Any]) -> None:
    from slimkit_runtime import Classifier, PackageError

    with pytest.raises(PackageError, match="runs on OpenVINO's CPU plugin; drop providers"):
        Classifier.load(packaged["folder"], providers=["CPUExecutionProvider"])
