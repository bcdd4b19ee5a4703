"""Helpers shared by the techniques: the head, the task file, calibration batches, saving."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimkit.errors import SlimkitError

if TYPE_CHECKING:
    from slimkit.context import StepContext

HEAD_NAMES = ("classifier", "score", "pre_classifier")
POOLER_NAMES = ("pooler",)


def head_module_names(model: Any) -> list[str]:
    """Dotted names of the classification head and the pooler that feeds it."""
    names = [n for n in HEAD_NAMES if getattr(model, n, None) is not None]
    prefix = getattr(model, "base_model_prefix", "")
    base = getattr(model, prefix, None) if prefix else None
    if base is not None:
        names += [f"{prefix}.{n}" for n in POOLER_NAMES if getattr(base, n, None) is not None]
    return names


def in_head(name: str, heads: list[str]) -> bool:
    return any(name == h or name.startswith(h + ".") for h in heads)


def head_state(model: Any) -> dict[str, Any]:
    """Copies of the head's tensors, to check at the end of a step that it is intact."""
    heads = head_module_names(model)
    return {k: v.detach().clone() for k, v in model.state_dict().items() if in_head(k, heads)}


def check_head(model: Any, before: dict[str, Any], step: StepContext) -> None:
    import torch

    after = {k: v for k, v in model.state_dict().items() if k in before}
    changed = [k for k, v in before.items() if k not in after or not torch.equal(v, after[k].to(v.dtype))]
    if changed:
        raise SlimkitError(f"step {step.name!r}: the classification head changed ({', '.join(changed)})")


def copy_task_file(source: Path, target: Path) -> None:
    """The fine-tuned decision threshold travels with the model."""
    from slimkit_transformers.finetune import TASK_FILE

    if (source / TASK_FILE).is_file():
        shutil.copy(source / TASK_FILE, target / TASK_FILE)


def save_transformers(model: Any, tokenizer: Any, step: StepContext) -> None:
    model.save_pretrained(step.output_dir)
    tokenizer.save_pretrained(step.output_dir)
    copy_task_file(step.input.path, step.output_dir)


def count_params(model: Any) -> tuple[int, int]:
    """(parameters, non-zero parameters)."""
    import torch

    total = nonzero = 0
    for p in model.parameters():
        total += p.numel()
        nonzero += int(torch.count_nonzero(p).item())
    return total, nonzero


def calibration_batches(
    step: StepContext, tokenizer: Any, *, batches: int, batch_size: int, max_length: int
) -> list[dict[str, Any]]:
    """Seeded batches of the task's training texts, tokenized, with their labels."""
    import torch

    from slimkit_transformers.tasks import load_task

    if step.task is None:
        raise SlimkitError(f"step {step.name!r}: {step.technique.name} needs the pipeline's 'task' for calibration")
    task = load_task(step.task, step.pipeline.resolve_path)
    count = min(len(task.train), batches * batch_size)
    chosen = sorted(step.rng().sample(range(len(task.train)), count))
    out = []
    for i in range(0, count, batch_size):
        rows = chosen[i : i + batch_size]
        encoded = dict(
            tokenizer(
                [task.train.texts[j] for j in rows],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(step.device)
        )
        labels = torch.as_tensor(task.train.labels[rows])
        encoded["labels"] = (labels.float() if task.multi_label else labels.long()).to(step.device)
        out.append(encoded)
    return out
