"""Built-in plugin: size on disk of every artifact, and local model files of a stated format.

Size on disk is format-agnostic, so the core measures it for every artifact; format plugins add
parameter counts, latency and accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from slimkit.artifacts import Artifact, disk_size, stable_hash
from slimkit.context import MeasureContext
from slimkit.hookspecs import hookimpl
from slimkit.metrics import Metric
from slimkit.spec import ModelSource, Pipeline


@hookimpl(trylast=True)
def resolve_model(source: ModelSource, pipeline: Pipeline, cache_dir: Path) -> Artifact | None:
    """A local file or folder whose format the pipeline states; plugins that know more go first."""
    path = pipeline.resolve_path(source.source)
    if source.format is None or not path.exists():
        return None
    stat = path.stat()
    return Artifact(
        key=stable_hash("local", str(path.resolve()), source.format, disk_size(path), stat.st_mtime_ns),
        path=path.resolve(),
        format=source.format,
        label="source",
    )


@hookimpl
def measure(artifacts: Sequence[Artifact], context: MeasureContext) -> dict[str, list[Metric]]:
    return {
        a.key: [
            Metric(
                name="size_bytes",
                value=float(disk_size(a.path)),
                unit="bytes",
                kind="size",
                better="lower",
            )
        ]
        for a in artifacts
    }
