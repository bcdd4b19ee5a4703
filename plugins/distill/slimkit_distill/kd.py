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
import json
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def _teacher_artifact(step: StepContext, cfg: DistillConfig) -> Artifact:
    if cfg.teacher is None:
        return step.input
    found = step.artifacts.get(cfg.teacher)
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


def distill(step: StepContext) -> Artifact:
    from transformers import EarlyStoppingCallback

    from slimkit_transformers import scores
    from slimkit_transformers.finetune import TASK_FILE, encode_split, freeze_all_but, training_arguments
    from slimkit_transformers.models import load_classifier, set_threads
    from slimkit_transformers.tasks import load_task

    cfg: DistillConfig = step.config  # type: ignore[assignment]
    if step.task is None:
        raise SlimkitError(f"step {step.name!r}: distill.kd needs the pipeline's 'task'")
    task = load_task(step.task, step.pipeline.resolve_path)
    seed = step.seed if cfg.seed is None else cfg.seed
    threads = set_threads(step.pipeline.measure.threads)
    teacher_artifact = _teacher_artifact(step, cfg)
    torch.manual_seed(seed)
    student: Student = build_student(cfg.student, teacher_artifact, step.artifacts, step.pipeline, task)
    model, tokenizer = student.model.to(step.device), student.tokenizer
    train_ds = encode_split(task.train, tokenizer, cfg.max_length, task.multi_label)
    val_ds = encode_split(task.validation, tokenizer, cfg.max_length, task.multi_label)
    uses_teacher = cfg.alpha > 0 or cfg.hidden_weight > 0 or cfg.augment_copies > 0 or cfg.transfer_texts is not None
    train_split = task.train
    facts: dict[str, Any] = {
        "teacher": teacher_artifact.label,
        "student_init": student.origin,
        "student_layers": student.depth,
        "kept_layers": student.kept_layers,
        "alpha": cfg.alpha,
        "temperature": cfg.temperature,
        "hidden_weight": cfg.hidden_weight,
        "student_params": _params(model),
    }
    scratch = Path(tempfile.mkdtemp(prefix="distill-", dir=step.run_dir))
    try:
        hidden_cache = None
        projections = None
        teacher_val_logits = None
        if uses_teacher:
            started = time.perf_counter()
            teacher, teacher_tokenizer = load_classifier(teacher_artifact.path, device=step.device)
            teacher_depth = len(layer_list(teacher)[1])
            facts |= {"teacher_layers": teacher_depth, "teacher_params": _params(teacher)}
            if cfg.augment_copies or cfg.transfer_texts is not None:
                threshold = _threshold(task, teacher_artifact)
                train_split, augment_facts = _with_transfer_set(
                    task, teacher, teacher_tokenizer, tokenizer, cfg, seed, step.device, threshold,
                    step.pipeline.resolve_path, step.progress,
                )  # fmt: skip
                facts |= augment_facts
                train_ds = encode_split(train_split, tokenizer, cfg.max_length, task.multi_label)
            teacher_train, teacher_val = train_ds, val_ds
            same_tokens = all(
                teacher_tokenizer(split.texts, truncation=True, max_length=cfg.max_length)["input_ids"]
                == ds["input_ids"]
                for split, ds in ((train_split, train_ds), (task.validation, val_ds))
            )
            if not same_tokens:  # each model reads the texts through its own tokenizer
                teacher_train = encode_split(train_split, teacher_tokenizer, cfg.max_length, task.multi_label)
                teacher_val = encode_split(task.validation, teacher_tokenizer, cfg.max_length, task.multi_label)
            facts["same_tokenization"] = same_tokens
            layer_map = None
            if cfg.hidden_weight > 0:
                if not same_tokens:
                    raise SlimkitError(
                        f"step {step.name!r}: hidden-state matching needs the student to tokenize like the teacher",
                        fix="set hidden_weight = 0, or choose a student with the teacher's tokenizer",
                    )
                layer_map = hidden_layer_map(student, teacher_depth)
                facts["hidden_layer_map"] = layer_map
            train_logits, hidden_cache = forward_pass(
                teacher, teacher_train, teacher_tokenizer, batch_size=cfg.teacher_batch_size, device=step.device,
                hidden_layers=layer_map, scratch=scratch, progress=step.progress, description="teacher pass",
            )  # fmt: skip
            teacher_val_logits, _ = forward_pass(
                teacher, teacher_val, teacher_tokenizer, batch_size=cfg.teacher_batch_size, device=step.device
            )
            facts["teacher_pass_seconds"] = round(time.perf_counter() - started, 2)
            teacher_width = teacher.config.hidden_size
            del teacher
            gc.collect()
            train_ds = train_ds.add_column(TEACHER_LOGITS, train_logits.tolist())
            if hidden_cache is not None:
                train_ds = train_ds.add_column(EXAMPLE_INDEX, list(range(len(train_ds))))
                student_width = model.config.hidden_size
                if student_width != teacher_width:
                    torch.manual_seed(seed)
                    projections = torch.nn.ModuleList(
                        torch.nn.Linear(student_width, teacher_width) for _ in range(student.depth)
                    ).to(step.device)
                facts["hidden_projection"] = projections is not None
            before_logits, _ = forward_pass(
                model, val_ds, tokenizer, batch_size=cfg.eval_batch_size, device=step.device
            )
            facts["distill_loss_validation_before"] = _soft_loss(before_logits, teacher_val_logits, cfg, task)
            # The lowest value the loss can take (the teacher's own soft targets): 0 for KL, their entropy for BCE.
            facts["distill_loss_validation_floor"] = _soft_loss(teacher_val_logits, teacher_val_logits, cfg, task)

        trainable = freeze_all_but(model, cfg.train_layers)
        best_metric = "micro_f1" if task.multi_label else "accuracy"

        def compute_metrics(prediction: Any) -> dict[str, float]:
            logits, labels = prediction.predictions, prediction.label_ids
            preds = scores.predict(logits, task.multi_label, task.threshold)
            return scores.classification_scores(labels, preds, task.multi_label)

        args = training_arguments(
            cfg, seed=seed, device=step.device, output_dir=scratch / "checkpoints", train_rows=len(train_ds),
            best_metric=best_metric, remove_unused_columns=False,  # the teacher's columns must reach the collator
        )  # fmt: skip
        trainer = DistillTrainer(
            model=model,
            args=args,
            train_dataset=train_ds,
            eval_dataset=val_ds,
            data_collator=DistillCollator(tokenizer, hidden_cache),
            compute_metrics=compute_metrics,
            callbacks=[EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience)],
            alpha=cfg.alpha,
            temperature=cfg.temperature,
            multi_label=task.multi_label,
            hidden_weight=cfg.hidden_weight,
            projections=projections,
        )
        started = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - started
        val_logits = trainer.predict(val_ds).predictions
    finally:
        hidden_cache = None
        shutil.rmtree(scratch, ignore_errors=True)
    if isinstance(val_logits, tuple):
        val_logits = val_logits[0]
    teacher_threshold = threshold = _threshold(task, teacher_artifact)
    if task.multi_label and step.task.tune_threshold:
        threshold = scores.tune_threshold(val_logits, task.validation.labels)
    val_scores = scores.classification_scores(
        task.validation.labels, scores.predict(val_logits, task.multi_label, threshold), task.multi_label
    )
    if teacher_val_logits is not None:
        facts["distill_loss_validation_after"] = _soft_loss(val_logits, teacher_val_logits, cfg, task)
        facts["teacher_validation"] = scores.classification_scores(
            task.validation.labels,
            scores.predict(teacher_val_logits, task.multi_label, teacher_threshold),
            task.multi_label,
        )
    for p in model.parameters():  # a frozen flag must not leak into the saved model's later use
        p.requires_grad = True
    trainer.model.save_pretrained(step.output_dir)
    tokenizer.save_pretrained(step.output_dir)
    task_facts = {"threshold": threshold, "labels": task.labels, "problem": task.problem}
    (step.output_dir / TASK_FILE).write_text(json.dumps(task_facts, indent=2))
    history = trainer.state.log_history
    return step.artifact(
        **facts,
        train_seconds=round(train_seconds, 2),
        epochs_run=round(float(trainer.state.epoch or 0), 3),
        optimizer_steps=trainer.state.global_step,
        trainable_params=trainable,
        threads=threads,
        threshold=threshold,
        validation=val_scores,
        best_checkpoint_metric=best_metric,
        eval_history=[
            {k: v for k, v in e.items() if k.startswith("eval_") or k in ("epoch", "step")}
            for e in history
            if "eval_loss" in e
        ],
        train_history=[
            {k: v for k, v in e.items() if k in ("loss", "hard_loss", "distill_loss", "hidden_loss", "epoch", "step")}
            for e in history
            if "loss" in e
        ],
    )


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
    if cfg.augment_copies:
        mask = shared_mask_token(tokenizer, teacher_tokenizer)
        texts = mask_words(task.train.texts, cfg.augment_copies, cfg.augment_mask_prob, seed, mask)
        facts |= {
            "augment_copies": cfg.augment_copies,
            "augment_rows": len(texts),
            "augment_mask_prob": cfg.augment_mask_prob,
            "augment_masking": "mask token" if mask else "word dropout",
        }
    if cfg.transfer_texts is not None:
        extra, source = load_transfer_texts(cfg.transfer_texts, resolve, seed)
        texts += extra
        facts |= {"transfer_texts_source": source, "transfer_texts_rows": len(extra)}
    labels = task.train.labels
    unlabelled = Split(texts, np.zeros((len(texts), *labels.shape[1:]), dtype=labels.dtype))
    encoded = encode_split(unlabelled, teacher_tokenizer, cfg.max_length, task.multi_label)
    logits, _ = forward_pass(
        teacher, encoded, teacher_tokenizer, batch_size=cfg.teacher_batch_size, device=device, progress=progress,
        description="teacher labels the transfer set",
    )  # fmt: skip
    pseudo = predict(logits, task.multi_label, threshold).astype(labels.dtype)
    return Split(task.train.texts + texts, np.concatenate([labels, pseudo])), facts


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
