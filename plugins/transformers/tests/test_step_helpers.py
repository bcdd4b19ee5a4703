"""The chores every technique shares (slimkit_transformers.steps): head names, task file, task, calibration."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from slimkit.errors import SlimkitError
from slimkit.spec import pipeline_from_dict
from slimkit_transformers.steps import (
    TASK_FILE,
    calibration_batches,
    calibration_inputs,
    calibration_split,
    calibration_texts,
    carry_task_file,
    head_module_names,
    is_head,
    step_task,
)


def _step(tiny_task: dict[str, Any] | None, tmp_path: Path, *, seed: int = 0, source: Path | None = None) -> Any:
    fields: dict[str, Any] = {"model": str(tmp_path), "seed": seed, "steps": []}
    if tiny_task is not None:
        fields["task"] = tiny_task
    pipeline = pipeline_from_dict(fields)
    return SimpleNamespace(
        name="calibrate",
        technique=SimpleNamespace(name="x.calibrate"),
        pipeline=pipeline,
        task=pipeline.task,
        seed=pipeline.seed,
        device="cpu",
        input=SimpleNamespace(path=source or tmp_path),
        output_dir=tmp_path / "out",
    )


def test_is_head_matches_whole_name_parts() -> None:
    assert is_head("classifier") and is_head("classifier.weight") and is_head("score.weight")
    assert is_head("pre_classifier.bias")
    assert not is_head("bert.pooler.dense.weight") and not is_head("classifier_x.weight")
    assert is_head("bert.pooler.dense.weight", ["classifier", "bert.pooler"])


def test_head_module_names_include_the_pooler(tiny_bert: Path, tiny_task: dict[str, Any]) -> None:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    assert head_module_names(model) == ["classifier", "bert.pooler"]


def test_calibration_sample_is_seeded_nested_and_from_train(tiny_task: dict[str, Any], tmp_path: Path) -> None:
    step = _step(tiny_task, tmp_path)
    train = step_task(step).train.texts
    eight, sixteen = calibration_texts(step, 8), calibration_texts(step, 16)
    assert len(eight) == 8 and eight == calibration_texts(step, 8)
    assert set(eight) <= set(sixteen) and set(sixteen) <= set(train)
    assert [train.index(t) for t in sixteen] == sorted(train.index(t) for t in sixteen)  # training-set order
    assert calibration_texts(_step(tiny_task, tmp_path, seed=1), 16) != sixteen
    assert len(calibration_split(step, 10**6)) == len(train)


def test_calibration_inputs_are_pairs_in_a_sentence_pair_task(
    tiny_task: dict[str, Any], tiny_pair_task: dict[str, Any], tmp_path: Path
) -> None:
    single = _step(tiny_task, tmp_path)
    assert calibration_inputs(single, 8) == calibration_texts(single, 8)
    step = _step(tiny_pair_task, tmp_path)
    pairs, texts = calibration_inputs(step, 8), calibration_texts(step, 8)
    assert len(pairs) == 8 and all(isinstance(p, tuple) and len(p) == 2 for p in pairs)
    assert [text for text, _ in pairs] == texts  # calibration_texts keeps giving the first texts
    assert calibration_split(step, 8).text_pairs == [pair for _, pair in pairs]


def test_calibration_batches_carry_labels(tiny_bert: Path, tiny_task: dict[str, Any], tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    batches = calibration_batches(
        _step(tiny_task, tmp_path), AutoTokenizer.from_pretrained(tiny_bert), examples=10, batch_size=4, max_length=16
    )
    assert [len(b["input_ids"]) for b in batches] == [4, 4, 2]
    assert str(batches[0]["labels"].dtype) == "torch.int64"


def test_no_task_is_one_line_naming_the_step(tmp_path: Path) -> None:
    with pytest.raises(SlimkitError, match=r"step 'calibrate': x.calibrate needs the pipeline's 'task'"):
        calibration_texts(_step(None, tmp_path), 4)


def test_carry_task_file_from_a_folder_or_a_file_in_it(tmp_path: Path) -> None:
    source = tmp_path / "model"
    source.mkdir()
    (source / "model.onnx").write_text("graph")
    assert not carry_task_file(_step(None, tmp_path, source=source))
    (source / TASK_FILE).write_text(json.dumps({"threshold": 0.3}))
    for path in (source, source / "model.onnx"):
        step = _step(None, tmp_path, source=path)
        assert carry_task_file(step)
        assert json.loads((step.output_dir / TASK_FILE).read_text()) == {"threshold": 0.3}
