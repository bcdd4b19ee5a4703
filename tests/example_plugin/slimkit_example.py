"""slimkit-example: the smallest useful third-party plugin.

It knows one model format, ``example-json`` (a folder with ``weights.json``, a list of floats),
loads sources written ``example:0.1,0.2``, and offers one technique, ``example.round``, that
rounds every weight. slimkit's tests install it as its own distribution to check that an
entry-point plugin shows up in ``slimkit plugins`` and runs in a pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

import slimkit

FORMAT = "example-json"


class RoundConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decimals: int = Field(default=1, ge=0, le=8, description="Decimals kept for every weight.")


@slimkit.hookimpl
def register_techniques(register: Any) -> None:
    register(
        slimkit.Technique(
            name="example.round",
            stage="quantize",
            summary="Round every weight to a few decimals.",
            consumes=[FORMAT],
            after=["train", "prune"],
            config=RoundConfig,
            implementation="slimkit_example:round_weights",
        )
    )


@slimkit.hookimpl
def resolve_model(source: Any, pipeline: Any, cache_dir: Path) -> slimkit.Artifact | None:
    if not source.source.startswith("example:"):
        return None
    weights = [float(x) for x in source.source.removeprefix("example:").split(",")]
    from slimkit.artifacts import stable_hash

    key = stable_hash(FORMAT, weights)
    folder = cache_dir / f"example-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "weights.json").write_text(json.dumps(weights))
    return slimkit.Artifact(key=key, path=folder, format=FORMAT, label="source")


def round_weights(step: slimkit.StepContext[RoundConfig]) -> slimkit.Artifact:
    """example.round: the declaration names this function; slimkit calls it for each such step."""
    weights = json.loads((step.input.path / "weights.json").read_text())
    rounded = [round(w, step.config.decimals) for w in weights]
    (step.output_dir / "weights.json").write_text(json.dumps(rounded))
    return step.artifact(weights=len(rounded))
