"""A tiny pure-Python plugin used by the core's tests: no torch, instant steps.

Format ``toy``: a folder holding ``weights.json`` (a list of floats). Format ``toyx``: the same,
"exported" to ``weights.toyx``. Its techniques do real (if trivial) work so that tests can check
what each step wrote.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

import slimkit
from slimkit import Artifact, Metric, StepContext, Technique
from slimkit.artifacts import stable_hash


class RoundConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decimals: int = Field(default=1, ge=0, le=6, description="Decimals kept.")


class PruneConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threshold: float = Field(default=0.25, ge=0, description="Weights with |w| below it become 0.")


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    factor: float = Field(default=2.0, description="Every weight is multiplied by it.")


def read(path: Path) -> list[float]:
    target = path / "weights.json" if path.is_dir() else path
    return json.loads(target.read_text())


def write(folder: Path, weights: list[float], name: str = "weights.json") -> None:
    (folder / name).write_text(json.dumps(weights))


TECHNIQUES = [
    Technique(name="toy.finetune", stage="train", summary="Scale weights.", consumes=["toy"], config=TrainConfig),
    Technique(
        name="toy.prune",
        stage="prune",
        summary="Zero small weights.",
        consumes=["toy"],
        before=["train"],
        config=PruneConfig,
        goals=["size"],
    ),
    Technique(
        name="toy.round",
        stage="quantize",
        summary="Round weights.",
        consumes=["toy"],
        after=["prune", "train", "distill"],
        goals=["size", "speed"],
        config=RoundConfig,
    ),
    Technique(name="toy.export", stage="export", summary="Export to toyx.", consumes=["toy"], produces="toyx"),
    Technique(name="toy.fail", stage="quantize", summary="Always raises.", consumes=["toy", "toyx"]),
]


class ToyPlugin:
    """Hook implementations; ``calls`` records the hook calls made (for order tests)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.executed: list[str] = []

    @slimkit.hookimpl
    def register_techniques(self, register):  # type: ignore[no-untyped-def]
        for technique in TECHNIQUES:
            register(technique)

    @slimkit.hookimpl
    def resolve_model(self, source, pipeline, cache_dir):  # type: ignore[no-untyped-def]
        if not source.source.startswith("toy:"):
            return None
        weights = [float(x) for x in source.source[4:].split(",")]
        folder = cache_dir / f"toy-{stable_hash(weights)}"
        folder.mkdir(parents=True, exist_ok=True)
        write(folder, weights)
        self.calls.append("resolve_model")
        return Artifact(key=stable_hash("toy", weights), path=folder, format="toy", label="source")

    def _stage(self, step: StepContext, name: str) -> Artifact | None:
        if step.technique.name != name:
            return None
        self.calls.append(f"{step.technique.stage.value}:{step.name}")
        self.executed.append(step.name)
        weights = read(step.input.path)
        if name == "toy.finetune":
            weights = [w * step.config.factor for w in weights]  # type: ignore[attr-defined]
        elif name == "toy.prune":
            weights = [0.0 if abs(w) < step.config.threshold else w for w in weights]  # type: ignore[attr-defined]
        elif name == "toy.round":
            weights = [round(w, step.config.decimals) for w in weights]  # type: ignore[attr-defined]
        elif name == "toy.export":
            write(step.output_dir, weights, "weights.toyx")
            return step.artifact(n=len(weights))
        write(step.output_dir, weights)
        return step.artifact(n=len(weights))

    @slimkit.hookimpl
    def train(self, step):  # type: ignore[no-untyped-def]
        return self._stage(step, "toy.finetune")

    @slimkit.hookimpl
    def prune(self, step):  # type: ignore[no-untyped-def]
        return self._stage(step, "toy.prune")

    @slimkit.hookimpl
    def quantize(self, step):  # type: ignore[no-untyped-def]
        if step.owns("toy.fail"):
            self.calls.append(f"quantize:{step.name}")
            raise RuntimeError("toy.fail always fails")
        return self._stage(step, "toy.round")

    @slimkit.hookimpl
    def export(self, step):  # type: ignore[no-untyped-def]
        return self._stage(step, "toy.export")

    @slimkit.hookimpl
    def measure(self, artifacts: Sequence[Artifact], context):  # type: ignore[no-untyped-def]
        self.calls.append("measure:" + ",".join(a.label for a in artifacts))
        out = {}
        for a in artifacts:
            path = a.path / ("weights.toyx" if a.format == "toyx" else "weights.json")
            weights = read(path)
            nonzero = sum(1 for w in weights if w != 0) / len(weights)
            out[a.key] = [
                Metric(name="nonzero_share", value=nonzero, unit="fraction", kind="accuracy", better="higher")
            ]
        return out

    @slimkit.hookimpl
    def before_step(self, step):  # type: ignore[no-untyped-def]
        self.calls.append(f"before_step:{step.name}" + (":cached" if step.scratch.get("cached") else ""))

    @slimkit.hookimpl
    def after_step(self, step, artifact):  # type: ignore[no-untyped-def]
        self.calls.append(f"after_step:{step.name}")

    @slimkit.hookimpl
    def on_step_error(self, step, error):  # type: ignore[no-untyped-def]
        self.calls.append(f"on_step_error:{step.name}:{type(error).__name__}")
