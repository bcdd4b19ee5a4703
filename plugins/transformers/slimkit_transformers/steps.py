"""Chores every technique on a transformers classifier shares, written once.

Any plugin whose technique reads or writes ``transformers`` models (or formats converted from
them) uses these instead of its own copy:

- the classification head: ``HEAD_NAMES``, ``is_head``, ``head_module_names``;
- the task file that carries the tuned threshold with the model: ``TASK_FILE``,
  ``carry_task_file``, ``write_task_file``;
- the pipeline's task, loaded for a step: ``step_task``;
- one seeded calibration sample of the training split: ``calibration_split``,
  ``calibration_texts``, ``calibration_inputs``, ``calibration_batches``.

Cheap to import (no torch, transformers or numpy at module level): a plugin may import it at its
top level.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimkit.errors import SlimkitError

if TYPE_CHECKING:
    from slimkit.context import StepContext
    from slimkit_transformers.tasks import Split, TaskData

HEAD_NAMES: tuple[str, ...] = ("classifier", "score", "pre_classifier")
"""Attributes of a ``*ForSequenceClassification`` model that hold its classification head, the
output layer's names first: ``classifier`` (BERT, MiniLM, RoBERTa, ...), ``score`` (Llama, Qwen,
Mistral and other decoders), ``pre_classifier`` (DistilBERT's dense layer before ``classifier``).
"""

POOLER_NAMES: tuple[str, ...] = ("pooler",)
"""Attributes of the base model that feed the head (BERT's pooler): protected with it."""

TASK_FILE = "slimkit-task.json"
"""Written beside the weights by training steps: ``{"threshold", "labels", "problem"}``. The
measurer reads the decision threshold from it (``predictors.saved_threshold``), so every step
that writes a model from a trained input must carry it forward (``carry_task_file``)."""


# -- the classification head ------------------------------------------------------------------


def is_head(name: str, heads: tuple[str, ...] | list[str] = HEAD_NAMES) -> bool:
    """Whether ``name``, a qualified module or parameter name as in ``model.named_modules()`` or
    ``model.state_dict()``, is one of ``heads`` or lies inside one.

    ``is_head("classifier.weight")`` and ``is_head("score")`` are True, ``is_head("bert.pooler.dense.weight")``
    is False; pass ``head_module_names(model)`` as ``heads`` to count the pooler in, and
    ``"classifier_x"`` never matches ``"classifier"``.
    """
    return any(name == h or name.startswith(h + ".") for h in heads)


def head_module_names(model: Any) -> list[str]:
    """Qualified names of the head modules ``model`` has (``HEAD_NAMES`` order) and of the pooler
    that feeds them: ``["classifier", "bert.pooler"]`` for BERT, ``["score"]`` for Llama,
    ``["classifier", "pre_classifier"]`` for DistilBERT. What pruners and quantizers leave alone."""
    names = [n for n in HEAD_NAMES if getattr(model, n, None) is not None]
    prefix = getattr(model, "base_model_prefix", "")
    base = getattr(model, prefix, None) if prefix else None
    if base is not None:
        names += [f"{prefix}.{n}" for n in POOLER_NAMES if getattr(base, n, None) is not None]
    return names


# -- the task file --------------------------------------------------------------------------------


def carry_task_file(step: StepContext[Any]) -> bool:
    """Copy ``TASK_FILE`` from the step's input model into ``step.output_dir``; True when copied.

    Call it in any technique that writes a model derived from its input (pruning, quantizing,
    exporting), so the threshold a training step tuned still applies to the new model. The
    input may be a folder or a file inside one (an ONNX graph): the task file is looked up
    beside it. An input without one (a source no step trained) copies nothing and returns False.
    """
    folder = step.input.path if step.input.path.is_dir() else step.input.path.parent
    source = folder / TASK_FILE
    if not source.is_file():
        return False
    step.output_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, step.output_dir / TASK_FILE)
    return True


def write_task_file(folder: Path, task: TaskData, threshold: float) -> None:
    """Write ``TASK_FILE`` into ``folder`` for a model trained on ``task``, with the decision
    ``threshold`` tuned for it (the task's own threshold when nothing was tuned)."""
    facts = {"threshold": threshold, "labels": task.labels, "problem": task.problem}
    (folder / TASK_FILE).write_text(json.dumps(facts, indent=2))


# -- the task and its calibration sample ------------------------------------------------------------


def step_task(step: StepContext[Any]) -> TaskData:
    """The pipeline's task, loaded: ``train``, ``validation`` (a seeded slice carved from train),
    ``eval`` splits, ``labels``, ``problem``, ``threshold``.

    Loads are cached (``tasks.load_task``), so calling it from several helpers of one step is
    cheap. A pipeline without a task raises a SlimkitError naming the step and its technique;
    declare ``needs_task=True`` on the technique so that the planner refuses it first.
    """
    from slimkit_transformers.tasks import load_task

    if step.task is None:
        raise SlimkitError(
            f"step {step.name!r}: {step.technique.name} needs the pipeline's 'task'",
            fix="add a [task] table to the pipeline",
        )
    return load_task(step.task, step.pipeline.resolve_path)


def calibration_split(step: StepContext[Any], n: int) -> Split:
    """A seeded sample of ``n`` rows (texts and their labels) of the task's train split, never of
    the validation or eval splits: the one calibration sample of every technique.

    Seeding: the rows are the first ``n`` indices of
    ``numpy.random.default_rng(step.seed).permutation(len(train))``, returned in training-set
    order. ``step.seed`` is the pipeline's seed, so every technique and every run of a pipeline
    with the same seed and task calibrates on the same rows, and a smaller ``n`` takes a subset
    of a larger one's rows. ``n`` at or above the split's size takes all of it. No task raises
    as ``step_task`` does.
    """
    from slimkit_transformers.tasks import sample_rows

    return sample_rows(step_task(step).train, n, step.seed)


def calibration_texts(step: StepContext[Any], n: int) -> list[str]:
    """The texts of ``calibration_split(step, n)``: ``n`` seeded training texts, in training-set order.

    Plain strings only: in a sentence-pair task these are each row's first text. A technique that
    tokenizes for the model takes ``calibration_inputs`` instead."""
    return calibration_split(step, n).texts


def calibration_inputs(step: StepContext[Any], n: int) -> list[str] | list[tuple[str, str]]:
    """What a tokenizer takes for ``calibration_split(step, n)`` (``Split.inputs``): the texts, or
    (text, pair) tuples in a sentence-pair task, which a Hugging Face tokenizer encodes as pairs."""
    return calibration_split(step, n).inputs


def calibration_batches(
    step: StepContext[Any], tokenizer: Any, *, examples: int, batch_size: int, max_length: int
) -> list[dict[str, Any]]:
    """``calibration_split(step, examples)`` tokenized into batches for a forward (and backward)
    pass: each batch is ``tokenizer(texts, padding=True, truncation=True, max_length=...)`` as
    torch tensors plus ``labels`` (float for multi-label tasks, long otherwise), on
    ``step.device``, so ``model(**batch).loss`` is the task loss. Consecutive rows of the sample
    make a batch; the last may be smaller."""
    import torch

    split = calibration_split(step, examples)
    multi_label = step_task(step).multi_label
    batches = []
    for start in range(0, len(split), batch_size):
        texts = split.inputs[start : start + batch_size]  # (text, pair) tuples in a sentence-pair task
        batch = dict(tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"))
        labels = torch.as_tensor(split.labels[start : start + batch_size])
        batch["labels"] = labels.float() if multi_label else labels.long()
        batches.append({k: v.to(step.device) for k, v in batch.items()})
    return batches
