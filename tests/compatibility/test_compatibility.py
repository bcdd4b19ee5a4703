"""Every (technique, family) pair a first-party plugin declares, run on a tiny model of the family.

The tiny models are random-weight models built from each family's config, with the tokenizer kind
its real models use (slimkit_transformers.testing.build_tiny_model). Each test fine-tunes one (the
fine-tuned model is shared through one step store), runs the technique (after onnx.export when the
technique reads ONNX), and checks that the result was built, reloads, predicts through its
classification head (accuracy and agreement are measured on it) and says what it is.
docs/compatibility.md is generated from the same declarations; the last test keeps it current.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("slimkit_onnx") is None or importlib.util.find_spec("torch") is None,
    reason="needs the first-party plugins installed (scripts/setup)",
)


def _declared_pairs() -> list[tuple[str, str]]:
    if importlib.util.find_spec("slimkit_onnx") is None:
        return []
    sys.path.insert(0, str(REPO / "docs"))
    from gen_compatibility import first_party_techniques

    from slimkit_transformers.testing import FAMILIES

    return [(t.name, f) for t in first_party_techniques() for f in FAMILIES if t.support_for(f) is not None]


def _step(name: str, technique: str, **config: Any) -> dict[str, Any]:
    return {"name": name, "technique": technique, "config": config}


EXPORT = _step("export", "onnx.export")
# The technique's step (and what must come before it), with options sized for a 2-layer model.
STEPS: dict[str, list[dict[str, Any]]] = {
    "transformers.finetune": [_step("again", "transformers.finetune", epochs=1, batch_size=16, max_length=16)],
    "torch.structured-prune": [_step("prune", "torch.structured-prune", ffn_ratio=0.5, layers=1)],
    "torch.magnitude-prune": [_step("prune", "torch.magnitude-prune", sparsity=0.5)],
    # The legacy backend: torchao's compiles each model for a minute, and quantizes the same Linears.
    "torch.dynamic-int8": [_step("int8", "torch.dynamic-int8", backend="torch-ao-legacy")],
    "torch.half": [_step("half", "torch.half")],
    "textpruner.vocabulary": [_step("vocab", "textpruner.vocabulary")],
    "textpruner.transformer": [
        _step(
            "tp",
            "textpruner.transformer",
            target_num_of_heads=1,
            target_ffn_size=24,
            calibration_examples=40,
            batch_size=16,
        )
    ],
    "distill.kd": [
        _step("kd", "distill.kd", epochs=1, batch_size=16, learning_rate=5e-3, max_length=16, student={"layers": [1]})
    ],
    "onnx.export": [EXPORT],
    "onnx.optimize": [EXPORT, _step("optimize", "onnx.optimize")],
    "onnx.quantize-dynamic": [EXPORT, _step("int8", "onnx.quantize-dynamic")],
    "onnx.quantize-static": [EXPORT, _step("static", "onnx.quantize-static", calibration_examples=32)],
    "onnx.quantize-weight-only": [EXPORT, _step("int4", "onnx.quantize-weight-only")],
    "bnb.int8": [_step("int8", "bnb.int8")],
    "bnb.4bit": [_step("nf4", "bnb.4bit")],
    "gptq.quantize": [
        _step("gptq", "gptq.quantize", bits=4, group_size=32, calibration_examples=32, calibration_tokens=16)
    ],
}
FINETUNE = _step("finetune", "transformers.finetune", epochs=2, batch_size=16, learning_rate=1e-3, max_length=16)
MEASURE = {"batch_sizes": [1], "sequence_lengths": [16], "dynamic_length": False, "latency": False, "threads": 1}


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from slimkit_transformers.testing import build_tiny_model

    built: dict[str, Path] = {}

    def model(family: str) -> Path:
        if family not in built:
            built[family] = build_tiny_model(family, tmp_path_factory.mktemp(f"tiny-{family}"))
        return built[family]

    return model


@pytest.fixture(scope="session")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("compat-store")


@pytest.mark.parametrize(("technique", "family"), _declared_pairs())
def test_a_declared_family_runs(
    technique: str, family: str, tiny_models: Any, shared_store: Path, tiny_task: dict[str, Any],
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from slimkit.planner import requirement_problems
    from slimkit.plugins import build_plugins
    from slimkit.runner import run_pipeline
    from slimkit.spec import pipeline_from_dict

    monkeypatch.delenv("SLIMKIT_LOAD_PLUGINS", raising=False)  # every installed plugin, as users have them
    plugins = build_plugins()
    declared = plugins.techniques.get(technique)
    assert declared is not None
    if unmet := requirement_problems(declared.requires):
        pytest.skip(f"{technique} cannot run in this environment: {'; '.join(unmet)}")
    steps = STEPS[technique]
    pipeline = pipeline_from_dict({
        "name": "compat", "model": str(tiny_models(family)), "task": tiny_task, "device": "cpu",
        "steps": [FINETUNE, *steps], "baseline": "finetune", "measure": MEASURE,
        "output_dir": str(tmp_path / "run"), "store_dir": str(shared_store),
    })  # fmt: skip
    result = run_pipeline(pipeline, plugins=plugins)
    assert result.exit_code == 0, [s.error for s in result.steps if s.error]
    data = json.loads(result.results_path.read_text())
    assert data["plan"]["family"] == family
    out = data["artifacts"][-1]
    assert out["label"] == steps[-1]["name"] and out["produced_by"] == technique
    metrics = {m["name"]: m for m in out["metrics"]}
    # Predictions came out of the reloaded result through its head: accuracy and agreement with the
    # baseline are computed from them (a missing or reshaped head fails the measurement).
    assert metrics["accuracy"]["value"] is not None and metrics["agreement"]["value"] is not None
    assert metrics["size_bytes"]["value"] > 0


def test_compatibility_md_is_generated_from_the_declarations() -> None:
    check = subprocess.run(
        [sys.executable, str(REPO / "docs" / "gen_compatibility.py"), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
