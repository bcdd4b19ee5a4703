"""What hook implementations receive: one object per step, one per measurement.

Passing a single context object (rather than many positional arguments) lets slimkit add fields
without breaking plugins; hooks themselves only ever gain arguments (see docs/hooks.md).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel

from slimkit.artifacts import Artifact
from slimkit.hardware import Hardware
from slimkit.spec import MeasureSpec, Pipeline, StepSpec, TaskSpec
from slimkit.techniques import Technique

if TYPE_CHECKING:
    from slimkit.plugins import Plugins

log = logging.getLogger("slimkit")
T = TypeVar("T")
ConfigT = TypeVar("ConfigT", bound=BaseModel)

# progress(iterable, description, total) -> iterable: wraps long loops in the run's progress display.
ProgressFn = Callable[..., Iterator[Any]]


def _plain_progress(items: Iterable[T], description: str = "", total: int | None = None) -> Iterator[T]:
    yield from items


@dataclass
class StepContext(Generic[ConfigT]):
    """Everything a technique's implementation needs to perform one step.

    The implementation writes its model into ``output_dir`` (a fresh, empty folder that becomes
    the artifact only if it returns normally) and returns ``step.artifact(...)``. Annotate it with
    the technique's config model, ``def run(step: StepContext[MyConfig]) -> Artifact``, and
    ``step.config`` is typed.
    """

    name: str
    index: int
    spec: StepSpec
    technique: Technique
    config: ConfigT
    input: Artifact
    output_dir: Path
    key: str
    pipeline: Pipeline
    hardware: Hardware
    device: str
    run_dir: Path
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    progress: ProgressFn = _plain_progress
    scratch: dict[str, Any] = field(default_factory=dict)
    plugins: Plugins | None = None  # the typed facade, to load predictors of any format

    @property
    def task(self) -> TaskSpec | None:
        return self.pipeline.task

    @property
    def seed(self) -> int:
        return self.pipeline.seed

    def owns(self, technique_name: str) -> bool:
        """Whether this step is for ``technique_name``; stage hooks return None when it is not."""
        return self.technique.name == technique_name

    def artifact(self, *, format: str | None = None, **metadata: Any) -> Artifact:
        """The artifact for what the hook wrote into ``output_dir``."""
        return Artifact(
            key=self.key,
            path=self.output_dir,
            format=format or self.technique.output_format(self.input.format),
            label=self.name,
            produced_by=self.technique.name,
            metadata=metadata,
        )

    def log(self, message: str) -> None:
        log.info("[%s] %s", self.name, message)

    def rng(self) -> random.Random:
        return random.Random(self.seed)


@dataclass
class MeasureContext:
    """Shared settings for one measurement of several artifacts (baseline first).

    Measurers time the artifacts interleaved within one process so that drift hits all alike.
    """

    baseline: Artifact
    pipeline: Pipeline
    settings: MeasureSpec
    hardware: Hardware
    device: str
    run_dir: Path
    progress: ProgressFn = _plain_progress
    scratch: dict[str, Any] = field(default_factory=dict)
    plugins: Plugins | None = None  # the typed facade, to load predictors of any format

    @property
    def task(self) -> TaskSpec | None:
        return self.pipeline.task
