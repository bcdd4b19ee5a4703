"""results.json: one typed, versioned model for runs and studies, written and read through it.

:class:`RunResults` (``slimkit.results/N``) and :class:`StudyResults` (``slimkit.study/N``) share
:class:`Results`: the outcome with its exit code and reason, the machine, library versions, the
measure settings, and every measured artifact with its metrics compared with the baseline. The
runner and the study runner build them; the report, the plots and ``slimkit report`` read them
with :func:`load_results`, which turns a file of another shape into one line naming the field.

Version 2 (written now) differs from version 1 (still read) only in its paths, which are portable:
an artifact's ``path`` is relative to the folder of results.json (``../store/finetune-<key>/model``)
or, for the source-model cache, starts with ``$SLIMKIT_CACHE/``; never an absolute path of the
machine that wrote it. :meth:`Results.resolve` turns one back into a path on this machine.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from slimkit.artifacts import CACHE_ENV, Artifact, cache_dir, write_json_atomic
from slimkit.errors import ExitCode, SlimkitError
from slimkit.hardware import Hardware
from slimkit.metrics import Metric, MetricKind, compare
from slimkit.spec import MeasureSpec, ModelSource, StepSpec, TaskSpec
from slimkit.study.spec import BudgetSpec
from slimkit.validation import one_line

RUN_SCHEMA: Final = "slimkit.results/2"
STUDY_SCHEMA: Final = "slimkit.study/2"
RESULTS_FILE = "results.json"

Outcome = Literal["done", "failed", "bad_input", "refused", "interrupted", "running"]
OUTCOME_EXIT_CODES: dict[str, int] = {
    "done": ExitCode.OK,
    "failed": ExitCode.STEP_FAILED,
    "bad_input": ExitCode.USAGE,
    "refused": ExitCode.PLAN_REFUSED,
    "interrupted": ExitCode.INTERRUPTED,
}
StepStatus = Literal["pending", "done", "reused", "failed", "skipped", "interrupted", "not run"]
VariantStatus = Literal["built", "reused", "failed", "refused", "skipped", "not run", "invalid"]

# -- Portable paths -------------------------------------------------------------------------

CACHE_TOKEN = f"${CACHE_ENV}"


def portable_path(path: Path, folder: Path) -> str:
    """``path`` as results.json writes it: under the source-model cache, ``$SLIMKIT_CACHE/<rest>``;
    anywhere else, relative to ``folder`` (the folder of results.json), climbing with ``..`` to a
    shared store. slimkit is POSIX-only (flock), where a relative path always exists."""
    path = Path(os.path.abspath(path))
    for cache in (Path(os.path.abspath(cache_dir())), cache_dir().resolve()):
        if path == cache or cache in path.parents:
            return "/".join([CACHE_TOKEN, *path.relative_to(cache).parts])
    return Path(os.path.relpath(path, os.path.abspath(folder))).as_posix()


def resolve_path(text: str, folder: Path) -> Path:
    """A path from results.json on this machine: ``$SLIMKIT_CACHE/...`` under this machine's cache,
    a relative one against ``folder``; an absolute one (version 1 files) as it is."""
    if text == CACHE_TOKEN or text.startswith(CACHE_TOKEN + "/"):
        return cache_dir().joinpath(*text.split("/")[1:])
    path = Path(text)
    return path if path.is_absolute() else Path(os.path.normpath(folder / path))


# -- Records --------------------------------------------------------------------------------


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoredArtifact(_Record):
    """A step's artifact as a step record holds it (the fields of :class:`~slimkit.artifacts.Artifact`)."""

    key: str
    path: str = Field(description="Portable: relative to results.json's folder, or $SLIMKIT_CACHE/...")
    format: str
    label: str
    produced_by: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, artifact: Artifact, folder: Path) -> Self:
        return cls.model_validate(artifact.model_dump(mode="json") | {"path": portable_path(artifact.path, folder)})


class ResultMetric(Metric):
    """A metric as results.json records it: the measurer's figure and its comparison with the baseline."""

    vs_baseline: dict[str, float] = Field(
        default_factory=dict, description="{'ratio': x} (speed, size, memory) or {'delta_points': x} (accuracy)."
    )


class MeasuredArtifact(_Record):
    """The source or a step's (or variant's) output, with every metric measured on it."""

    label: str
    key: str
    format: str
    path: str = Field(description="Portable: relative to results.json's folder, or $SLIMKIT_CACHE/...")
    produced_by: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    metrics: list[ResultMetric] = Field(default_factory=list)

    def metric(self, name: str) -> ResultMetric | None:
        return next((m for m in self.metrics if m.name == name), None)


def measured_artifacts(
    artifacts: Sequence[Artifact], metrics: Mapping[str, list[Metric]], baseline_key: str | None, folder: Path
) -> list[MeasuredArtifact]:
    """Each artifact with its metrics, each compared with the baseline's metric of the same name."""
    baseline = {m.name: m for m in metrics.get(baseline_key or "", [])}
    return [
        MeasuredArtifact(
            label=a.label,
            key=a.key,
            format=a.format,
            path=portable_path(a.path, folder),
            produced_by=a.produced_by,
            metadata=a.metadata,
            metrics=[
                ResultMetric(**m.model_dump(), vs_baseline=compare(m, baseline.get(m.name)))
                for m in metrics.get(a.key, [])
            ],
        )
        for a in artifacts
    ]


def metric_names(artifacts: Sequence[MeasuredArtifact], kind: MetricKind | None = None) -> set[str]:
    """The names of the metrics measured on any of ``artifacts`` (of one kind, if given)."""
    return {m.name for a in artifacts for m in a.metrics if kind is None or m.kind == kind}


class _StepFields(_Record):
    """What the plan and the run both say of a step: which technique, from which plugin, with what config."""

    index: int
    name: str
    technique: str
    stage: str
    plugin: str | None = None
    plugin_version: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)


class StepResult(_StepFields):
    """One step of a run: what ran, how it ended, and the artifact it made."""

    key: str | None = None
    status: StepStatus
    seconds: float | None = None
    error: str | None = None
    artifact: StoredArtifact | None = None

    @classmethod
    def of(cls, record: Mapping[str, Any], folder: Path) -> Self:
        """From a runner's step record (``StepRecord.as_dict()``), its artifact's path made portable."""
        artifact = record.get("artifact")
        stored = None if artifact is None else StoredArtifact.of(Artifact.model_validate(artifact), folder)
        return cls.model_validate({**record, "artifact": stored})


class PlannedStepResult(_StepFields):
    """One step as the plan placed it: its formats, and why the planner chose its technique."""

    input_format: str
    output_format: str
    reason: str


class PlanResult(_Record):
    """The plan a run followed (``Plan.as_dict()``)."""

    pipeline: str
    ok: bool
    device: str
    source_format: str
    family: str | None = None  # absent in results written before model families were declared
    steps: list[PlannedStepResult] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


# A study file's own words: only the fields it set, as it set them (a default written out would
# read back as the user's choice).
AsWritten = PlainSerializer(lambda spec: spec.model_dump(mode="json", exclude_unset=True))
StepAsWritten = Annotated[StepSpec, AsWritten]
TaskAsWritten = Annotated[TaskSpec, AsWritten]


class Selection(_Record):
    """The variant a study chose within its accuracy budget, and the Pareto front."""

    objective: str | None
    accuracy: str | None
    budget_points: float
    chosen: str | None = None
    meets_budget: bool = False
    reason: str = ""
    pareto_front: list[str] = Field(default_factory=list)
    within_budget: list[str] = Field(default_factory=list)
    closest: str | None = None


class SearchResult(_Record):
    strategy: str
    objective: str
    budget: BudgetSpec
    time_budget_s: float | None = None
    stopped_by_time_budget: bool = False
    built: int = 0
    total: int = 0


class VariantResult(_Record):
    """One variant of a study: its recipe, how its build ended, and its steps' records."""

    name: str
    blocks: list[str] = Field(default_factory=list)
    steps: list[str] = Field(default_factory=list, description="Every step's label, base steps first.")
    problems: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    status: VariantStatus
    note: str | None = None
    key: str | None = None
    format: str | None = None
    build_seconds: float | None = None
    steps_of_unknown_time: int = 0
    step_records: list[StepResult] = Field(default_factory=list)
    config: list[StepAsWritten] = Field(default_factory=list, description="The steps its blocks add.")
    built_on: str | None = Field(
        default=None,
        # Written only when known, so that files from before it read back and write out the same.
        exclude_if=lambda v: v is None,
        description="The machine that built it (hostname; the Ray executor adds the node id).",
    )


# -- The documents --------------------------------------------------------------------------


class Results(_Record):
    """What runs and studies both record. ``outcome`` is None only in files written before
    outcomes were recorded."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    KEY_ORDER: ClassVar[tuple[str, ...]] = ()  # the order of results.json's keys

    schema_: str = Field(alias="schema")
    pipeline: str | None = None
    finished: str | None = None
    seconds: float | None = None
    outcome: Outcome | None = None
    exit_code: int | None = None
    reason: str | None = None
    device: str | None = None
    hardware: Hardware | None = None
    libraries: dict[str, str] = Field(default_factory=dict)
    measure_settings: MeasureSpec | None = None
    baseline: str | None = Field(default=None, description="The label of the artifact figures are compared with.")
    artifacts: list[MeasuredArtifact] = Field(default_factory=list)
    measure_errors: dict[str, str] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    _folder: Path = PrivateAttr(default_factory=Path)

    @model_serializer(mode="wrap")
    def _in_key_order(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {k: data[k] for k in self.KEY_ORDER if k in data} | data

    @property
    def folder(self) -> Path:
        """The folder of results.json, which its relative paths resolve against."""
        return self._folder

    def located(self, folder: Path) -> Self:
        self._folder = folder
        return self

    @property
    def title(self) -> str:
        return self.pipeline or "?"

    def resolve(self, path: str) -> Path:
        """An artifact's recorded path as a path on this machine."""
        return resolve_path(path, self._folder)

    def document(self) -> dict[str, Any]:
        """results.json's JSON object."""
        return self.model_dump(mode="json", by_alias=True)

    def save(self) -> Path:
        """Write results.json into its folder, atomically; return its path."""
        path = self._folder / RESULTS_FILE
        write_json_atomic(path, self.document())
        return path


COMMON_KEYS = ("finished", "seconds", "outcome", "exit_code", "reason", "device", "hardware", "libraries")


class RunResults(Results):
    """results.json of ``slimkit run``."""

    KEY_ORDER = ("schema", "pipeline", *COMMON_KEYS, "measure_settings", "baseline", "plan", "steps", "artifacts")

    schema_: Literal["slimkit.results/1", "slimkit.results/2"] = Field(default=RUN_SCHEMA, alias="schema")
    pipeline: str
    plan: PlanResult | None = None
    steps: list[StepResult] = Field(default_factory=list)
    error: str | None = Field(default=None, description="Why the run stopped on bad input, if it did.")

    def step(self, name: str) -> StepResult | None:
        return next((s for s in self.steps if s.name == name), None)

    def steps_of(self, label: str) -> list[StepResult]:
        """The steps that made the artifact ``label``: the run's steps up to it (none for the source)."""
        names = [s.name for s in self.steps]
        return self.steps[: names.index(label) + 1] if label in names else []


class StudyResults(Results):
    """results.json of ``slimkit study``; ``pipeline`` repeats the study's name."""

    KEY_ORDER = ("schema", "study", "pipeline", *COMMON_KEYS, "model", "task", "base", "measure_settings",
                 "executor", "measured_on", "baseline", "search", "selection", "variants",
                 "artifacts")  # fmt: skip

    schema_: Literal["slimkit.study/1", "slimkit.study/2"] = Field(default=STUDY_SCHEMA, alias="schema")
    study: str
    model: ModelSource | None = None
    task: TaskAsWritten | None = None
    base: list[StepAsWritten] = Field(default_factory=list)
    executor: str | None = None
    measured_on: str | None = Field(
        default=None, exclude_if=lambda v: v is None, description="Hostname of the one measurement session."
    )
    search: SearchResult | None = None
    selection: Selection | None = None
    variants: list[VariantResult] = Field(default_factory=list)

    @property
    def title(self) -> str:
        return self.study

    def steps_of(self, label: str) -> list[StepResult]:
        """The steps that made the variant ``label``, base steps first."""
        variant = next((v for v in self.variants if v.name == label), None)
        return variant.step_records if variant is not None else []


AnyResults = RunResults | StudyResults


def parse_results(data: Any, where: Path) -> AnyResults:
    """A results document read from ``where``; one line naming the first wrong fields otherwise."""
    if not isinstance(data, dict):
        raise SlimkitError(f"{where} is not a results file: it holds no JSON object")
    schema = data.get("schema")
    model: type[AnyResults] = (
        StudyResults if isinstance(schema, str) and schema.startswith("slimkit.study/") else RunResults
    )
    # The models default the schema for writing; a file must say which version it is.
    problem = "schema: Field required" if schema is None else None
    try:
        results = model.model_validate(data)
    except ValidationError as exc:
        problem = problem or one_line(exc)
    if problem is not None:
        raise SlimkitError(
            f"{where} does not have the shape slimkit writes: {problem}",
            fix="pass a run directory written by `slimkit run` or `slimkit study`",
        )
    return results.located(where.parent)


def load_results(path: Path) -> AnyResults:
    """The results of the run or study in folder ``path`` (or of the results file ``path``)."""
    file = path / RESULTS_FILE if path.is_dir() else path
    if not file.is_file():
        raise SlimkitError(f"no results.json in {path}", fix="pass the run directory that `slimkit run` printed")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise SlimkitError(f"{file} is not a results file: {exc}") from None
    return parse_results(data, file)
