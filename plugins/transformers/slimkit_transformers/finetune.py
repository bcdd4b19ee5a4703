"""``transformers.finetune``: fine-tune the classifier with the transformers Trainer.

Full fine-tuning, or only the head and the last N layers. Seeded, early stopping on the
validation slice (carved from train, never the eval split), training time recorded.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from slimkit.artifacts import Artifact
from slimkit.context import StepContext
from slimkit.errors import SlimkitError
from slimkit.spec import MAX_BATCH, MAX_LENGTH, MAX_SEED
from slimkit_transformers.steps import HEAD_NAMES, step_task, write_task_file

if TYPE_CHECKING:
    from slimkit_transformers.tasks import TaskData
# Far above any real run; below them a typo (epochs = 1e308) would train until the machine dies.
MAX_EPOCHS = 1000
MAX_STEPS = 10_000_000


class FinetuneConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(
        default=3.0, gt=0, le=MAX_EPOCHS, description="Maximum training epochs (early stopping may end sooner)."
    )
    learning_rate: float = Field(default=5e-5, gt=0, description="Peak learning rate (linear decay, warm-up).")
    batch_size: int = Field(default=32, ge=1, le=MAX_BATCH, description="Training batch size.")
    eval_batch_size: int = Field(default=64, ge=1, le=MAX_BATCH, description="Batch size on the validation slice.")
    max_length: int = Field(default=128, ge=8, le=MAX_LENGTH, description="Texts are truncated to this many tokens.")
    weight_decay: float = Field(default=0.01, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(default=0.06, ge=0, lt=1, description="Share of steps spent warming up.")
    train_layers: int | None = Field(
        default=None,
        ge=0,
        description="None trains every weight; N trains the head plus the last N transformer layers only.",
    )
    early_stopping_patience: int = Field(
        default=2, ge=1, description="Evaluations without improvement on the validation slice before stopping."
    )
    evals_per_epoch: int = Field(default=1, ge=1, description="Validation evaluations per epoch.")
    max_steps: int | None = Field(
        default=None, ge=1, le=MAX_STEPS, description="Stop after this many optimiser steps (quick runs)."
    )
    seed: int | None = Field(
        default=None, ge=0, le=MAX_SEED, description="Training seed; None uses the pipeline's seed."
    )


def _layers(model: Any) -> list[Any]:
    base = model.base_model
    for path in ("encoder.layer", "layers", "h", "transformer.layer"):
        obj: Any = base
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None:
            return list(obj)
    raise SlimkitError(f"transformers.finetune: cannot find the transformer layers of {type(model).__name__}")


def head_modules(model: Any) -> list[Any]:
    """The classification head (and pooler/final norm, which sit between layers and head)."""
    modules = [getattr(model, n) for n in HEAD_NAMES if getattr(model, n, None) is not None]
    base = model.base_model
    modules += [
        getattr(base, n) for n in ("pooler", "norm", "final_layer_norm", "ln_f") if getattr(base, n, None) is not None
    ]
    return modules


def freeze_all_but(model: Any, train_layers: int | None) -> int:
    """Freeze all but the head and the last ``train_layers`` layers; return trainable params."""
    if train_layers is not None:
        for p in model.parameters():
            p.requires_grad = False
        layers = _layers(model)
        # More layers than the model has trains them all (a negative start would wrap around).
        chosen = layers[max(0, len(layers) - train_layers) :] if train_layers else []
        for module in [*chosen, *head_modules(model)]:
            for p in module.parameters():
                p.requires_grad = True
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def encode_split(split: Any, tokenizer: Any, max_length: int, multi_label: bool) -> Any:
    from datasets import Dataset

    labels = split.labels.tolist()
    columns = {"text": split.texts} | ({"text_pair": split.text_pairs} if split.text_pairs is not None else {})
    ds = Dataset.from_dict(columns | {"labels": labels})

    def tokenize(batch: dict[str, Any]) -> Any:
        # A sentence pair is encoded as the model expects it ([SEP] between, token types).
        return tokenizer(batch["text"], batch.get("text_pair"), truncation=True, max_length=max_length)

    ds = ds.map(tokenize, batched=True, remove_columns=list(columns), desc="tokenizing")
    if multi_label:  # BCE-with-logits wants float targets
        from datasets import Sequence, Value

        ds = ds.cast_column("labels", Sequence(Value("float32")))
    return ds


def training_arguments(
    cfg: Any, *, seed: int, device: str, output_dir: Path, train_rows: int, best_metric: str, **overrides: Any
) -> Any:
    """The Trainer's arguments for a slimkit training step: evaluation and checkpoints ``evals_per_epoch``
    times an epoch, the best checkpoint kept (early stopping), seeded, no reporting integrations.

    ``cfg`` needs FinetuneConfig's training fields (epochs, max_steps, learning_rate, batch_size,
    eval_batch_size, weight_decay, warmup_ratio, evals_per_epoch); other training techniques
    (distillation) reuse it so that their runs compare with fine-tuning like for like.
    """
    from transformers import TrainingArguments

    steps_per_epoch = max(1, -(-train_rows // cfg.batch_size))
    eval_steps = max(1, steps_per_epoch // cfg.evals_per_epoch)
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio of total steps
        eval_strategy="steps",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model=best_metric,
        greater_is_better=True,
        logging_steps=max(1, eval_steps // 4),
        seed=seed,
        data_seed=seed,
        report_to=[],
        use_cpu=device == "cpu",
        dataloader_num_workers=0,
        save_only_model=True,
        **overrides,
    )


def best_metric(task: TaskData) -> str:
    """The validation score that picks the best checkpoint: micro-F1 (multi-label) or accuracy."""
    return "micro_f1" if task.multi_label else "accuracy"


def metrics_function(task: TaskData) -> Callable[[Any], dict[str, float]]:
    """The Trainer's ``compute_metrics`` for ``task``: its scores at the task's threshold."""
    from slimkit_transformers import scores

    def compute_metrics(prediction: Any) -> dict[str, float]:
        logits, labels = prediction.predictions, prediction.label_ids
        preds = scores.predict(logits, task.multi_label, task.threshold)
        return scores.classification_scores(labels, preds, task.multi_label)

    return compute_metrics


def validate(
    step: StepContext[Any], task: TaskData, val_logits: Any, threshold: float
) -> tuple[float, dict[str, float]]:
    """(decision threshold, validation scores) of a trained model: ``threshold`` tuned on the
    validation slice for multi-label tasks whose ``tune_threshold`` is set, kept otherwise."""
    from slimkit_transformers import scores

    if task.multi_label and step.task is not None and step.task.tune_threshold:
        threshold = scores.tune_threshold(val_logits, task.validation.labels)
    predictions = scores.predict(val_logits, task.multi_label, threshold)
    return threshold, scores.classification_scores(task.validation.labels, predictions, task.multi_label)


def save_trained(step: StepContext[Any], model: Any, tokenizer: Any, task: TaskData, threshold: float) -> None:
    """Model, tokenizer and task file (with ``threshold``) into ``step.output_dir``, every weight trainable."""
    for p in model.parameters():  # a frozen flag must not leak into the saved model's later use
        p.requires_grad = True
    model.save_pretrained(step.output_dir)
    tokenizer.save_pretrained(step.output_dir)
    write_task_file(step.output_dir, task, threshold)


def progress_callback(step: StepContext[Any], description: str = "training") -> Any:
    """A Trainer callback that moves slimkit's progress bar (with its ETA) one optimiser step at a
    time: the Trainer's own bars go to the run's log with the rest of the libraries' output."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.bar: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.bar = iter(step.progress(range(state.max_steps), description=description, total=state.max_steps))

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            next(self.bar, None)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            for _ in self.bar or ():  # early stopping ends before max_steps: close the bar
                pass

    return Progress()


def training_facts(trainer: Any, task: TaskData, *, seconds: float, trainable: int, **facts: Any) -> dict[str, Any]:
    """The artifact metadata of a Trainer run on ``task``: time, epochs and steps, trainable
    parameters, the validation evaluations (``eval_history``), ``facts`` (threshold, validation,
    ...), and as ``warnings`` the rows the task's reading left out (the report lists them)."""
    state = trainer.state
    notes = {"warnings": list(task.notes)} if task.notes else {}
    return notes | {
        "train_seconds": round(seconds, 2),
        "epochs_run": round(float(state.epoch or 0), 3),
        "optimizer_steps": state.global_step,
        "trainable_params": trainable,
        **facts,
        "eval_history": [
            {k: v for k, v in e.items() if k.startswith("eval_") or k in ("epoch", "step")}
            for e in state.log_history
            if "eval_loss" in e
        ],
    }


def finetune(step: StepContext[FinetuneConfig]) -> Artifact:
    """``transformers.finetune``: train the input classifier on the task's train split, with early
    stopping and the threshold tuned on the validation slice."""
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, Trainer

    from slimkit_transformers.models import load_classifier, set_threads

    cfg = step.config
    task = step_task(step)
    seed = step.seed if cfg.seed is None else cfg.seed
    threads = set_threads(step.pipeline.measure.threads)
    model, tokenizer = load_classifier(step.input.path, device=step.device)
    trainable = freeze_all_but(model, cfg.train_layers)
    train_ds = encode_split(task.train, tokenizer, cfg.max_length, task.multi_label)
    val_ds = encode_split(task.validation, tokenizer, cfg.max_length, task.multi_label)
    metric = best_metric(task)
    # Checkpoints (for early stopping) live in a temporary folder, removed even when training fails.
    with tempfile.TemporaryDirectory(prefix="finetune-", dir=step.run_dir) as checkpoints:
        args = training_arguments(
            cfg, seed=seed, device=step.device, output_dir=Path(checkpoints), train_rows=len(train_ds),
            best_metric=metric,
        )  # fmt: skip
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=train_ds,
            eval_dataset=val_ds,
            data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=metrics_function(task),
            callbacks=[
                EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience),
                progress_callback(step, f"{step.name}: training"),
            ],
        )
        started = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - started
        val_logits = trainer.predict(val_ds).predictions
    threshold, val_scores = validate(step, task, val_logits, task.threshold)
    save_trained(step, trainer.model, tokenizer, task, threshold)
    facts = training_facts(
        trainer, task, seconds=train_seconds, trainable=trainable, threads=threads, threshold=threshold,
        validation=val_scores, best_checkpoint_metric=metric,
    )  # fmt: skip
    return step.artifact(**facts)
