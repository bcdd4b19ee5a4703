"""Building students: asked depth, weights copied from the teacher, the other origins, the config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import ValidationError

from slimkit.artifacts import Artifact
from slimkit.errors import SlimkitError
from slimkit.spec import Pipeline, pipeline_from_dict
from slimkit_distill.config import DistillConfig, StudentSpec
from slimkit_distill.student import build_student, every_kth, hidden_layer_map, keep_layers, layer_list
from slimkit_transformers.models import load_classifier, resolve_source


def _teacher(model_dir: Path, task: dict[str, Any], tmp_path: Path) -> tuple[Artifact, Pipeline, Any]:
    from slimkit_transformers.tasks import load_task

    pipeline = pipeline_from_dict({"name": "t", "model": str(model_dir), "task": task}, base_dir=tmp_path)
    data = load_task(pipeline.task, pipeline.resolve_path)  # type: ignore[arg-type]
    artifact = resolve_source(pipeline.model, pipeline, tmp_path / "cache", data)
    assert artifact is not None
    return artifact, pipeline, data


def _state(model: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_every_kth_counts_down_from_the_top() -> None:
    assert every_kth(6, 2) == [1, 3, 5]
    assert every_kth(12, 3) == [2, 5, 8, 11]
    assert every_kth(6, 4) == [1, 5]
    assert every_kth(4, 1) == [0, 1, 2, 3]
    assert every_kth(3, 5) == [2]


@pytest.mark.parametrize(("spec", "kept"), [({"keep_every": 2}, [1, 3]), ({"layers": [0, 2, 3]}, [0, 2, 3])])
def test_student_has_the_asked_depth_and_the_teachers_weights(
    spec: dict[str, Any], kept: list[int], tiny_bert4: Path, tiny_multilabel_task: dict[str, Any], tmp_path: Path
) -> None:
    teacher_artifact, pipeline, task = _teacher(tiny_bert4, tiny_multilabel_task, tmp_path)
    teacher, _ = load_classifier(teacher_artifact.path)
    student = build_student(StudentSpec(**spec), teacher_artifact, {"source": teacher_artifact}, pipeline, task)
    model = student.model
    assert student.kept_layers == kept and student.depth == len(kept) and student.origin == "teacher"
    assert model.config.num_hidden_layers == len(kept) and len(model.bert.encoder.layer) == len(kept)
    t_state, s_state = _state(teacher), _state(model)
    for new, old in enumerate(kept):
        prefix_s, prefix_t = f"bert.encoder.layer.{new}.", f"bert.encoder.layer.{old}."
        names = [k[len(prefix_s) :] for k in s_state if k.startswith(prefix_s)]
        assert names and all(torch.equal(s_state[prefix_s + n], t_state[prefix_t + n]) for n in names)
    outside = [k for k in s_state if not k.startswith("bert.encoder.layer.")]
    assert any(k.startswith("classifier.") for k in outside) and any("embeddings" in k for k in outside)
    assert all(torch.equal(s_state[k], t_state[k]) for k in outside)  # embeddings, pooler, head: the teacher's
    assert model.config.id2label == teacher.config.id2label
    batch = student.tokenizer(["i love this", "so sad today"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        assert model(**batch).logits.shape == (2, 3)


def test_a_decoder_student_keeps_consistent_layer_indices(
    tiny_llama: Path, tiny_task: dict[str, Any], tmp_path: Path
) -> None:
    teacher_artifact, pipeline, task = _teacher(tiny_llama, tiny_task, tmp_path)
    student = build_student(StudentSpec(layers=[1]), teacher_artifact, {}, pipeline, task)
    layers = layer_list(student.model)[1]
    assert len(layers) == 1 and layers[0].self_attn.layer_idx == 0
    teacher, _ = load_classifier(teacher_artifact.path)
    assert torch.equal(layers[0].mlp.up_proj.weight, teacher.model.layers[1].mlp.up_proj.weight)
    batch = student.tokenizer(["i love this", "so sad"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        assert student.model(**batch).logits.shape == (2, 2)


def test_student_from_an_earlier_step_or_another_model(
    tiny_bert4: Path, tiny_bert_wide: Path, tiny_multilabel_task: dict[str, Any], tmp_path: Path
) -> None:
    teacher_artifact, pipeline, task = _teacher(tiny_bert4, tiny_multilabel_task, tmp_path)
    other, _, _ = _teacher(tiny_bert_wide, tiny_multilabel_task, tmp_path / "other")
    pruned = other.with_updates(label="prune", key="k-prune")
    artifacts = {"source": teacher_artifact, "prune": pruned}
    student = build_student(StudentSpec(from_step="prune"), teacher_artifact, artifacts, pipeline, task)
    assert student.origin == "step:prune" and student.depth == 1 and student.model.config.hidden_size == 48
    assert torch.equal(student.model.classifier.weight, load_classifier(pruned.path)[0].classifier.weight)
    by_path = build_student(StudentSpec(model=str(tiny_bert_wide)), teacher_artifact, artifacts, pipeline, task)
    assert by_path.origin.startswith("model:") and by_path.model.config.num_labels == 3
    assert hidden_layer_map(by_path, teacher_depth=4) == [3]  # spread evenly: top to top
    with pytest.raises(SlimkitError, match="not an earlier step"):
        build_student(StudentSpec(from_step="nope"), teacher_artifact, artifacts, pipeline, task)
    with pytest.raises(SlimkitError, match="out of range"):
        build_student(StudentSpec(layers=[0, 4]), teacher_artifact, artifacts, pipeline, task)


def test_hidden_layer_map_follows_the_copied_layers(
    tiny_bert4: Path, tiny_multilabel_task: dict[str, Any], tmp_path: Path
) -> None:
    teacher_artifact, pipeline, task = _teacher(tiny_bert4, tiny_multilabel_task, tmp_path)
    student = build_student(StudentSpec(keep_every=2), teacher_artifact, {}, pipeline, task)
    assert hidden_layer_map(student, teacher_depth=4) == [1, 3]
    student.base_depth = 8  # as if cut from a deeper model than the teacher: spread evenly
    assert hidden_layer_map(student, teacher_depth=4) == [1, 3]
    student.base_depth, student.kept_layers = 3, [0, 1, 2]
    assert hidden_layer_map(student, teacher_depth=6) == [1, 3, 5]


def test_keep_layers_refuses_indices_out_of_range(
    tiny_bert4: Path, tiny_multilabel_task: dict[str, Any], tmp_path: Path
) -> None:
    teacher_artifact, _, _ = _teacher(tiny_bert4, tiny_multilabel_task, tmp_path)
    with pytest.raises(SlimkitError, match="has 4 layers"):
        keep_layers(load_classifier(teacher_artifact.path)[0], [5])


def test_config_validation() -> None:
    assert DistillConfig().student.keep_every == 2  # default: half the teacher's depth
    assert StudentSpec(model="x").keep_every is None
    for bad in ({"from_step": "a", "model": "b"}, {"keep_every": 2, "layers": [1]}, {"layers": [2, 1]},
                {"layers": []}, {"keep_every": 0}):  # fmt: skip
        with pytest.raises(ValidationError):
            StudentSpec(**bad)
    for bad_cfg in ({"alpha": 1.5}, {"temperature": 0}, {"hidden_weight": -1}, {"studnet": {}}):
        with pytest.raises(ValidationError):
            DistillConfig(**bad_cfg)
