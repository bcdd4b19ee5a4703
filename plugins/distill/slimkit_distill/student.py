"""Building the student: a model to start from, then (optionally) a subset of its layers.

Fewer layers are taken by building the same architecture with a shallower config and loading the
kept layers' weights under their new indices (``load_state_dict(strict=True)``), so every weight of
the student comes from the model it was cut from and per-layer indices (a decoder's ``layer_idx``,
``config.layer_types``) are right by construction.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimkit.errors import SlimkitError

if TYPE_CHECKING:
    from slimkit.artifacts import Artifact
    from slimkit.spec import Pipeline
    from slimkit_distill.config import StudentSpec
    from slimkit_transformers.tasks import TaskData

FORMAT = "transformers"
LAYER_LIST_NAMES = ("layer", "layers", "h", "block", "blocks")


@dataclass
class Student:
    model: Any
    tokenizer: Any
    origin: str  # "teacher", "step:<name>" or "model:<id>"
    base_path: Path  # the folder the student was cut from
    base_depth: int
    kept_layers: list[int] | None  # indices into the base model's layers; None when all were kept
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def depth(self) -> int:
        return len(self.kept_layers) if self.kept_layers is not None else self.base_depth


def layer_list(model: Any) -> tuple[str, Any]:
    """(qualified name, ModuleList) of the transformer layers: the list whose length is the depth."""
    import torch

    depth = getattr(model.config, "num_hidden_layers", None)
    found = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.ModuleList) and name.rsplit(".", 1)[-1] in LAYER_LIST_NAMES
    ]
    matching = [(n, m) for n, m in found if depth is None or len(m) == depth]
    if not matching:
        raise SlimkitError(f"distill.kd: cannot find the transformer layers of {type(model).__name__}")
    return min(matching, key=lambda item: item[0].count("."))


def every_kth(depth: int, k: int) -> list[int]:
    """Every k-th layer counted down from the top, so the last layer is always kept."""
    return list(range(depth - 1, -1, -k))[::-1]


def keep_layers(model: Any, keep: list[int]) -> Any:
    """A copy of ``model`` with only the layers ``keep`` (in that order), weights copied exactly."""
    prefix, layers = layer_list(model)
    depth = len(layers)
    bad = [i for i in keep if not 0 <= i < depth]
    if bad:
        raise SlimkitError(f"distill.kd: student.layers {bad} out of range: the model has {depth} layers (0-based)")
    config = copy.deepcopy(model.config)
    config.num_hidden_layers = len(keep)
    if isinstance(getattr(config, "layer_types", None), list) and len(config.layer_types) == depth:
        config.layer_types = [config.layer_types[i] for i in keep]
    student = type(model)(config).to(dtype=model.dtype)
    new_index = {old: new for new, old in enumerate(keep)}
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith(prefix + "."):
            index, rest = key[len(prefix) + 1 :].split(".", 1)
            if int(index) in new_index:
                state[f"{prefix}.{new_index[int(index)]}.{rest}"] = value
        else:
            state[key] = value
    student.load_state_dict(state, strict=True)
    return student.eval()


def _base_path(
    spec: StudentSpec,
    teacher: Artifact,
    artifacts: dict[str, Artifact],
    pipeline: Pipeline,
    task: TaskData,
) -> Path:
    if spec.from_step is not None:
        found = artifacts.get(spec.from_step)
        if found is None:
            raise SlimkitError(
                f"distill.kd: student.from_step {spec.from_step!r} is not an earlier step of this pipeline",
                fix=f"use one of {', '.join(sorted(artifacts))}",
            )
        if found.format != FORMAT:
            raise SlimkitError(
                f"distill.kd: student.from_step {spec.from_step!r} is a {found.format!r} model, not {FORMAT!r}"
            )
        return found.path
    if spec.model is not None:
        from slimkit.runner import cache_dir
        from slimkit.spec import ModelSource
        from slimkit_transformers.models import resolve_source

        # The same conversion a pipeline's own source gets: task labels, seeded head, pad token.
        resolved = resolve_source(ModelSource(source=spec.model), pipeline, cache_dir(), task)
        if resolved is None:
            raise SlimkitError(f"distill.kd: student.model {spec.model!r} is not a transformers model")
        return resolved.path
    return teacher.path


def build_student(
    spec: StudentSpec,
    teacher: Artifact,
    artifacts: dict[str, Artifact],
    pipeline: Pipeline,
    task: TaskData,
) -> Student:
    """The student model (CPU, eval mode) and its tokenizer, as ``spec`` asks."""
    from slimkit_transformers.models import load_classifier

    path = _base_path(spec, teacher, artifacts, pipeline, task)
    model, tokenizer = load_classifier(path)
    labels = model.config.num_labels
    if labels != task.num_labels:
        raise SlimkitError(
            f"distill.kd: the student ({spec.origin}) has {labels} outputs, the task {task.num_labels} labels"
        )
    depth = len(layer_list(model)[1])
    keep: list[int] | None = None
    if spec.keep_every is not None:
        keep = every_kth(depth, spec.keep_every)
    elif spec.layers is not None:
        keep = list(spec.layers)
    if keep is not None:
        model = keep_layers(model, keep)
    return Student(model, tokenizer, spec.origin, path, depth, keep)


def hidden_layer_map(student: Student, teacher_depth: int) -> list[int]:
    """For each student layer, the teacher layer its output is matched to.

    A student cut from a model as deep as the teacher matches the layers it was copied from;
    any other student is spread evenly over the teacher, top layer to top layer.
    """
    if student.base_depth == teacher_depth:
        return list(student.kept_layers) if student.kept_layers is not None else list(range(teacher_depth))
    depth = student.depth
    return [max(0, round((j + 1) * teacher_depth / depth) - 1) for j in range(depth)]
