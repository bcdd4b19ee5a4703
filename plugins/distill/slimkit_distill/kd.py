"""``distill.kd``: train a student on the task's labels and on the teacher's outputs.

The teacher runs once over the training set before training; its logits become a dataset column
(and, for hidden-state matching, its layer outputs go to a float16 memory-mapped file keyed by
example index), so every epoch costs only the student's passes. Training goes through a subclass
of the transformers ``Trainer`` whose ``compute_loss`` adds the distillation terms to the model's
own hard-label loss; everything else (seeding, early stopping on the validation slice, the
threshold tuned on it, the saved task facts) is what ``transformers.finetune`` does.
"""

from __future__ import annotations

import gc
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from transformers import DataCollatorWithPadding, Trainer

from slimkit.artifacts import Artifact
from slimkit.context import StepContext
from slimkit.errors import SlimkitError
from slimkit_distill.augment import mask_words, shared_mask_token
from slimkit_distill.config import DistillConfig
from slimkit_distill.losses import distillation_loss, hidden_state_loss, mix
from slimkit_distill.student import Student, build_student, hidden_layer_map, layer_list
from slimkit_distill.transfer import load_transfer_texts
from slimkit_transformers.steps import step_task

if TYPE_CHECKING:
    from slimkit_transformers.tasks import TaskData

TEACHER_LOGITS = "teacher_logits"
EXAMPLE_INDEX = "example_index"
TEACHER_HIDDEN = "teacher_hidden"


@dataclass
class HiddenCache:
    """The teacher's outputs of the matched layers for every real token of every example."""

    array: np.ndarray  # (tokens of all examples, matched layers, width), float16, memory-mapped
    offsets: np.ndarray  # example i owns rows offsets[i]:offsets[i + 1]

    def gather(self, indices: Iterable[int]) -> torch.Tensor:
        """(layers, tokens, width) float32 for these examples, concatenated in their order."""
        parts = [self.array[self.offsets[i] : self.offsets[i + 1]] for i in indices]
        return torch.from_numpy(np.concatenate(parts).astype(np.float32)).transpose(0, 1).contiguous()


class DistillCollator:
    """Pads like ``DataCollatorWithPadding`` and adds the cached teacher outputs of the batch."""

    def __init__(self, tokenizer: Any, hidden: HiddenCache | None = None) -> None:
        self.pad = DataCollatorWithPadding(tokenizer)
        self.hidden = hidden

    def __call__(self, features: list[dict[str, Any]]) -> Any:
        extra = (TEACHER_LOGITS, EXAMPLE_INDEX)
        batch = self.pad([{k: v for k, v in f.items() if k not in extra} for f in features])
        if TEACHER_LOGITS in features[0]:
            batch[TEACHER_LOGITS] = torch.tensor([f[TEACHER_LOGITS] for f in features], dtype=torch.float32)
        if self.hidden is not None and EXAMPLE_INDEX in features[0]:
            batch[TEACHER_HIDDEN] = self.hidden.gather(int(f[EXAMPLE_INDEX]) for f in features)
        return batch


class DistillTrainer(Trainer):
    """The transformers Trainer with the distillation terms added to the model's own loss."""

    # Every term is a per-batch mean, so gradient accumulation must divide it (the Trainer's rule).
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        *args: Any,
        alpha: float,
        temperature: float,
        multi_label: bool,
        hidden_weight: float = 0.0,
        projections: torch.nn.ModuleList | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.alpha, self.temperature, self.multi_label = alpha, temperature, multi_label
        self.hidden_weight, self.projections = hidden_weight, projections
        self.loss_parts: dict[str, list[float]] = defaultdict(list)

    def create_optimizer(self, model: Any = None) -> Any:
        optimizer = super().create_optimizer(model)
        if self.projections is not None:
            params = list(self.projections.parameters())
            present = {id(p) for group in optimizer.param_groups for p in group["params"]}
            if id(params[0]) not in present:  # the projections learn with the student, then are dropped
                optimizer.add_param_group({"params": params, "weight_decay": self.args.weight_decay})
        return optimizer

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        teacher_logits = inputs.pop(TEACHER_LOGITS, None)
        teacher_hidden = inputs.pop(TEACHER_HIDDEN, None)
        if teacher_hidden is not None:
            inputs["output_hidden_states"] = True
        # The Trainer's own loss (the model's hard-label loss), untouched: alpha = 0 is plain fine-tuning.
        hard, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        soft = None
        if teacher_logits is not None and self.alpha > 0:
            soft = distillation_loss(outputs.logits, teacher_logits, self.temperature, self.multi_label)
        loss = mix(hard, soft, self.alpha)
        hidden = None
        if teacher_hidden is not None:
            mask = inputs["attention_mask"].bool()
            states = [h[mask] for h in outputs.hidden_states[1:]]  # one per student layer, real tokens only
            hidden = hidden_state_loss(states, teacher_hidden, self.projections)
            loss = loss + self.hidden_weight * hidden
            outputs.hidden_states = None  # not part of the predictions
        if model.training:
            self.loss_parts["hard_loss"].append(float(hard.detach()))
            if soft is not None:
                self.loss_parts["distill_loss"].append(float(soft.detach()))
            if hidden is not None:
                self.loss_parts["hidden_loss"].append(float(hidden.detach()))
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self.loss_parts:
            logs = logs | {k: round(sum(v) / len(v), 6) for k, v in self.loss_parts.items()}
            self.loss_parts.clear()
        super().log(logs, start_time)


ProgressFn = Callable[..., Iterator[Any]]


def forward_pass(
    model: Any,
    dataset: Any,
    tokenizer: Any,
    *,
    batch_size: int,
    device: str,
    hidden_layers: list[int] | None = None,
    scratch: Path | None = None,
    progress: ProgressFn | None = None,
    description: str = "",
) -> tuple[np.ndarray, HiddenCache | None]:
    """Logits of ``model`` on every example (and its chosen layers' outputs), in dataset order.

    Batches are formed from examples of similar length, which pads little; the outputs are put
    back in the dataset's order.
    """
    pad = DataCollatorWithPadding(tokenizer)
    rows = dataset.remove_columns([c for c in dataset.column_names if c == "labels"]).to_list()
    lengths = np.array([len(r["input_ids"]) for r in rows])
    order = np.argsort(lengths, kind="stable")
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    logits = np.zeros((len(rows), model.config.num_labels), dtype=np.float32)
    hidden = None
    if hidden_layers:
        assert scratch is not None
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        width = model.config.hidden_size
        array = np.lib.format.open_memmap(
            scratch / "teacher-hidden.npy",
            mode="w+",
            dtype=np.float16,
            shape=(int(offsets[-1]), len(hidden_layers), width),
        )
        hidden = HiddenCache(array, offsets)
    wrap = progress or (lambda items, *a, **k: iter(items))
    model.eval()
    with torch.inference_mode():
        for idx in wrap(batches, description, total=len(batches)):
            batch = pad([rows[int(i)] for i in idx]).to(device)
            out = model(**batch, output_hidden_states=bool(hidden_layers))
            logits[idx] = out.logits.float().cpu().numpy()
            if hidden is not None and hidden_layers:
                mask = batch["attention_mask"].bool()
                stacked = torch.stack([out.hidden_states[layer + 1] for layer in hidden_layers], dim=2)
                for b, i in enumerate(idx):
                    hidden.array[hidden.offsets[i] : hidden.offsets[i + 1]] = stacked[b][mask[b]].half().cpu().numpy()
    return logits, hidden


def _teacher_artifact(step: StepContext[DistillConfig], cfg: DistillConfig) -> Artifact:
    if cfg.teacher is None:
        return step.input
    name = step.pipeline.baseline if cfg.teacher == "baseline" else cfg.teacher
    found = step.artifacts.get(name)
    if found is None:
        raise SlimkitError(
            f"step {step.name!r}: teacher {cfg.teacher!r} is not an earlier step of this pipeline",
            fix=f"use one of {', '.join(sorted(step.artifacts))}",
        )
    if found.format != "transformers":
        raise SlimkitError(f"step {step.name!r}: teacher {cfg.teacher!r} is a {found.format!r} model")
    return found


def _params(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


@dataclass
class Teaching:
    """What the teacher pass leaves for training the student."""

    train_ds: Any  # the student's training rows (and transfer set), with the teacher's logits as a column
    val_logits: np.ndarray  # the teacher's logits on the validation slice
    hidden: HiddenCache | None  # its matched layers' outputs, for hidden-state matching
    projections: torch.nn.ModuleList | None  # student width -> teacher width, when they differ
    facts: dict[str, Any]


@dataclass
class Trained:
    """The student after training, and what the run recorded."""

    trainer: Any
    seconds: float
    val_logits: np.ndarray
    trainable: int
    best_metric: str


def distill(step: StepContext[DistillConfig]) -> Artifact:
    """``distill.kd``: build the student, run the teacher once, train the student, save it."""
    from slimkit_transformers.finetune import encode_split, save_trained, validate
    from slimkit_transformers.models import set_threads

    cfg = step.config
    task = step_task(step)
    _check_pairs(step, task)
    seed = step.seed if cfg.seed is None else cfg.seed
    threads = set_threads(step.pipeline.measure.threads)
    teacher_artifact = _teacher_artifact(step, cfg)
    torch.manual_seed(seed)
    student = build_student(cfg.student, teacher_artifact, step.artifacts, step.pipeline, task)
    student.model.to(step.device)
    # With a transfer set the teacher pass encodes the training rows it adds them to: not twice.
    train_ds = (
        None
        if _has_transfer_set(cfg)
        else encode_split(task.train, student.tokenizer, cfg.max_length, task.multi_label)
    )
    val_ds = encode_split(task.validation, student.tokenizer, cfg.max_length, task.multi_label)
    facts = _student_facts(cfg, teacher_artifact, student)
    teacher_threshold = _threshold(task, teacher_artifact)
    teaching = None
    scratch = Path(tempfile.mkdtemp(prefix="distill-", dir=step.run_dir))
    try:
        if _uses_teacher(cfg):
            teaching = teacher_pass(
                step, task, (teacher_artifact, teacher_threshold), student, (train_ds, val_ds), scratch, seed
            )
            facts |= teaching.facts
            train_ds = teaching.train_ds
        trained = train_student(step, task, student, (train_ds, val_ds), teaching, scratch, seed)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    threshold, val_scores = validate(step, task, trained.val_logits, teacher_threshold)
    if teaching is not None:
        facts |= _compared_with_teacher(task, cfg, trained.val_logits, teaching.val_logits, teacher_threshold)
    save_trained(step, trained.trainer.model, student.tokenizer, task, threshold)
    return step.artifact(**facts, **_run_facts(trained, task, threads, threshold, val_scores))


def _check_pairs(step: StepContext[DistillConfig], task: TaskData) -> None:
    """A sentence-pair task is distilled on its pairs; ``transfer_texts`` are single texts, which a
    pair model has no second text for, so they are refused before anything is trained."""
    if task.train.text_pairs is not None and step.config.transfer_texts is not None:
        raise SlimkitError(
            f"step {step.name!r}: distill.kd's transfer_texts are single texts and the task is a sentence-pair "
            "task (task.text_pair_column)",
            fix="leave transfer_texts unset; augment_copies masks both texts of each pair",
        )


def _has_transfer_set(cfg: DistillConfig) -> bool:
    """Whether the teacher labels extra training rows (masked copies, other texts)."""
    return cfg.augment_copies > 0 or cfg.transfer_texts is not None


def _uses_teacher(cfg: DistillConfig) -> bool:
    """Whether anything needs the teacher's outputs; alpha = 0 without a transfer set is plain fine-tuning."""
    return cfg.alpha > 0 or cfg.hidden_weight > 0 or _has_transfer_set(cfg)


def _student_facts(cfg: DistillConfig, teacher: Artifact, student: Student) -> dict[str, Any]:
    return {
        "teacher": teacher.label,
        "student_init": student.origin,
        "student_layers": student.depth,
        "kept_layers": student.kept_layers,
        "alpha": cfg.alpha,
        "temperature": cfg.temperature,
        "hidden_weight": cfg.hidden_weight,
        "student_params": _params(student.model),
    }


def teacher_pass(
    step: StepContext[DistillConfig],
    task: TaskData,
    teacher_of: tuple[Artifact, float],
    student: Student,
    datasets: tuple[Any, Any],
    scratch: Path,
    seed: int,
) -> Teaching:
    """Run the teacher (its artifact and decision threshold) once over the student's training rows
    (after labelling the transfer set with it) and the validation slice; ``datasets`` are those
    rows encoded for the student (the training rows None when a transfer set is built here)."""
    from slimkit_transformers.finetune import encode_split
    from slimkit_transformers.models import load_classifier

    cfg = step.config
    teacher_artifact, teacher_threshold = teacher_of
    train_ds, val_ds = datasets
    started = time.perf_counter()
    teacher, teacher_tokenizer = load_classifier(teacher_artifact.path, device=step.device)
    teacher_depth = len(layer_list(teacher)[1])
    facts: dict[str, Any] = {"teacher_layers": teacher_depth, "teacher_params": _params(teacher)}
    train_split = task.train
    if _has_transfer_set(cfg):
        train_split, augment_facts = _with_transfer_set(
            task, teacher, teacher_tokenizer, student.tokenizer, cfg, seed, step.device,
            teacher_threshold, step.pipeline.resolve_path, step.progress,
        )  # fmt: skip
        facts |= augment_facts
        train_ds = encode_split(train_split, student.tokenizer, cfg.max_length, task.multi_label)
    teacher_train, teacher_val, same_tokens = _teacher_inputs(
        cfg, task, teacher_tokenizer, [(train_split, train_ds), (task.validation, val_ds)]
    )
    facts["same_tokenization"] = same_tokens
    layer_map = _hidden_layers(step, student, teacher_depth, same_tokens)
    if layer_map is not None:
        facts["hidden_layer_map"] = layer_map
    train_logits, hidden = forward_pass(
        teacher, teacher_train, teacher_tokenizer, batch_size=cfg.teacher_batch_size, device=step.device,
        hidden_layers=layer_map, scratch=scratch, progress=step.progress, description="teacher pass",
    )  # fmt: skip
    val_logits, _ = forward_pass(
        teacher, teacher_val, teacher_tokenizer, batch_size=cfg.teacher_batch_size, device=step.device
    )
    facts["teacher_pass_seconds"] = round(time.perf_counter() - started, 2)
    teacher_width = teacher.config.hidden_size
    del teacher
    gc.collect()
    train_ds = train_ds.add_column(TEACHER_LOGITS, train_logits.tolist())
    projections = None
    if hidden is not None:
        train_ds = train_ds.add_column(EXAMPLE_INDEX, list(range(len(train_ds))))
        projections = _projections(student, teacher_width, seed, step.device)
        facts["hidden_projection"] = projections is not None
    facts |= _soft_loss_before(step, task, student, val_ds, val_logits)
    return Teaching(train_ds, val_logits, hidden, projections, facts)


def _teacher_inputs(
    cfg: DistillConfig, task: TaskData, teacher_tokenizer: Any, splits: list[tuple[Any, Any]]
) -> tuple[Any, Any, bool]:
    """(training rows, validation slice) encoded for the teacher, and whether the teacher's
    tokenizer gives the student's ids; ``splits`` are (split, student dataset) pairs."""
    from slimkit_transformers.finetune import encode_split

    same_tokens = all(_same_encoding(teacher_tokenizer, split, ds, cfg.max_length) for split, ds in splits)
    if same_tokens:
        return splits[0][1], splits[1][1], True
    # Each model reads the texts through its own tokenizer.
    train, val = (encode_split(split, teacher_tokenizer, cfg.max_length, task.multi_label) for split, _ in splits)
    return train, val, False


def _same_encoding(teacher_tokenizer: Any, split: Any, ds: Any, max_length: int) -> bool:
    """Whether the student's encoded rows ``ds`` are what the teacher's tokenizer gives for ``split``:
    the same ids and, in a sentence-pair task, the same token types (which tell the two texts apart)."""
    encoded = teacher_tokenizer(split.texts, split.text_pairs, truncation=True, max_length=max_length)
    if encoded["input_ids"] != ds["input_ids"]:
        return False
    if split.text_pairs is None or "token_type_ids" not in encoded:
        return True
    return "token_type_ids" in ds.column_names and bool(encoded["token_type_ids"] == ds["token_type_ids"])


def _hidden_layers(
    step: StepContext[DistillConfig], student: Student, teacher_depth: int, same_tokens: bool
) -> list[int] | None:
    """The teacher layer each student layer is matched to, or None without hidden-state matching."""
    if step.config.hidden_weight <= 0:
        return None
    if not same_tokens:
        raise SlimkitError(
            f"step {step.name!r}: hidden-state matching needs the student to tokenize like the teacher",
            fix="set hidden_weight = 0, or choose a student with the teacher's tokenizer",
        )
    return hidden_layer_map(student, teacher_depth)


def _projections(student: Student, teacher_width: int, seed: int, device: str) -> torch.nn.ModuleList | None:
    """One seeded Linear(student width, teacher width) per student layer, or None when the widths agree."""
    student_width = student.model.config.hidden_size
    if student_width == teacher_width:
        return None
    torch.manual_seed(seed)
    layers = (torch.nn.Linear(student_width, teacher_width) for _ in range(student.depth))
    return torch.nn.ModuleList(layers).to(device)


def _soft_loss_before(
    step: StepContext[DistillConfig], task: TaskData, student: Student, val_ds: Any, teacher_logits: np.ndarray
) -> dict[str, float]:
    """The distillation loss on the validation slice before training, and the lowest it can be."""
    cfg = step.config
    before, _ = forward_pass(
        student.model, val_ds, student.tokenizer, batch_size=cfg.eval_batch_size, device=step.device
    )
    return {
        "distill_loss_validation_before": _soft_loss(before, teacher_logits, cfg, task),
        # The teacher's own soft targets: 0 for KL, their entropy for BCE.
        "distill_loss_validation_floor": _soft_loss(teacher_logits, teacher_logits, cfg, task),
    }


def train_student(
    step: StepContext[DistillConfig],
    task: TaskData,
    student: Student,
    datasets: tuple[Any, Any],
    teaching: Teaching | None,
    scratch: Path,
    seed: int,
) -> Trained:
    """Train the student with the ``DistillTrainer``: early stopping on the validation slice, the
    best checkpoint kept, as ``transformers.finetune`` trains."""
    from transformers import EarlyStoppingCallback

    from slimkit_transformers.finetune import (
        best_metric,
        freeze_all_but,
        metrics_function,
        progress_callback,
        training_arguments,
    )

    cfg = step.config
    train_ds, val_ds = datasets
    trainable = freeze_all_but(student.model, cfg.train_layers)
    metric = best_metric(task)
    args = training_arguments(
        cfg, seed=seed, device=step.device, output_dir=scratch / "checkpoints", train_rows=len(train_ds),
        best_metric=metric, remove_unused_columns=False,  # the teacher's columns must reach the collator
    )  # fmt: skip
    trainer = DistillTrainer(
        model=student.model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        data_collator=DistillCollator(student.tokenizer, teaching.hidden if teaching else None),
        compute_metrics=metrics_function(task),
        callbacks=[
            EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience),
            progress_callback(step, f"{step.name}: distilling"),
        ],
        alpha=cfg.alpha,
        temperature=cfg.temperature,
        multi_label=task.multi_label,
        hidden_weight=cfg.hidden_weight,
        projections=teaching.projections if teaching else None,
    )
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    val_logits = trainer.predict(val_ds).predictions
    if isinstance(val_logits, tuple):
        val_logits = val_logits[0]
    return Trained(trainer, seconds, val_logits, trainable, metric)


def _compared_with_teacher(
    task: TaskData, cfg: DistillConfig, val_logits: np.ndarray, teacher_logits: np.ndarray, teacher_threshold: float
) -> dict[str, Any]:
    """The distillation loss after training, and the teacher's own validation scores."""
    from slimkit_transformers import scores

    teacher_predictions = scores.predict(teacher_logits, task.multi_label, teacher_threshold)
    return {
        "distill_loss_validation_after": _soft_loss(val_logits, teacher_logits, cfg, task),
        "teacher_validation": scores.classification_scores(
            task.validation.labels, teacher_predictions, task.multi_label
        ),
    }


def _run_facts(
    trained: Trained, task: TaskData, threads: int, threshold: float, val_scores: dict[str, float]
) -> dict[str, Any]:
    from slimkit_transformers.finetune import training_facts

    facts = training_facts(
        trained.trainer, task, seconds=trained.seconds, trainable=trained.trainable, threads=threads,
        threshold=threshold, validation=val_scores, best_checkpoint_metric=trained.best_metric,
    )  # fmt: skip
    facts["train_history"] = [
        {k: v for k, v in e.items() if k in ("loss", "hard_loss", "distill_loss", "hidden_loss", "epoch", "step")}
        for e in trained.trainer.state.log_history
        if "loss" in e
    ]
    return facts


def _with_transfer_set(
    task: Any,
    teacher: Any,
    teacher_tokenizer: Any,
    tokenizer: Any,
    cfg: DistillConfig,
    seed: int,
    device: str,
    threshold: float,
    resolve: Any,
    progress: ProgressFn | None = None,
) -> tuple[Any, dict[str, Any]]:
    """The training split followed by ``augment_copies`` masked copies of it and the ``transfer_texts``,
    all labelled by the teacher."""
    from slimkit_transformers.finetune import encode_split
    from slimkit_transformers.scores import predict
    from slimkit_transformers.tasks import Split

    facts: dict[str, Any] = {}
    texts: list[str] = []
    pairs: list[str] | None = None if task.train.text_pairs is None else []  # a sentence pair's second texts
    if cfg.augment_copies:
        mask = shared_mask_token(tokenizer, teacher_tokenizer)
        texts = mask_words(task.train.texts, cfg.augment_copies, cfg.augment_mask_prob, seed, mask)
        if task.train.text_pairs is not None:  # both texts of a pair are masked, each with its own draws
            pairs = mask_words(task.train.text_pairs, cfg.augment_copies, cfg.augment_mask_prob, seed + 1, mask)
        facts |= {
            "augment_copies": cfg.augment_copies,
            "augment_rows": len(texts),
            "augment_mask_prob": cfg.augment_mask_prob,
            "augment_masking": "mask token" if mask else "word dropout",
        }
    if cfg.transfer_texts is not None:  # single texts: refused for a sentence-pair task (_check_pairs)
        extra, source = load_transfer_texts(cfg.transfer_texts, resolve, seed)
        texts += extra
        facts |= {"transfer_texts_source": source, "transfer_texts_rows": len(extra)}
    labels = task.train.labels
    unlabelled = Split(texts, np.zeros((len(texts), *labels.shape[1:]), dtype=labels.dtype), pairs)
    encoded = encode_split(unlabelled, teacher_tokenizer, cfg.max_length, task.multi_label)
    logits, _ = forward_pass(
        teacher, encoded, teacher_tokenizer, batch_size=cfg.teacher_batch_size, device=device, progress=progress,
        description="teacher labels the transfer set",
    )  # fmt: skip
    pseudo = predict(logits, task.multi_label, threshold).astype(labels.dtype)
    all_pairs = None if pairs is None else task.train.text_pairs + pairs
    return Split(task.train.texts + texts, np.concatenate([labels, pseudo]), all_pairs), facts


def _soft_loss(student_logits: np.ndarray, teacher_logits: np.ndarray, cfg: DistillConfig, task: Any) -> float:
    loss = distillation_loss(
        torch.from_numpy(np.asarray(student_logits, dtype=np.float32)),
        torch.from_numpy(np.asarray(teacher_logits, dtype=np.float32)),
        cfg.temperature,
        task.multi_label,
    )
    return round(float(loss), 6)


def _threshold(task: Any, artifact: Artifact) -> float:
    """The teacher's saved threshold (from its task file), else the task's."""
    from slimkit_transformers.predictors import saved_threshold

    return saved_threshold(artifact.path, task.threshold) if task.multi_label else task.threshold
