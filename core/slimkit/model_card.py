"""The ``README.md`` model card of a package, in the Hugging Face format: a YAML header (library,
pipeline tag, base model, dataset, the measured metrics) and a body with the recipe step by step,
the figures measured against the baseline in one session, the machine, and how to load it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from slimkit.report import compact_cell, options_text
from slimkit.results import AnyResults, MeasuredArtifact

if TYPE_CHECKING:
    from slimkit.package import Chosen

SPEED = ("latency_ms.b1.s128", "latency_ms.b32.s128")
# The card's library_name per package format (anything else is a Hugging Face folder).
LIBRARIES = {"onnx": "onnxruntime", "openvino": "openvino"}
# What slimkit-runtime needs to serve each format it serves.
RUNTIME_NEEDS = {
    "onnx": "onnxruntime, tokenizers and numpy",
    "openvino": "`pip install 'slimkit-runtime[openvino]'`: OpenVINO, tokenizers and numpy",
}


def model_card(chosen: Chosen, manifest: dict[str, Any]) -> str:
    return "\n".join([*_header(chosen, manifest), "", *_body(chosen, manifest)]) + "\n"


def _accuracy(artifact: MeasuredArtifact) -> list[tuple[str, float]]:
    return [(m.name, float(m.value)) for m in artifact.metrics if m.kind == "accuracy" and m.value is not None]


def _header(chosen: Chosen, manifest: dict[str, Any]) -> list[str]:
    source, task = chosen.source, chosen.task
    library = LIBRARIES.get(manifest["format"], "transformers")
    lines = [
        "---",
        f"library_name: {library}",
        "pipeline_tag: text-classification",
        f"base_model: {json.dumps(source)}",
    ]
    lines += [f"datasets:\n- {json.dumps(task)}", "tags:\n- slimkit\n- text-classification"]
    accuracy = [(n, v) for n, v in _accuracy(chosen.artifact) if n != "agreement"]
    lines.append("metrics:\n" + "\n".join(f"- {n}" for n, _ in accuracy))
    results = "\n".join(f"      - type: {n}\n        value: {v:.4f}" for n, v in accuracy)
    index = f"model-index:\n- name: {json.dumps(chosen.artifact.label)}\n  results:\n"
    index += "  - task:\n      type: text-classification\n"
    index += f"    dataset:\n      name: {json.dumps(task)}\n      type: {json.dumps(task)}\n    metrics:\n{results}"
    lines.append(index)
    return [*lines, "---"]


def _body(chosen: Chosen, manifest: dict[str, Any]) -> list[str]:
    source, task = chosen.source, chosen.task
    name = chosen.artifact.label
    lines = [f"# {name}", "", f"`{source}` compressed by slimkit for `{task}` "
             f"({manifest['problem'].replace('_', '-')}, {len(manifest['labels'])} labels: "
             f"{', '.join(manifest['labels'])}); {chosen.why}.", "", "## Recipe", ""]  # fmt: skip
    for step in chosen.results.steps_of(name):
        options = options_text(step.config)
        lines.append(f"{step.index}. **{step.name}**: `{step.technique}` ({step.plugin} {step.plugin_version})"
                     + (f": {options}" if options else ""))  # fmt: skip
    return [*lines, "", *_figures(chosen), "", *_usage(manifest)]


def _cell(artifact: MeasuredArtifact | None, name: str) -> str:
    metric = artifact.metric(name) if artifact is not None else None
    return "—" if metric is None or metric.value is None else compact_cell(metric)


def _sessions(results: AnyResults) -> str:
    settings = results.measure_settings
    if settings is None or settings.sessions == 1:
        return "one session"
    return f"{settings.sessions} sessions (median; ratios' range across sessions in brackets)"


def _figures(chosen: Chosen) -> list[str]:
    results = chosen.results
    names = [n for n, _ in _accuracy(chosen.artifact)] + [*SPEED, "size_bytes", "peak_rss_bytes"]
    rows = [("baseline", chosen.baseline), (chosen.artifact.label, chosen.artifact)]
    lines = ["## Measured against the baseline", "",
             f"Measured by slimkit in {_sessions(results)}, baseline and this model interleaved; accuracy in percent "
             "(points against the baseline), ratios are the baseline's figure over this model's (higher is better).",
             "", "| model | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]  # fmt: skip
    lines += [f"| {label} | " + " | ".join(_cell(a, n) for n in names) + " |" for label, a in rows]
    hw = results.hardware
    timed = next((m for m in chosen.artifact.metrics if m.kind == "speed" and "threads" in m.details), None)
    threads = timed.details["threads"] if timed is not None else None
    machine = f"{hw.cpu_model}, {hw.physical_cores} cores" if hw is not None else "unknown machine"
    libraries = ", ".join(f"{k} {v}" for k, v in sorted(results.libraries.items()))
    return [*lines, "", f"Machine: {machine}; device {results.device}; threads {threads or 'physical cores'}.",
            f"Libraries: {libraries}."]  # fmt: skip


def _usage(manifest: dict[str, Any]) -> list[str]:
    if manifest["format"] in RUNTIME_NEEDS:
        return ["## How to use", "", f"With slimkit-runtime ({RUNTIME_NEEDS[manifest['format']]}; no torch):", "",
                "```python", "from slimkit_runtime import Classifier", "",
                'clf = Classifier.load("path/to/this/folder")', 'clf.predict(["I can\'t wait for the weekend!"])',
                "```"]  # fmt: skip
    return ["## How to use", "", "```python", "from transformers import pipeline", "",
            'clf = pipeline("text-classification", model="path/to/this/folder")', "```"]  # fmt: skip
