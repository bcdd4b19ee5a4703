"""Tasks: labelled text for training, calibration and accuracy, from local files or the hub.

A pipeline's ``task`` table (slimkit.spec.TaskSpec) is resolved here into ``TaskData``: three
splits (train, a seeded validation slice of train, eval) of texts and label arrays. Ready-made
presets describe the data in ``../shared/data`` and name the hub dataset that holds the same task.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimkit.errors import SlimkitError
from slimkit.spec import TaskSpec

if TYPE_CHECKING:
    import numpy as np

DATA_ENV = "SLIMKIT_DATA_DIR"
SEMEVAL_LABELS = [
    "anger", "anticipation", "disgust", "fear", "joy", "love",
    "optimism", "pessimism", "sadness", "surprise", "trust",
]  # fmt: skip

GOEMOTIONS_LABELS = [
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion", "curiosity",
    "desire", "disappointment", "disapproval", "disgust", "embarrassment", "excitement", "fear",
    "gratitude", "grief", "joy", "love", "nervousness", "optimism", "pride", "realization", "relief",
    "remorse", "sadness", "surprise", "neutral",
]  # fmt: skip
EKMAN_LABELS = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
# GoEmotions' own mapping of its 28 labels onto Ekman's 6 emotions plus neutral (the dataset's
# ekman_mapping.json). Applied to the hub's `simplified` config it gives exactly the rows and
# labels of ../shared/data/goemotions/ekman (checked on both splits).
EKMAN_GROUPS = {
    "anger": ["anger", "annoyance", "disapproval"],
    "disgust": ["disgust"],
    "fear": ["fear", "nervousness"],
    "joy": ["admiration", "amusement", "approval", "caring", "desire", "excitement", "gratitude", "joy", "love",
            "optimism", "pride", "relief"],
    "sadness": ["disappointment", "embarrassment", "grief", "remorse", "sadness"],
    "surprise": ["confusion", "curiosity", "realization", "surprise"],
    "neutral": ["neutral"],
}  # fmt: skip
TO_EKMAN = {GOEMOTIONS_LABELS.index(o): EKMAN_LABELS.index(e) for e, group in EKMAN_GROUPS.items() for o in group}
GOEMOTIONS_HUB = {
    "dataset": "google-research-datasets/go_emotions",
    "dataset_config": "simplified",
    "eval_split": "validation",
}

# Each preset is a TaskSpec written as a dict. Local paths are relative to the data folder
# (SLIMKIT_DATA_DIR, or ../shared/data next to the project); `hub` gives the same task online.
PRESETS: dict[str, dict[str, Any]] = {
    "semeval2018-ec": {
        "problem": "multi_label",
        "data_files": {"train": "semeval2018-ec/train.tsv", "eval": "semeval2018-ec/dev.tsv"},
        "eval_split": "eval",
        "text_column": "Tweet",
        "label_columns": SEMEVAL_LABELS,
        "label_format": "binary_columns",
        "labels": SEMEVAL_LABELS,
        "has_header": True,
        "hub": {"dataset": "sem_eval_2018_task_1", "dataset_config": "subtask5.english", "eval_split": "validation"},
    },
    "goemotions": {
        "problem": "multi_label",
        "data_files": {"train": "goemotions/original/train.tsv", "eval": "goemotions/original/dev.tsv"},
        "eval_split": "eval",
        "text_column": "text",
        "label_column": "labels",
        "label_format": "separated_ids",
        "labels_file": "goemotions/original/labels.txt",
        "has_header": False,
        "hub": GOEMOTIONS_HUB | {"labels": GOEMOTIONS_LABELS},
    },
    "goemotions-ekman": {
        "problem": "single_label",
        "data_files": {"train": "goemotions/ekman/train.tsv", "eval": "goemotions/ekman/dev.tsv"},
        "eval_split": "eval",
        "text_column": "text",
        "label_column": "labels",
        "label_format": "separated_ids",
        "labels_file": "goemotions/ekman/labels.txt",
        "filter": "single_label",
        "has_header": False,
        # The hub has no Ekman config: its `simplified` labels are mapped onto Ekman's on loading.
        "hub": GOEMOTIONS_HUB | {"labels": EKMAN_LABELS, "label_map": TO_EKMAN},
    },
}
HEADERLESS_COLUMNS = ["text", "labels", "id"]  # GoEmotions' TSV layout


@dataclass
class Split:
    texts: list[str]
    labels: np.ndarray  # single-label: (n,) int64 ids; multi-label: (n, L) float32 0/1

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, n: int | None) -> Split:
        return self if n is None else Split(self.texts[:n], self.labels[:n])


@dataclass
class TaskData:
    name: str
    problem: str  # "single_label" | "multi_label"
    labels: list[str]
    train: Split
    validation: Split
    eval: Split
    threshold: float
    description: str

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def multi_label(self) -> bool:
        return self.problem == "multi_label"


def data_dir() -> Path | None:
    """SLIMKIT_DATA_DIR, else ``shared/data`` beside the project (or the current folder's parents)."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    here = Path(__file__).resolve()
    for root in [Path.cwd().resolve(), *Path.cwd().resolve().parents, *here.parents]:
        candidate = root.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def merged_spec(task: TaskSpec) -> tuple[TaskSpec, dict[str, Any] | None]:
    """The task with its preset's values filled in (explicit fields win) and the hub fallback.

    The preset's files are made absolute under the data folder; without a data folder they are
    dropped and the hub dataset is used. The user's own relative paths stay relative to the
    pipeline file.
    """
    if task.preset is None:
        return task, None
    if task.preset not in PRESETS:
        raise SlimkitError(f"task.preset: unknown preset {task.preset!r}", fix=f"use one of {', '.join(PRESETS)}")
    preset = dict(PRESETS[task.preset])
    hub = preset.pop("hub")
    root = data_dir()
    files = preset.pop("data_files")
    preset["data_files"] = {split: str(root / f) for split, f in files.items()} if root else {}
    if "labels_file" in preset:
        labels_file = root / preset["labels_file"] if root else None
        preset["labels_file"] = str(labels_file) if labels_file and labels_file.is_file() else None
        if preset["labels_file"] is None and hub and hub.get("labels"):
            preset["labels"] = hub["labels"]  # the hub's names, in the order of its label ids
    explicit = task.model_dump(exclude_unset=True, exclude={"preset"})
    return TaskSpec.model_validate(preset | explicit | {"preset": task.preset}), hub


def read_table(path: Path, has_header: bool | None, field: str = "task.data_files") -> Any:
    """A CSV/TSV/JSON/Parquet file as a pandas DataFrame of strings; ``field`` names the option in errors."""
    import pandas as pd

    if not path.is_file():
        raise SlimkitError(f"{field}: no such file {path}")
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".csv", ".txt"):
        sep = "\t" if suffix in (".tsv", ".txt") else ","
        header = "infer" if has_header in (None, True) else None
        frame = pd.read_csv(
            path, sep=sep, quoting=csv.QUOTE_NONE, header=header, dtype=str, keep_default_na=False,
            names=None if header is not None else HEADERLESS_COLUMNS, engine="python" if sep == "," else "c",
        )  # fmt: skip
        return frame
    if suffix in (".json", ".jsonl"):
        return pd.read_json(path, lines=suffix == ".jsonl")
    if suffix == ".parquet":
        return pd.read_parquet(path)
    raise SlimkitError(f"{field}: unsupported file type {suffix!r} ({path})", fix="use CSV, TSV, JSON or Parquet")


def _load_frames(spec: TaskSpec, hub: dict[str, Any] | None, resolve: Any) -> dict[str, Any]:
    """Split name -> pandas DataFrame, from local files when they exist, else from the hub."""
    files = spec.data_files
    if files:
        paths = {split: resolve(f) for split, f in files.items()}
        if all(p.is_file() for p in paths.values()):
            return {split: read_table(p, spec.has_header) for split, p in paths.items()}
        if spec.preset is None:
            missing = [str(p) for p in paths.values() if not p.is_file()]
            raise SlimkitError(f"task.data_files: missing {', '.join(missing)}")
    dataset = spec.dataset or (hub or {}).get("dataset")
    if not dataset:
        where = f"{DATA_ENV} or ../shared/data" if spec.preset else "task.dataset or task.data_files"
        raise SlimkitError(f"task: no data found for {spec.preset or 'the task'}", fix=f"set {where}")
    local = resolve(dataset)
    if local.exists():
        files = {
            p.stem: p for p in sorted(local.iterdir()) if p.suffix in (".tsv", ".csv", ".json", ".jsonl", ".parquet")
        }
        return {split: read_table(p, spec.has_header) for split, p in files.items()}
    from datasets import load_dataset

    config = spec.dataset_config or (hub or {}).get("dataset_config")
    try:
        loaded = load_dataset(dataset, config)
    except Exception as exc:  # network or hub errors: one line, with the way out
        raise SlimkitError(
            f"task: cannot load hub dataset {dataset!r}: {type(exc).__name__}: {str(exc).splitlines()[0]}",
            fix=f"point task.data_files at local files or set {DATA_ENV}",
        ) from None
    frames = {split: loaded[split].to_pandas() for split in loaded}
    label_map = (hub or {}).get("label_map")
    if label_map and spec.label_column:
        for frame in frames.values():
            frame[spec.label_column] = [map_label_ids(ids, label_map) for ids in frame[spec.label_column]]
    return frames


def map_label_ids(ids: Any, label_map: dict[int, int]) -> list[int]:
    """A row's label ids through a many-to-one mapping, each mapped label once, in order."""
    return sorted({label_map[int(i)] for i in ids})


def _label_names(spec: TaskSpec, resolve: Any) -> list[str] | None:
    if spec.labels:
        return list(spec.labels)
    if spec.labels_file:
        path = resolve(spec.labels_file)
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if spec.label_columns:
        return list(spec.label_columns)
    return None


def _label_sets(frame: Any, spec: TaskSpec, names: list[str] | None) -> tuple[list[list[int]], list[str]]:
    """Each row's label ids, and the label names (learned from the data when not given)."""
    fmt = spec.label_format
    if fmt == "binary_columns" or (fmt is None and spec.label_columns):
        cols = spec.label_columns or names or []
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise SlimkitError(f"task.label_columns: not in the data: {', '.join(missing)}")
        values = frame[cols].astype(int).to_numpy()
        return [[j for j, v in enumerate(row) if v] for row in values], list(cols)
    column = spec.label_column
    if column is None or column not in frame.columns:
        raise SlimkitError(
            f"task.label_column: {column!r} is not a column (have: {', '.join(map(str, frame.columns))})"
        )
    raw = frame[column].tolist()
    if fmt == "separated_ids" or (fmt is None and any(isinstance(v, list | tuple) for v in raw[:5])):
        rows = [
            [int(x) for x in v] if isinstance(v, list | tuple) or hasattr(v, "tolist")
            else [int(x) for x in str(v).split(spec.label_separator) if x.strip() != ""]
            for v in raw
        ]  # fmt: skip
        count = max((max(r) for r in rows if r), default=-1) + 1
        return rows, names or [str(i) for i in range(count)]
    if fmt == "ids":
        rows = [[int(v)] for v in raw]
        count = max(r[0] for r in rows) + 1
        return rows, names or [str(i) for i in range(count)]
    # label names
    learned = names or sorted({str(v) for v in raw})
    index = {n: i for i, n in enumerate(learned)}
    unknown = sorted({str(v) for v in raw} - set(index))
    if unknown:
        raise SlimkitError(f"task.labels: values not in the label list: {', '.join(unknown[:5])}")
    return [[index[str(v)]] for v in raw], learned


def _to_split(frame: Any, spec: TaskSpec, names: list[str] | None, problem: str) -> tuple[Split, list[str]]:
    import numpy as np

    text_col = spec.text_column or "text"
    if text_col not in frame.columns:
        raise SlimkitError(
            f"task.text_column: {text_col!r} is not a column (have: {', '.join(map(str, frame.columns))})"
        )
    rows, names = _label_sets(frame, spec, names)
    texts = [str(t) for t in frame[text_col].tolist()]
    if spec.filter == "single_label":
        keep = [i for i, r in enumerate(rows) if len(r) == 1]
        texts, rows = [texts[i] for i in keep], [rows[i] for i in keep]
    if problem == "single_label":
        bad = [i for i, r in enumerate(rows) if len(r) != 1]
        if bad:
            raise SlimkitError(
                f"task: {len(bad)} rows have {len(rows[bad[0]])} labels in a single-label task",
                fix="set task.filter = 'single_label', or problem = 'multi_label'",
            )
        return Split(texts, np.array([r[0] for r in rows], dtype=np.int64)), names
    matrix = np.zeros((len(rows), len(names)), dtype=np.float32)
    for i, r in enumerate(rows):
        matrix[i, r] = 1.0
    return Split(texts, matrix), names


def _subsample(split: Split, n: int | None, seed: int) -> Split:
    import numpy as np

    if n is None or n >= len(split):
        return split
    idx = np.sort(np.random.default_rng(seed).permutation(len(split))[:n])
    return Split([split.texts[i] for i in idx], split.labels[idx])


def _carve(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(split))
    n_val = round(len(split) * fraction)
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])

    def pick(idx: Any) -> Split:
        return Split([split.texts[i] for i in idx], split.labels[idx])

    return pick(train_idx), pick(val_idx)


def load_task(task: TaskSpec, resolve: Any = Path) -> TaskData:
    """Resolve a TaskSpec into splits. ``resolve`` maps relative paths (the pipeline's resolve_path)."""
    return _load_task_cached(task.model_dump_json(exclude_unset=True), resolve)


@lru_cache(maxsize=4)
def _load_task_cached(task_json: str, resolve: Any) -> TaskData:
    task = TaskSpec.model_validate_json(task_json)
    spec, hub = merged_spec(task)
    frames = _load_frames(spec, hub, resolve)
    problem = spec.problem or ("multi_label" if spec.label_columns else "single_label")
    train_name = spec.train_split if spec.train_split in frames else "train"
    eval_name = spec.eval_split if spec.eval_split in frames else (hub or {}).get("eval_split", spec.eval_split)
    for needed in (train_name, eval_name):
        if needed not in frames:
            raise SlimkitError(f"task: split {needed!r} not found (have: {', '.join(frames)})")
    names = _label_names(spec, resolve)
    train, names = _to_split(frames[train_name], spec, names, problem)
    evaluation, _ = _to_split(frames[eval_name], spec, names, problem)
    train, validation = _carve(train, spec.validation_fraction, spec.seed)
    train = _subsample(train, spec.max_train_examples, spec.seed)
    if spec.max_train_examples is not None:
        # The validation slice keeps its share of the subsample: a full-size slice would make every
        # evaluation of a quick run cost more than its training.
        share = spec.validation_fraction / (1 - spec.validation_fraction)
        validation = _subsample(validation, max(1, round(spec.max_train_examples * share)), spec.seed)
    return TaskData(
        name=spec.preset or str(spec.dataset or "task"),
        problem=problem,
        labels=names,
        train=train,
        validation=validation,
        eval=evaluation.head(spec.max_eval_examples),
        threshold=spec.threshold,
        description=f"{spec.preset or spec.dataset}: {len(train)} train / {len(validation)} validation / "
        f"{min(len(evaluation), spec.max_eval_examples or len(evaluation))} eval, {len(names)} labels, {problem}",
    )
