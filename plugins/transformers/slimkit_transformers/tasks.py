"""Tasks: labelled text for training, calibration and accuracy, from local files or the hub.

A pipeline's ``task`` table (slimkit.spec.TaskSpec) is resolved here into ``TaskData``: three
splits (train, a seeded validation slice of train, eval) of texts and label arrays. Ready-made
presets describe the data in ``../shared/data`` and name the hub dataset that holds the same task.
"""

from __future__ import annotations

import codecs
import csv
import io
import numbers
import operator
import os
import re
from dataclasses import dataclass, field
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
        "quoting": "none",  # tweets hold quotes
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
        "quoting": "none",  # comments hold quotes
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
        "quoting": "none",
        # The hub has no Ekman config: its `simplified` labels are mapped onto Ekman's on loading.
        "hub": GOEMOTIONS_HUB | {"labels": EKMAN_LABELS, "label_map": TO_EKMAN},
    },
}
HEADERLESS_COLUMNS = ["text", "labels", "id"]  # GoEmotions' TSV layout
WHOLE_NUMBER = re.compile(r"\s*-?[0-9]+\s*")  # a label id or a 0/1 flag as written in a file


@dataclass
class Split:
    texts: list[str]
    labels: np.ndarray  # single-label: (n,) int64 ids; multi-label: (n, L) float32 0/1
    text_pairs: list[str] | None = None  # each row's second text, in a sentence-pair task

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, n: int | None) -> Split:
        if n is None:
            return self
        return Split(self.texts[:n], self.labels[:n], None if self.text_pairs is None else self.text_pairs[:n])

    def take(self, idx: Any) -> Split:
        """The rows at positions ``idx``, in that order."""
        pairs = None if self.text_pairs is None else [self.text_pairs[i] for i in idx]
        return Split([self.texts[i] for i in idx], self.labels[idx], pairs)

    @property
    def inputs(self) -> list[str] | list[tuple[str, str]]:
        """What a tokenizer takes for these rows: the texts, or (text, pair) tuples in a
        sentence-pair task (a Hugging Face tokenizer encodes a list of 2-tuples as pairs)."""
        if self.text_pairs is None:
            return self.texts
        return list(zip(self.texts, self.text_pairs, strict=True))


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
    notes: list[str] = field(default_factory=list)  # what reading changed, e.g. rows a filter skipped

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


def read_text(path: Path, where: str, encoding: str = "utf-8") -> str:
    """A file's text in ``encoding`` (a leading byte-order mark dropped); SlimkitError naming the
    row and byte offset of the first byte that does not decode, where pandas would raise a
    UnicodeDecodeError with a byte offset only."""
    data = path.read_bytes()
    utf8 = codecs.lookup(encoding).name == "utf-8"
    if utf8:
        data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode(encoding).removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        row = data[: exc.start].decode(encoding, errors="replace").count("\n") + 1
        fix = "save the file as UTF-8, or set task.encoding to the file's encoding (e.g. 'cp1252' or 'latin-1')"
        if not utf8:
            fix = "set task.encoding to the file's encoding ('utf-8' for UTF-8 files)"
        raise SlimkitError(
            f"{where}: row {row}: byte 0x{data[exc.start]:02x} at byte offset {exc.start} is not "
            f"{'UTF-8' if utf8 else encoding} text",
            fix=fix,
        ) from None


def read_table(
    path: Path,
    has_header: bool | None,
    field: str = "task.data_files",
    *,
    quoting: str | None = None,
    encoding: str = "utf-8",
) -> Any:
    """A CSV/TSV/JSON/Parquet file as a pandas DataFrame; ``field`` names the option in errors.

    ``quoting`` (TaskSpec.quoting): 'standard' or 'none'; None is standard for .csv and none for
    .tsv/.txt. ``encoding`` applies to every format but Parquet (which is binary).

    The frame's index is each row's line number in the file (1-based, as an editor shows it; the
    record number for JSON and Parquet), and ``frame.attrs["where"]`` names the file, so that an
    error about a row found later can point at it.
    """
    if not path.is_file():
        raise SlimkitError(f"{field}: no such file {path}")
    where = f"{field}: {path}"
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".csv", ".txt"):
        quoted = (quoting or ("standard" if suffix == ".csv" else "none")) == "standard"
        text = read_text(path, where, encoding)
        frame = _read_delimited(text, "\t" if suffix in (".tsv", ".txt") else ",", has_header, where, quoted=quoted)
    elif suffix in (".json", ".jsonl", ".parquet"):
        frame = _read_records(path, suffix, where, encoding)
    else:
        raise SlimkitError(f"{field}: unsupported file type {suffix!r} ({path})", fix="use CSV, TSV, JSON or Parquet")
    frame.attrs["where"] = where
    return frame


def _read_delimited(text: str, sep: str, has_header: bool | None, where: str, *, quoted: bool) -> Any:
    """CSV/TSV text, blank lines skipped, every row as wide as the header.

    ``quoted``: standard quoting (RFC 4180, the csv module's dialect: a field in double quotes may
    hold the separator, a newline, and a quote written twice); else none (a text keeps its quotes
    as written, one row per line). Each row is numbered by the line it starts on.

    Read with the csv module, not pandas, so that each row's line number is known and a ragged row
    is refused: pandas turns a first row with a field too many into the index (shifting every
    column) and fills a missing field silently.
    """
    import pandas as pd

    if quoted:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, doublequote=True, strict=True)
    else:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quoting=csv.QUOTE_NONE)
    rows: list[list[str]] = []
    lines: list[int] = []
    start = 1  # the line the next row starts on
    try:
        for fields in reader:
            if fields:  # an empty line
                rows.append(fields)
                lines.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise SlimkitError(f"{where}: row {start}: {_csv_problem(str(exc), sep)}") from None
    if not rows:
        raise SlimkitError(f"{where}: the file is empty", fix="write one example per row, or fix the path")
    header = rows[0] if has_header in (None, True) else _headerless_columns(len(rows[0]), lines[0], where)
    if has_header in (None, True):
        rows, lines = rows[1:], lines[1:]
        if not rows:
            raise SlimkitError(f"{where}: the file has a header row but no examples", fix="add one example per row")
        _unique_columns(header, where)
    for fields, line in zip(rows, lines, strict=True):
        if len(fields) != len(header):
            problem = _ragged(len(fields), len(header), sep, has_header, quoted)
            raise SlimkitError(f"{where}: row {line}: {problem}")
    return pd.DataFrame(rows, columns=header, index=lines, dtype=str)


def _csv_problem(message: str, sep: str) -> str:
    """The csv module's error as a problem and its fix."""
    if "field larger than field limit" in message:
        return f"{message} (fix: split or shorten the text, or close the quote opened on this row)"
    if "unexpected end of data" in message:
        return (
            "a quoted field opened on this row is never closed (fix: end the text with a double quote, write a "
            "quote inside a quoted text twice (\"\"), or set task.quoting = 'none' if quotes are text)"
        )
    what = "tab" if sep == "\t" else "comma"
    message = message.replace("'\t'", "a tab")  # the csv module shows the tab itself
    return (
        f"{message} (fix: a quoted field ends at its closing quote, then a {what} or the line's end; write a quote "
        "inside a quoted text twice (\"\"), or set task.quoting = 'none' if quotes are text)"
    )


def _headerless_columns(width: int, line: int, where: str) -> list[str]:
    if width > len(HEADERLESS_COLUMNS):
        raise SlimkitError(
            f"{where}: row {line}: {width} fields, but a file without a header row has at most "
            f"{len(HEADERLESS_COLUMNS)} ({', '.join(HEADERLESS_COLUMNS)})",
            fix="add a header row and set task.has_header = true",
        )
    return HEADERLESS_COLUMNS[:width]


def _unique_columns(header: list[str], where: str) -> None:
    seen = set()
    for name in header:
        if name in seen:
            raise SlimkitError(f"{where}: row 1: the header names column {name!r} twice", fix="rename one of them")
        seen.add(name)


def _ragged(fields: int, width: int, sep: str, has_header: bool | None, quoted: bool) -> str:
    """A ragged row's problem and its fix: a separator outside quotes splits a text."""
    what = "tab" if sep == "\t" else "comma"
    against = "the header has" if has_header in (None, True) else "the first row has"
    if fields > width and quoted:
        fix = f'a {what} inside a text splits it unless the text is in double quotes: write "a, b"'
    elif fields > width:
        fix = f"a {what} inside a text splits it: replace it with a space"
        fix += ", or set task.quoting = 'standard' if texts with one are in double quotes"
    else:
        fix = f"give every row one {what}-separated field per column, empty ones included"
    return f"{fields} {what}-separated field{'s' if fields != 1 else ''}, {against} {width} (fix: {fix})"


def _read_records(path: Path, suffix: str, where: str, encoding: str = "utf-8") -> Any:
    """A JSON, JSON Lines or Parquet file; its rows are numbered from 1 (the line, in JSON Lines)."""
    import pandas as pd

    kind = {".json": "JSON", ".jsonl": "JSON Lines", ".parquet": "Parquet"}[suffix]
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_json(io.StringIO(read_text(path, where, encoding)), lines=suffix == ".jsonl")
    except SlimkitError:
        raise
    except Exception as exc:  # the parsers' own errors: one line, no traceback
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SlimkitError(
            f"{where}: cannot read it as {kind}: {detail}", fix=f"check that it is valid {kind}"
        ) from None
    if frame.empty:
        raise SlimkitError(f"{where}: the file has no examples", fix="write one example per record")
    frame.index = range(1, len(frame) + 1)
    return frame


def _is_local(spec: TaskSpec, hub: dict[str, Any] | None, resolve: Any) -> bool:
    """Whether loading reads only local files (the hub is asked only when this is False)."""
    if spec.data_files:
        paths = [resolve(f) for f in spec.data_files.values()]
        if all(p.is_file() for p in paths) or spec.preset is None:
            return True
    dataset = spec.dataset or (hub or {}).get("dataset")
    return not dataset or resolve(dataset).exists()


def _load_frames(spec: TaskSpec, hub: dict[str, Any] | None, resolve: Any) -> dict[str, Any]:
    """Split name -> pandas DataFrame, from local files when they exist, else from the hub."""
    files = spec.data_files
    if files:
        paths = {split: resolve(f) for split, f in files.items()}
        if all(p.is_file() for p in paths.values()):
            return {split: _read_file(p, spec, "task.data_files") for split, p in paths.items()}
        if spec.preset is None:
            missing = [str(p) for p in paths.values() if not p.is_file()]
            raise SlimkitError(f"task.data_files: missing {', '.join(missing)}")
    dataset = spec.dataset or (hub or {}).get("dataset")
    if not dataset:
        where = f"{DATA_ENV} or ../shared/data" if spec.preset else "task.dataset or task.data_files"
        raise SlimkitError(f"task: no data found for {spec.preset or 'the task'}", fix=f"set {where}")
    local = resolve(dataset)
    if local.is_file():
        raise SlimkitError(f"task.dataset: {local} is a file, not a folder", fix="name it in task.data_files instead")
    if local.exists():
        if any((local / marker).is_file() for marker in SAVED_DATASET_FILES):
            return _saved_frames(local)
        found = {
            p.stem: p for p in sorted(local.iterdir()) if p.suffix in (".tsv", ".csv", ".json", ".jsonl", ".parquet")
        }
        return {split: _read_file(p, spec, "task.dataset") for split, p in found.items()}
    return _hub_frames(spec, hub, dataset)


def _read_file(path: Path, spec: TaskSpec, field: str) -> Any:
    return read_table(path, spec.has_header, field, quoting=spec.quoting, encoding=spec.encoding)


# A folder written by datasets' Dataset.save_to_disk (dataset_info.json, state.json) or
# DatasetDict.save_to_disk (dataset_dict.json, one folder per split).
SAVED_DATASET_FILES = ("dataset_dict.json", "dataset_info.json")


def _saved_frames(folder: Path) -> dict[str, Any]:
    """Split name -> DataFrame of a dataset saved with ``save_to_disk``; a single Dataset is the
    split it was saved as (``train`` when it names none). Label names of a ClassLabel column are
    kept in ``frame.attrs["label_names"]``."""
    from datasets import Dataset, load_from_disk

    where = f"task.dataset: {folder}"
    try:
        loaded = load_from_disk(str(folder))
    except Exception as exc:  # a damaged or partial folder: one line, no traceback
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SlimkitError(
            f"{where}: cannot load it with datasets.load_from_disk: {type(exc).__name__}: {detail}",
            fix="save it again with Dataset.save_to_disk or DatasetDict.save_to_disk",
        ) from None
    splits = {str(loaded.split or "train"): loaded} if isinstance(loaded, Dataset) else dict(loaded)
    frames = {}
    for split, data in splits.items():
        frame = data.to_pandas()
        frame.index = range(1, len(frame) + 1)
        frame.attrs["where"] = f"{where} ({split})"
        frame.attrs["label_names"] = {
            name: list(feature.names) for name, feature in data.features.items() if hasattr(feature, "names")
        }
        frames[split] = frame
    return frames


def _hub_frames(spec: TaskSpec, hub: dict[str, Any] | None, dataset: str) -> dict[str, Any]:
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
    for split, frame in frames.items():
        frame.index = range(1, len(frame) + 1)
        frame.attrs["where"] = f"task.dataset: {dataset} ({split})"
        if label_map and spec.label_column:
            frame[spec.label_column] = [map_label_ids(ids, label_map) for ids in frame[spec.label_column]]
    return frames


def map_label_ids(ids: Any, label_map: dict[int, int]) -> list[int]:
    """A row's label ids through a many-to-one mapping, each mapped label once, in order."""
    return sorted({label_map[int(i)] for i in ids})


def _label_names(spec: TaskSpec, resolve: Any) -> list[str] | None:
    names: list[str] | None = None
    if spec.labels:
        names, field = list(spec.labels), "task.labels"
    elif spec.labels_file:
        path = resolve(spec.labels_file)
        field = f"task.labels_file: {path}"
        if not path.is_file():
            raise SlimkitError(f"task.labels_file: no such file {path}")
        names = [line.strip() for line in read_text(path, field, spec.encoding).splitlines() if line.strip()]
        if not names:
            raise SlimkitError(f"{field}: the file is empty", fix="write one label name per line, in id order")
    elif spec.label_columns:
        names, field = list(spec.label_columns), "task.label_columns"
    if names is not None and len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise SlimkitError(f"{field}: label {twice!r} is listed twice", fix="list each label once, in id order")
    return names


def _row_error(frame: Any, position: int, column: str, problem: str, fix: str) -> SlimkitError:
    """An error about one cell, naming the file, the row (as the file numbers it) and the column."""
    where = frame.attrs.get("where", "task")
    return SlimkitError(f"{where}: row {frame.index[position]}: column {column!r}: {problem}", fix=fix)


def _id_of(value: Any) -> int | None:
    """A label id written as a whole number ('7', 7, or 7.0 from JSON), else None."""
    if isinstance(value, str):  # first: nearly every cell of a CSV/TSV file
        return int(value) if WHOLE_NUMBER.fullmatch(value) else None
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return operator.index(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return int(number) if number.is_integer() else None
    return None


def _ids_fix(names: list[str] | None) -> str:
    span = f"0 to {len(names) - 1}" if names else "from 0"
    return f"write label ids as whole numbers {span}, or set task.label_format = 'names' for label names"


def _row_ids(frame: Any, position: int, column: str, value: Any, spec: TaskSpec, names: list[str] | None) -> list[int]:
    """One cell's label ids: a single id, separated ids, or a list (hub data)."""
    if isinstance(value, list | tuple) or getattr(value, "ndim", 0) > 0:  # a list, or a numpy array from the hub
        parts = list(value)
    elif spec.label_format == "ids":
        parts = [value]
    else:
        parts = [x for x in str(value).split(spec.label_separator) if x.strip() != ""]
    ids = []
    for part in parts:
        found = _id_of(part)
        if found is None:
            shown = repr(part) if part == value else f"{part!r} in {value!r}"
            raise _row_error(frame, position, column, f"{shown} is not a label id", _ids_fix(names))
        ids.append(found)
    return ids


def _check_ids(frame: Any, column: str, rows: list[list[int]], names: list[str] | None) -> None:
    """Every id must name a label: numpy would read -1 as the last label, and an id past the end
    fails only when training starts, minutes after the data was read."""
    limit = len(names) if names is not None else None
    for position, ids in enumerate(rows):
        for i in ids:
            if i < 0 or (limit is not None and i >= limit):
                span = f"there are {limit} labels, ids 0 to {limit - 1}" if limit else "ids start at 0"
                raise _row_error(
                    frame, position, column, f"label id {i} is outside the label list ({span})",
                    "correct the id, or add its label to task.labels or task.labels_file",
                )  # fmt: skip


def _flags(frame: Any, cols: list[str]) -> list[list[int]]:
    """Each row's labels from one 0/1 column per label."""
    rows: list[list[int]] = [[] for _ in range(len(frame))]
    for j, col in enumerate(cols):
        for position, value in enumerate(frame[col].tolist()):
            flag = _id_of(value)
            if flag not in (0, 1):
                raise _row_error(
                    frame, position, col, f"{value!r} is not 0 or 1", "write 1 where the label applies, else 0"
                )
            if flag:
                rows[position].append(j)
    return rows


def _label_sets(frame: Any, spec: TaskSpec, names: list[str] | None) -> tuple[list[list[int]], list[str]]:
    """Each row's label ids, and the label names (learned from the data when not given)."""
    fmt = spec.label_format
    if fmt == "binary_columns" or (fmt is None and spec.label_columns):
        cols = spec.label_columns or names or []
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise SlimkitError(f"task.label_columns: not in the data: {', '.join(missing)}")
        return _flags(frame, cols), list(cols)
    column = spec.label_column
    if column is None or column not in frame.columns:
        raise SlimkitError(
            f"task.label_column: {column!r} is not a column (have: {', '.join(map(str, frame.columns))})"
        )
    raw = frame[column].tolist()
    if fmt in ("separated_ids", "ids") or (fmt is None and any(isinstance(v, list | tuple) for v in raw[:5])):
        rows = [_row_ids(frame, i, column, v, spec, names) for i, v in enumerate(raw)]
        _check_ids(frame, column, rows, names)
        count = max((max(r) for r in rows if r), default=-1) + 1
        return rows, names or [str(i) for i in range(count)]
    # label names
    learned = names or sorted({str(v) for v in raw})
    index = {n: i for i, n in enumerate(learned)}
    for position, value in enumerate(raw):
        if str(value) not in index:
            shown = ", ".join(learned[:5]) + (", ..." if len(learned) > 5 else "")
            raise _row_error(
                frame, position, column, f"{str(value)!r} is not in the label list ({shown})",
                "correct the label, or add it to task.labels",
            )  # fmt: skip
    return [[index[str(v)]] for v in raw], learned


def _to_split(
    frame: Any, spec: TaskSpec, names: list[str] | None, problem: str, notes: list[str], role: str
) -> tuple[Split, list[str]]:
    """One split's texts (and text pairs) and labels; what a filter skipped is added to ``notes``."""
    import numpy as np

    text_col = spec.text_column or "text"
    for option, column in (("task.text_column", text_col), ("task.text_pair_column", spec.text_pair_column)):
        if column is not None and column not in frame.columns:
            raise SlimkitError(f"{option}: {column!r} is not a column (have: {', '.join(map(str, frame.columns))})")
    rows, names = _label_sets(frame, spec, names)
    texts = [str(t) for t in frame[text_col].tolist()]
    pairs = [str(t) for t in frame[spec.text_pair_column].tolist()] if spec.text_pair_column else None
    if spec.filter == "single_label":
        keep = [i for i, r in enumerate(rows) if len(r) == 1]
        if len(keep) < len(rows):
            notes.append(f"task filter single_label skipped {len(rows) - len(keep)} of {len(rows)} {role} rows")
        texts, rows = [texts[i] for i in keep], [rows[i] for i in keep]
        pairs = None if pairs is None else [pairs[i] for i in keep]
        if not rows:
            where = frame.attrs.get("where", "task")
            raise SlimkitError(
                f"{where}: no row has exactly one label, so filter = 'single_label' leaves no examples",
                fix="set task.filter = 'none' and problem = 'multi_label'",
            )
    if problem == "single_label":
        bad = [i for i, r in enumerate(rows) if len(r) != 1]
        if bad:  # no filter ran, so positions are still the frame's
            raise _row_error(
                frame, bad[0], spec.label_column or "labels",
                f"{len(rows[bad[0]])} labels in a single-label task ({len(bad)} such rows)",
                "set task.filter = 'single_label', or problem = 'multi_label'",
            )  # fmt: skip
        return Split(texts, np.array([r[0] for r in rows], dtype=np.int64), pairs), names
    matrix = np.zeros((len(rows), len(names)), dtype=np.float32)
    for i, r in enumerate(rows):
        matrix[i, r] = 1.0
    return Split(texts, matrix, pairs), names


def sample_rows(split: Split, n: int | None, seed: int) -> Split:
    """The first ``n`` rows of a seeded permutation of ``split`` (all of it when ``n`` is None or
    at least its size), in the split's order: a smaller ``n`` with the same seed takes a subset."""
    import numpy as np

    if n is None or n >= len(split):
        return split
    idx = np.sort(np.random.default_rng(seed).permutation(len(split))[:n])
    return split.take(idx)


def _carve(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(split))
    n_val = round(len(split) * fraction)
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    return split.take(train_idx), split.take(val_idx)


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
    class_label = frames[train_name].attrs.get("label_names", {}).get(spec.label_column)
    if class_label and spec.label_format in (None, "ids"):  # a saved dataset's ClassLabel column: ids
        names = names or class_label
        spec = spec.model_copy(update={"label_format": "ids"})
    notes: list[str] = []
    train, names = _to_split(frames[train_name], spec, names, problem, notes, "training")
    evaluation, _ = _to_split(frames[eval_name], spec, names, problem, notes, "eval")
    train, validation = _carve(train, spec.validation_fraction, spec.seed)
    if not len(train):
        raise SlimkitError(
            f"task.validation_fraction: {spec.validation_fraction} of {len(validation)} training rows "
            "leaves none to train on",
            fix="add training rows, or lower task.validation_fraction",
        )
    train = sample_rows(train, spec.max_train_examples, spec.seed)
    if spec.max_train_examples is not None:
        # The validation slice keeps its share of the subsample: a full-size slice would make every
        # evaluation of a quick run cost more than its training.
        share = spec.validation_fraction / (1 - spec.validation_fraction)
        validation = sample_rows(validation, max(1, round(spec.max_train_examples * share)), spec.seed)
    return TaskData(
        name=spec.preset or str(spec.dataset or "task"),
        problem=problem,
        labels=names,
        train=train,
        validation=validation,
        eval=evaluation.head(spec.max_eval_examples),
        threshold=spec.threshold,
        notes=notes,
        description=f"{spec.preset or spec.dataset}: {len(train)} train / {len(validation)} validation / "
        f"{min(len(evaluation), spec.max_eval_examples or len(evaluation))} eval, {len(names)} labels, {problem}",
    )


def task_problems(task: TaskSpec, resolve: Any) -> list[str]:
    """What loading the task would fail on, read now when the data is local; [] when it is fine.

    Hub data is never fetched here (planning needs no network); the run reports its problems.
    Loading goes through the same cache as the run's, which reuses it when ``resolve`` is the same.
    """
    try:
        spec, hub = merged_spec(task)
        if _is_local(spec, hub, resolve):
            load_task(task, resolve)
    except SlimkitError as exc:
        return [str(exc)]
    return []
