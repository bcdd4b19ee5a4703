"""Task loading: column mappings, label formats, filters, the seeded validation slice."""

from __future__ import annotations

from pathlib import Path

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
