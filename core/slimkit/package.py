"""``slimkit package``: one self-contained folder for a measured model, ready to serve.

The folder holds the model's files as slimkit measured them (the ONNX graph or the Hugging Face
weights), the tokenizer, ``slimkit-package.json`` (labels, problem type, the decision threshold
and token limit the accuracy was measured with) and a ``README.md`` model card in the Hugging Face
format whose figures come from the run's results.json. slimkit-runtime serves an ONNX package
with onnxruntime, tokenizers and numpy alone, and an OpenVINO package with OpenVINO in their place.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slimkit.artifacts import atomic_dir
from slimkit.errors import SlimkitError
from slimkit.results import AnyResults, MeasuredArtifact, StudyResults, load_results

MANIFEST = "slimkit-package.json"
SCHEMA = "slimkit.package/1"
# slimkit-transformers measures accuracy on texts cut at this many tokens (protocol.eval_logits);
# results written before the figure was recorded in the metric's details mean this.
MEASURED_MAX_LENGTH = 128
# The formats whose model is one file slimkit-runtime loads: the artifact metadata's key naming it,
# and its suffix (the folder's only such file when the metadata names none).
MODEL_FILES = {"onnx": ("onnx_file", ".onnx"), "openvino": ("xml_file", ".xml")}
# slimkit-openvino's manifest beside the IR, which records the inference precision it was timed with.
OPENVINO_MANIFEST = "slimkit-openvino.json"


@dataclass
class Chosen:
    results: AnyResults
    artifact: MeasuredArtifact
    baseline: MeasuredArtifact | None
    why: str  # "chosen by the study" or "named with --variant"
    source: str  # the model it started from, as the file named it
    task: str  # the task preset, dataset, or "local data files"


def _origin(results: AnyResults, run_dir: Path) -> tuple[str, str]:
    """(model source, task name) from a study's results or a run's pipeline.json."""
    if isinstance(results, StudyResults):
        model = results.model.model_dump() if results.model else {}
        task = results.task.model_dump() if results.task else None
    else:
        try:
            ran = json.loads((run_dir / "pipeline.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            ran = {}
        model, task = ran.get("model") or {}, ran.get("task")
    name = (task.get("preset") or task.get("dataset") or "local data files") if task else "no task"
    return str(model.get("source", "?")), str(name)


def choose(run_dir: Path, variant: str | None) -> Chosen:
    """The artifact to package: the named one, the study's choice, or a run's last step; refuses
    a failed or unmeasured one with the reason and the fix."""
    results = load_results(run_dir / "results.json")
    measured = {a.label: a for a in results.artifacts}
    baseline = measured.get(results.baseline or "")
    if variant is None:
        variant, why = _default_label(results)
    else:
        why = "named with --variant"
    if isinstance(results, StudyResults):
        built = next((v for v in results.variants if v.name == variant), None)
        if built is not None and built.status not in ("built", "reused"):
            raise SlimkitError(f"variant {variant!r} did not build ({built.status}): {built.note or 'see report.md'}")
    artifact = measured.get(variant)
    if artifact is None:
        known = ", ".join(measured) or "none"
        raise SlimkitError(f"{variant!r} was not measured in {run_dir} (measured: {known})", fix="name one of those")
    if not any(m.kind == "accuracy" and m.value is not None for m in artifact.metrics):
        raise SlimkitError(f"{variant!r} has no measured accuracy in {run_dir}", fix="run it with a task")
    return Chosen(results, artifact, baseline, why, *_origin(results, run_dir))


def _default_label(results: AnyResults) -> tuple[str, str]:
    if isinstance(results, StudyResults):
        chosen = results.selection.chosen if results.selection else None
        if chosen is None:
            reason = results.selection.reason if results.selection else "nothing was measured"
            raise SlimkitError(f"the study chose no variant ({reason})", fix="name one with --variant")
        return chosen, "chosen by the study"
    if not results.artifacts:
        raise SlimkitError("the run measured nothing", fix="run it again, then package it")
    return results.artifacts[-1].label, "the run's last step"


def package(run_dir: Path, dest: Path, variant: str | None = None) -> Path:
    """Write the package of ``variant`` (default: the chosen one) into ``dest``; return ``dest``."""
    from slimkit.model_card import model_card

    chosen = choose(run_dir, variant)
    source = chosen.results.resolve(chosen.artifact.path)
    if not source.is_dir():
        raise SlimkitError(f"{chosen.artifact.label!r}: its files are gone from {source}", fix="run it again")
    if dest.exists() and any(dest.iterdir()):
        raise SlimkitError(f"-o {dest}: not empty", fix="name a new folder; nothing is overwritten")
    manifest = package_manifest(chosen, source)
    with atomic_dir(dest) as scratch:
        shutil.copytree(source, scratch, dirs_exist_ok=True)
        (scratch / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        (scratch / "README.md").write_text(model_card(chosen, manifest), encoding="utf-8")
    return dest


def package_manifest(chosen: Chosen, source: Path) -> dict[str, Any]:
    """What a runtime needs to predict exactly as slimkit measured: files, labels, threshold, token limit."""
    config = _read_config(source)
    labels = [str(config["id2label"][k]) for k in sorted(config.get("id2label", {}), key=int)]
    if not labels:
        raise SlimkitError(f"{source / 'config.json'}: no id2label, so the labels are unknown")
    multi = config.get("problem_type") == "multi_label_classification"
    accuracy = next(m for m in chosen.artifact.metrics if m.kind == "accuracy" and m.value is not None)
    details = accuracy.details or {}
    data: dict[str, Any] = {
        "schema": SCHEMA,
        "format": chosen.artifact.format,
        "labels": labels,
        "problem": "multi_label" if multi else "single_label",
        "threshold": details.get("threshold") if multi else None,
        "max_length": int(details.get("max_length", MEASURED_MAX_LENGTH)),
        "variant": chosen.artifact.label,
    }
    if chosen.artifact.format in MODEL_FILES:
        data["model_file"] = _model_file(chosen, source)
    if chosen.artifact.format == "openvino":
        # Compiled as slimkit timed it: the export step's inference precision (f32 unless chosen).
        data["inference_precision"] = _openvino_precision(source)
    return data


def _model_file(chosen: Chosen, source: Path) -> str:
    """The model's file in the folder: the one the artifact names, else the only one of its suffix."""
    key, suffix = MODEL_FILES[chosen.artifact.format]
    files = sorted(p.name for p in source.glob(f"*{suffix}"))
    named = chosen.artifact.metadata.get(key)
    found = named if named in files else (files[0] if len(files) == 1 else None)
    if found is None:
        raise SlimkitError(f"{source}: cannot tell which {suffix} file is the model ({', '.join(files) or 'none'})")
    return str(found)


def _openvino_precision(source: Path) -> str:
    path = source / OPENVINO_MANIFEST
    try:
        facts = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, json.JSONDecodeError) as exc:
        raise SlimkitError(f"{path}: cannot be read ({exc})", fix="run the step again") from None
    return str(facts.get("inference_precision", "f32"))


def _read_config(source: Path) -> dict[str, Any]:
    path = source / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SlimkitError(f"{path}: cannot be read ({exc})", fix="run the step again") from None
    if not isinstance(config, dict):
        raise SlimkitError(f"{path}: not a JSON object", fix="run the step again")
    return config
