"""A fake, fast slimkit plugin for the ray executor's tests, loaded as a project-local plugin file
(the study names it in ``plugins``), so that every Ray worker loads it as the driver does.

Format ``toy``: a folder holding ``weights.json``. ``sleepy.work`` sleeps, then adds ``tag`` to
every weight; it can crash its process (``crash = "always"``, or ``"once"`` with a marker file,
to test retries) the way a segfaulting library or the OOM killer would.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

import slimkit
from slimkit import Artifact, Metric, Technique
from slimkit.artifacts import stable_hash


class WorkConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tag: int = Field(default=0, description="Added to every weight.")
    seconds: float = Field(default=0.5, ge=0, description="How long the step sleeps.")
    crash: Literal["never", "always", "once"] = Field(default="never", description="Kill this process.")
    marker: str | None = Field(default=None, description="File that says 'once' already crashed.")
    log: str | None = Field(default=None, description="Folder where the step leaves start/end files.")


def _read(folder: Path) -> list[float]:
    return json.loads((folder / "weights.json").read_text())


def _write(folder: Path, weights: list[float]) -> None:
    (folder / "weights.json").write_text(json.dumps(weights))


@slimkit.hookimpl
def register_techniques(register: Any) -> None:
    register(
        Technique(name="sleepy.work", stage="quantize", summary="Sleep, then add.", consumes=["toy"], config=WorkConfig)
    )


@slimkit.hookimpl
def resolve_model(source: Any, pipeline: Any, cache_dir: Path) -> Artifact | None:
    if not source.source.startswith("sleepy:"):
        return None
    weights = [float(x) for x in source.source.removeprefix("sleepy:").split(",")]
    folder = cache_dir / f"sleepy-{stable_hash(weights)}"
    folder.mkdir(parents=True, exist_ok=True)
    # Workers resolve the source at once: each writes its own file and renames it into place, so
    # none ever reads a half-written one.
    scratch = folder / f".weights-{os.getpid()}.json"
    scratch.write_text(json.dumps(weights))
    os.replace(scratch, folder / "weights.json")
    return Artifact(key=stable_hash("sleepy", weights), path=folder, format="toy", label="source")


@slimkit.hookimpl
def quantize(step: Any) -> Artifact | None:
    if not step.owns("sleepy.work"):
        return None
    config: WorkConfig = step.config
    log = Path(config.log) if config.log else None
    if log is not None:
        (log / f"{step.name}-{config.tag}.start").write_text(str(os.getpid()))
    if config.crash == "always" or (
        config.crash == "once" and config.marker is not None and not _first_time(Path(config.marker))
    ):
        os._exit(17)  # no exception, no cleanup: as a crashing native library would
    time.sleep(config.seconds)
    _write(step.output_dir, [w + config.tag for w in _read(step.input.path)])
    if log is not None:
        (log / f"{step.name}-{config.tag}.end").write_text(str(os.getpid()))
    return step.artifact()


def _first_time(marker: Path) -> bool:
    """False the first time (and leaves the marker), True afterwards."""
    if marker.exists():
        return True
    marker.write_text("crashed once")
    return False


@slimkit.hookimpl
def measure(artifacts: Sequence[Artifact], context: Any) -> dict[str, list[Metric]]:
    out = {}
    for a in artifacts:
        weights = _read(a.path)
        out[a.key] = [
            Metric(name="score", value=round(1 - sum(weights) / 1000, 6), unit="fraction", kind="accuracy"),
            Metric(name="latency_ms.b1.s8", value=100 - sum(weights), unit="ms", kind="speed", better="lower"),
        ]
    return out
