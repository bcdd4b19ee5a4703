"""distill.kd end to end on tiny models: pipelines through slimkit's runner."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoTokenizer

from slimkit_transformers.models import load_classifier

# Teachers that learn the tiny tasks (tiny random BERTs need high rates); trained once, shared via `store`.
TEACHER = {
    "single_label": {"epochs": 8, "batch_size": 16, "learning_rate": 3e-3, "max_length": 16},
    "multi_label": {"epochs": 12, "batch_size": 16, "learning_rate": 1e-2, "max_length": 16,
                    "early_stopping_patience": 4},
}  # fmt: skip
TRAIN = {"epochs": 6, "batch_size": 16, "learning_rate": 5e-3, "max_length": 16}


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A step store shared by the tests, so the fine-tuned teachers are trained once."""
    return str(tmp_path_factory.mktemp("store"))


def _finetune(task: dict[str, Any]) -> dict[str, Any]:
    return {"name": "finetune", "technique": "transformers.finetune", "config": TEACHER[task["problem"]]}


def _kd(**config: Any) -> dict[str, Any]:
    return {"name": "kd", "technique": "distill.kd", "config": TRAIN | config}


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in load_classifier(path)[0].state_dict().items()}


@pytest.fixture(scope="session")
def multilabel_task(tiny_multilabel_task: dict[str, Any]) -> dict[str, Any]:
    # The threshold is tuned on the validation slice, so multi-label runs report a tuned threshold.
    return tiny_multilabel_task | {"tune_threshold": True}


@pytest.mark.parametrize("task_fixture", ["tiny_task", "multilabel_task"])
def test_distillation_trains_a_shallower_student_and_lowers_the_distillation_loss(
    task_fixture: str,
    request: pytest.FixtureRequest,
    plugins: Any,
    store: str,
    run_pipeline: Any,
    tiny_pipeline: Any,
    tiny_bert4: Path,
) -> None:
    task = request.getfixturevalue(task_fixture)
    # The student is cut from the untrained source, so that it starts far from the teacher.
    steps = [_finetune(task), _kd(alpha=0.7, temperature=2.0, student={"from_step": "source", "keep_every": 2})]
    result = run_pipeline(
        tiny_pipeline(tiny_bert4, task, steps, baseline="finetune", measure={"enabled": False}, store_dir=store)
    )
    assert result.exit_code == 0, [s.error for s in result.steps]
    teacher, student = result.steps[0].artifact, result.steps[1].artifact
    meta = student.metadata
    assert meta["teacher"] == "finetune" and meta["student_init"] == "step:source"
    assert meta["student_layers"] == 2 and meta["kept_layers"] == [1, 3] and meta["teacher_layers"] == 4
    # the distillation objective on the validation slice: a short run brings the student closer to the teacher
    assert meta["distill_loss_validation_after"] < meta["distill_loss_validation_before"]
    floor = meta["distill_loss_validation_floor"]  # KL: 0; BCE: the entropy of the teacher's soft targets
    assert floor < meta["distill_loss_validation_after"] and (floor == 0.0) is (task["problem"] == "single_label")
    assert meta["train_seconds"] > 0 and meta["teacher_pass_seconds"] > 0 and meta["optimizer_steps"] > 0
    assert meta["same_tokenization"] is True and "hidden_layer_map" not in meta
    logged = [e for e in meta["train_history"] if "distill_loss" in e]
    assert logged and all(math.isfinite(e["distill_loss"]) and math.isfinite(e["hard_loss"]) for e in logged)
    # the saved student: 2 layers, the teacher's head shape and labels, the task facts beside it
    model, _ = load_classifier(student.path)
    tuned, _ = load_classifier(teacher.path)
    assert model.config.num_hidden_layers == 2 and len(model.bert.encoder.layer) == 2
    assert model.classifier.weight.shape == tuned.classifier.weight.shape
    assert model.config.id2label == tuned.config.id2label and model.config.problem_type == tuned.config.problem_type
    facts = json.loads((student.path / "slimkit-task.json").read_text())
    assert facts["threshold"] == meta["threshold"] and facts["labels"] == list(tuned.config.id2label.values())
    assert meta["student_params"] == sum(p.numel() for p in model.parameters())
    assert meta["student_params"] < meta["teacher_params"]


def test_alpha_at_the_hard_label_end_is_ordinary_finetuning(
    plugins: Any,
    store: str,
    run_pipeline: Any,
    tiny_pipeline: Any,
    tiny_bert4: Path,
    multilabel_task: dict[str, Any],
    tmp_path: Path,
) -> None:
    from slimkit_distill.config import StudentSpec
    from slimkit_distill.student import build_student
    from slimkit_transformers.tasks import load_task

    kd = _kd(alpha=0.0, student={"keep_every": 2})
    first = run_pipeline(
        tiny_pipeline(
            tiny_bert4,
            multilabel_task,
            [_finetune(multilabel_task), kd],
            name="kd",
            measure={"enabled": False},
            store_dir=store,
        )
    )
    assert first.exit_code == 0, [s.error for s in first.steps]
    distilled = first.steps[1].artifact
    assert "teacher_pass_seconds" not in distilled.metadata  # no teacher pass at all

    # The same student, written out and fine-tuned by transformers.finetune with the same settings.
    teacher = first.steps[0].artifact
    pipeline = first.plan.pipeline
    task = load_task(pipeline.task, pipeline.resolve_path)
    student = build_student(StudentSpec(keep_every=2), teacher, {}, pipeline, task)
    folder = tmp_path / "student"
    student.model.save_pretrained(folder)
    student.tokenizer.save_pretrained(folder)
    plain = {"name": "finetune", "technique": "transformers.finetune", "config": TRAIN}
    second = run_pipeline(
        tiny_pipeline(folder, multilabel_task, [plain], name="plain", measure={"enabled": False}, store_dir=store)
    )
    assert second.exit_code == 0, [s.error for s in second.steps]
    assert second.source.metadata["head"] == "kept"
    a, b = _weights(distilled.path), _weights(second.steps[0].artifact.path)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert distilled.metadata["optimizer_steps"] == second.steps[0].artifact.metadata["optimizer_steps"]


def test_a_transfer_set_of_masked_copies_labelled_by_the_teacher(
    plugins: Any, store: str, run_pipeline: Any, tiny_pipeline: Any, tiny_bert4: Path, multilabel_task: dict[str, Any]
) -> None:
    steps = [_finetune(multilabel_task)]
    plain = _kd(alpha=0.5, student={"keep_every": 2})
    augmented = _kd(alpha=0.5, student={"keep_every": 2}, augment_copies=2, augment_mask_prob=0.3)
    results = [
        run_pipeline(
            tiny_pipeline(tiny_bert4, multilabel_task, [*steps, kd], measure={"enabled": False}, store_dir=store)
        )
        for kd in (plain, augmented)
    ]
    assert all(r.exit_code == 0 for r in results), [s.error for r in results for s in r.steps]
    before, after = (r.steps[1].artifact.metadata for r in results)
    assert "augment_rows" not in before
    train_rows = before["optimizer_steps"] // TRAIN["epochs"] * TRAIN["batch_size"]  # full batches per epoch
    assert after["augment_rows"] >= 2 * train_rows and after["augment_masking"] == "mask token"
    # three times the rows: about three times the optimizer steps (early stopping may cut either run)
    assert after["optimizer_steps"] > 2 * before["optimizer_steps"] or after["epochs_run"] < before["epochs_run"]


def test_unlabelled_transfer_texts_from_a_file_are_labelled_by_the_teacher(
    plugins: Any,
    store: str,
    run_pipeline: Any,
    tiny_pipeline: Any,
    tiny_bert4: Path,
    multilabel_task: dict[str, Any],
    tmp_path: Path,
) -> None:
    texts = tmp_path / "unlabelled.txt"
    texts.write_text("\n".join(f"an unlabelled text number {i}" for i in range(40)) + "\n\n")
    kd = _kd(alpha=0.5, student={"keep_every": 2}, transfer_texts={"data_file": str(texts), "max_rows": 30})
    result = run_pipeline(
        tiny_pipeline(tiny_bert4, multilabel_task, [_finetune(multilabel_task), kd], measure={"enabled": False},
                      store_dir=store)
    )  # fmt: skip
    assert result.exit_code == 0, [s.error for s in result.steps]
    meta = result.steps[1].artifact.metadata
    assert meta["transfer_texts_rows"] == 30 and meta["transfer_texts_source"] == "file:unlabelled.txt"
    assert "augment_rows" not in meta


def test_hidden_state_matching_through_a_projection(
    plugins: Any,
    store: str,
    run_pipeline: Any,
    tiny_pipeline: Any,
    tiny_bert4: Path,
    tiny_bert_wide: Path,
    multilabel_task: dict[str, Any],
) -> None:
    kd = _kd(alpha=0.5, hidden_weight=1.0, student={"model": str(tiny_bert_wide)})
    result = run_pipeline(
        tiny_pipeline(
            tiny_bert4, multilabel_task, [_finetune(multilabel_task), kd], measure={"enabled": False}, store_dir=store
        )
    )
    assert result.exit_code == 0, [s.error for s in result.steps]
    meta = result.steps[1].artifact.metadata
    assert meta["hidden_projection"] is True and meta["hidden_layer_map"] == [3]
    assert meta["student_init"] == f"model:{tiny_bert_wide}" and meta["student_layers"] == 1
    logged = [e["hidden_loss"] for e in meta["train_history"] if "hidden_loss" in e]
    assert logged and all(math.isfinite(v) for v in logged)
    assert sum(logged[-6:]) / 6 < logged[0] / 2  # the student (and projection) learn the teacher's states
    model, _ = load_classifier(result.steps[1].artifact.path)
    assert model.config.hidden_size == 48  # the projection trains with the student and is not saved
    assert not any("proj" in k for k in model.state_dict())


def test_a_student_with_its_own_tokenizer(
    plugins: Any,
    store: str,
    run_pipeline: Any,
    tiny_pipeline: Any,
    tiny_bert4: Path,
    tiny_bert_other_vocab: Path,
    tiny_task: dict[str, Any],
) -> None:
    kd = _kd(alpha=0.5, student={"model": str(tiny_bert_other_vocab)})
    result = run_pipeline(
        tiny_pipeline(tiny_bert4, tiny_task, [_finetune(tiny_task), kd], measure={"enabled": False}, store_dir=store)
    )
    assert result.exit_code == 0, [s.error for s in result.steps]
    meta = result.steps[1].artifact.metadata
    assert meta["same_tokenization"] is False
    # the teacher read the texts through its own tokenizer: it scores as it did when it was fine-tuned
    assert meta["teacher_validation"] == result.steps[0].artifact.metadata["validation"]
    _, saved = load_classifier(result.steps[1].artifact.path)
    assert saved.get_vocab() == AutoTokenizer.from_pretrained(tiny_bert_other_vocab).get_vocab()  # its own

    hidden = _kd(alpha=0.5, hidden_weight=1.0, student={"model": str(tiny_bert_other_vocab)})
    failed = run_pipeline(
        tiny_pipeline(
            tiny_bert4, tiny_task, [_finetune(tiny_task), hidden], name="h", measure={"enabled": False}, store_dir=store
        )
    )
    assert failed.exit_code == 1 and "tokenize like the teacher" in failed.steps[1].error


def test_a_named_teacher_and_a_student_from_an_earlier_step(
    plugins: Any, store: str, run_pipeline: Any, tiny_pipeline: Any, tiny_bert4: Path, tiny_task: dict[str, Any]
) -> None:
    # `head` stands in for a pruning step between the fine-tuned teacher and the distillation.
    head = {"name": "head", "technique": "transformers.finetune", "config": TRAIN | {"epochs": 1, "train_layers": 0}}
    kd = _kd(alpha=0.5, teacher="finetune", student={"from_step": "head", "layers": [0, 3]})
    result = run_pipeline(
        tiny_pipeline(
            tiny_bert4, tiny_task, [_finetune(tiny_task), head, kd], measure={"enabled": False}, store_dir=store
        )
    )
    assert result.exit_code == 0, [s.error for s in result.steps]
    meta = result.steps[2].artifact.metadata
    assert meta["teacher"] == "finetune" and meta["student_init"] == "step:head" and meta["kept_layers"] == [0, 3]
    assert meta["teacher_validation"]["accuracy"] == result.steps[0].artifact.metadata["validation"]["accuracy"]

    bad = _kd(teacher="nope")
    failed = run_pipeline(
        tiny_pipeline(
            tiny_bert4, tiny_task, [_finetune(tiny_task), bad], name="bad", measure={"enabled": False}, store_dir=store
        )
    )
    assert failed.exit_code == 1 and "teacher 'nope' is not an earlier step" in failed.steps[1].error


def test_the_student_is_measured_against_the_teacher(
    plugins: Any, store: str, run_pipeline: Any, tiny_pipeline: Any, tiny_bert4: Path, tiny_task: dict[str, Any]
) -> None:
    steps = [_finetune(tiny_task), _kd(alpha=0.5)]
    pipe = tiny_pipeline(tiny_bert4, tiny_task, steps, baseline="finetune", store_dir=store, measure={"latency": False})
    result = run_pipeline(pipe)  # accuracy and sizes; timing is slimkit-transformers' to test
    assert result.exit_code == 0, [s.error for s in result.steps]
    data = json.loads(result.results_path.read_text())
    student = next(a for a in data["artifacts"] if a["label"] == "kd")
    metrics = {m["name"]: m for m in student["metrics"]}
    teacher = {m["name"]: m for m in next(a for a in data["artifacts"] if a["label"] == "finetune")["metrics"]}
    assert {"accuracy", "macro_f1", "agreement", "params"} <= set(metrics)
    assert metrics["params"]["value"] == 27_714 and teacher["params"]["value"] == 44_802  # 2 of 4 layers kept
    assert metrics["accuracy"]["value"] == teacher["accuracy"]["value"] == 1.0
    assert metrics["agreement"]["value"] == 1.0  # with the teacher, the pipeline's baseline
    assert student["produced_by"] == "distill.kd" and student["format"] == "transformers"


def test_declaration_orders_distillation_before_quantization_and_export(plugins: Any, slimkit_plugins: Any) -> None:
    technique = slimkit_plugins.techniques.get("distill.kd")
    assert technique is not None and technique.stage == "distill"
    assert technique.consumes == ["transformers"] and technique.produces == "transformers"
    assert set(technique.before) == {"quantize", "export"}
    assert technique.hardware.devices == ["cpu", "cuda"]
    # A declaration plus a function: the plugin implements no stage hook.
    from slimkit_distill.kd import distill

    assert technique.load_implementation() is distill and technique.needs_task
    assert "distill" not in slimkit_plugins.records["distill"].hooks


def test_a_sentence_pair_task_is_distilled_on_its_pairs(
    plugins: Any,
    store: str,
    run_pipeline: Any,
    tiny_pipeline: Any,
    tiny_bert4: Path,
    tiny_pair_task: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import slimkit_transformers.finetune as finetune

    encoded: list[Any] = []  # every split tokenized for the teacher or the student
    real = finetune.encode_split
    monkeypatch.setattr(finetune, "encode_split", lambda split, *a, **k: encoded.append(split) or real(split, *a, **k))
    kd = _kd(alpha=0.5, hidden_weight=1.0, augment_copies=1, student={"keep_every": 2})
    steps = [_finetune(tiny_pair_task), kd]
    result = run_pipeline(tiny_pipeline(tiny_bert4, tiny_pair_task, steps, measure={"enabled": False}, store_dir=store))
    assert result.exit_code == 0, [s.error for s in result.steps]
    meta = result.steps[1].artifact.metadata
    # The teacher's tokenizer gives the student's ids and token types for the pairs: hidden states are matched.
    assert meta["same_tokenization"] is True and meta["hidden_layer_map"]
    assert meta["teacher_validation"] == result.steps[0].artifact.metadata["validation"]
    assert meta["augment_rows"] > 0
    # Teacher pass, student training and the masked copies all carry the second texts ...
    assert encoded and all(s.text_pairs is not None and len(s.text_pairs) == len(s) for s in encoded)
    # ... and the copies mask them too.
    assert any("[MASK]" in p for s in encoded for p in s.text_pairs)

    with_file = _kd(alpha=0.5, transfer_texts={"preset": "goemotions"})
    refused = run_pipeline(
        tiny_pipeline(tiny_bert4, tiny_pair_task, [_finetune(tiny_pair_task), with_file], name="t",
                      measure={"enabled": False}, store_dir=store)
    )  # fmt: skip
    assert refused.exit_code == 1
    assert refused.steps[1].error.startswith(
        "SlimkitError: step 'kd': distill.kd's transfer_texts are single texts and the task is a sentence-pair task"
    )
