"""What is logged, under which names: pure functions from results.json's model to MLflow keys.

MLflow keys may hold letters, digits, ``_ - . / `` and spaces (colons too, but not on Windows),
at most 250 characters, and must not read as another path (``a//b``, ``../a``, ``/a``).
Parameters hold at most 6000 characters, tags 8000 (MLflow 2.14 and later).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from slimkit.results import MeasuredArtifact, Results, RunResults, StepResult, StudyResults, VariantResult

MAX_KEY = 250
MAX_PARAM = 6000
MAX_TAG = 8000
_ILLEGAL = re.compile(r"[^\w.\- /]")


def key(name: str) -> str:
    """``name`` as a legal MLflow key: other characters become ``_``, empty and dot-only path parts
    are dropped, so ``prune[threshold=0.5]`` reads ``prune_threshold_0.5_``."""
    parts = [p.strip() for p in _ILLEGAL.sub("_", name).split("/")]
    cleaned = "/".join(p if p not in ("", ".", "..") else "_" for p in parts if p != "")
    return (cleaned or "_")[:MAX_KEY]


def text(value: Any, limit: int) -> str:
    """A parameter's or tag's value: strings as they are, anything else as JSON, cut to ``limit``."""
    out = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return out if len(out) <= limit else out[: limit - 1] + "…"


def flatten(prefix: str, value: Any) -> dict[str, Any]:
    """Nested tables as dotted keys (``step.1.config.epochs``); lists and scalars are leaves."""
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out |= flatten(f"{prefix}.{k}" if prefix else str(k), v)
        return out
    return {prefix: value}


def params(values: Mapping[str, Any]) -> dict[str, str]:
    return {key(k): text(v, MAX_PARAM) for k, v in values.items()}


def tags(values: Mapping[str, Any]) -> dict[str, str]:
    return {key(k): text(v, MAX_TAG) for k, v in values.items() if v is not None}


# -- Metrics --------------------------------------------------------------------------------


def figures(artifact: MeasuredArtifact, prefix: str = "") -> dict[str, float]:
    """Every metric of ``artifact``: ``<name>`` (the value), ``<name>.spread.<field>`` (p90, p99,
    min, ...: the Metric's spread) and ``<name>.vs_baseline.<field>`` (ratio or delta_points);
    each under ``<prefix>/`` when a prefix is given. A metric without a value logs only its spread."""
    out: dict[str, float] = {}
    head = f"{prefix}/" if prefix else ""
    for metric in artifact.metrics:
        name = head + metric.name
        if metric.value is not None:
            out[name] = float(metric.value)
        for field, value in metric.spread.items():
            out[f"{name}.spread.{field}"] = float(value)
        for field, value in metric.vs_baseline.items():
            if value is not None:
                out[f"{name}.vs_baseline.{field}"] = float(value)
    return {key(k): v for k, v in out.items() if not math.isnan(v)}


def unmeasured(artifacts: Iterable[MeasuredArtifact]) -> list[str]:
    return sorted({f"{a.label}/{m.name}" for a in artifacts for m in a.metrics if m.value is None})


# -- Parameters -----------------------------------------------------------------------------


def step_params(steps: Iterable[StepResult], prefix: str = "step") -> dict[str, Any]:
    """The recipe, step by step: ``step.<i>.name``, ``.technique``, ``.stage``, ``.plugin``
    (name and version) and ``.config.<field>`` for each field of the step's validated config."""
    out: dict[str, Any] = {}
    for number, step in enumerate(steps, start=1):
        at = f"{prefix}.{number}"
        out |= {f"{at}.name": step.name, f"{at}.technique": step.technique, f"{at}.stage": step.stage}
        if step.plugin:
            out[f"{at}.plugin"] = f"{step.plugin} {step.plugin_version or ''}".strip()
        out |= flatten(f"{at}.config", step.config) if step.config else {}
    return out


def written_step_params(steps: Iterable[Any], prefix: str) -> dict[str, Any]:
    """Steps as a study file wrote them (base steps, a variant's blocks): only the fields it set."""
    out: dict[str, Any] = {}
    for number, step in enumerate(steps, start=1):
        out |= flatten(f"{prefix}.{number}", step.model_dump(mode="json", exclude_unset=True))
    return out


def common_params(results: Results) -> dict[str, Any]:
    out: dict[str, Any] = {"device": results.device, "baseline": results.baseline}
    if results.measure_settings is not None:
        out |= flatten("measure", results.measure_settings.model_dump(mode="json"))
    return {k: v for k, v in out.items() if v is not None}


def run_params(results: RunResults) -> dict[str, Any]:
    out = {"pipeline": results.pipeline, **common_params(results)}
    if results.plan is not None:
        out |= {"source_format": results.plan.source_format, "family": results.plan.family}
    return {k: v for k, v in out.items() if v is not None} | step_params(results.steps)


def study_params(results: StudyResults) -> dict[str, Any]:
    out: dict[str, Any] = {"study": results.study, "executor": results.executor, **common_params(results)}
    if results.model is not None:
        out |= flatten("model", results.model.model_dump(mode="json", exclude_defaults=True))
    if results.search is not None:
        out |= flatten("search", results.search.model_dump(mode="json", exclude={"built", "total"}))
    out |= written_step_params(results.base, "base")
    return {k: v for k, v in out.items() if v is not None}


def variant_params(results: StudyResults, variant: VariantResult) -> dict[str, Any]:
    """A variant's whole recipe (base steps first) from its step records; before it was built,
    the steps as the study file wrote them."""
    out: dict[str, Any] = {"variant": variant.name, "blocks": "+".join(variant.blocks) or "(none)"}
    if variant.step_records:
        return out | step_params(variant.step_records)
    return out | written_step_params([*results.base, *variant.config], "step")


# -- Tags -----------------------------------------------------------------------------------


def threads(results: Results) -> int | None:
    """The intra-op threads of the measurement: as set, else as a latency metric recorded it."""
    if results.measure_settings is not None and results.measure_settings.threads:
        return results.measure_settings.threads
    for artifact in results.artifacts:
        for metric in artifact.metrics:
            if isinstance(metric.details.get("threads"), int):
                return int(metric.details["threads"])
    return None


def context_tags(results: Results, kind: str) -> dict[str, Any]:
    """What every run of a results file shares: its outcome, the machine and the libraries."""
    out: dict[str, Any] = {
        "slimkit.kind": kind,
        "slimkit.schema": results.schema_,
        "slimkit.pipeline": results.pipeline,
        "slimkit.outcome": results.outcome,
        "slimkit.exit_code": results.exit_code,
        "slimkit.reason": results.reason,
        "slimkit.finished": results.finished,
        "slimkit.device": results.device,
        "slimkit.threads": threads(results),
    }
    if isinstance(results, StudyResults):
        out["slimkit.study"] = results.study
    hw = results.hardware
    if hw is not None:
        out |= {
            "hardware.cpu_model": hw.cpu_model,
            "hardware.arch": hw.arch,
            "hardware.logical_cores": hw.logical_cores,
            "hardware.physical_cores": hw.physical_cores,
            "hardware.cpu_flags": ",".join(hw.cpu_flags) or "(none)",
            "hardware.memory_bytes": hw.memory_bytes,
            "hardware.cuda": ",".join(d.name for d in hw.cuda) or "(none)",
        }
    out |= {f"library.{name}": version for name, version in results.libraries.items()}
    return out
