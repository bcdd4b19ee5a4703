"""``textpruner.transformer``: remove attention heads and FFN neurons (TextPruner's TransformerPruner).

Importance of each head and neuron is scored by TextPruner from gradients of the task loss (or of
a KL loss against the model's own logits, ``use_logits``) on training texts, never eval texts. The
pruned model keeps the same number of heads and neurons in every layer (TextPruner's even
masking), which is what ``save_pretrained`` can store: the smaller ``intermediate_size`` and the
``pruned_heads`` go into the config, and transformers 4 rebuilds the shapes from them on load.

Heads are removed with the model's ``prune_heads``, which transformers 5 removed; the technique
declares ``transformers<5`` so that the planner refuses it there.
"""

from __future__ import annotations

from typing import Any

from slimkit.artifacts import Artifact, disk_size
from slimkit.context import StepContext
from slimkit.errors import SlimkitError
from slimkit_textpruner.common import copy_task_file, import_textpruner, param_count, scratch_dir, textpruner_version
from slimkit_textpruner.config import TransformerConfig

NAME = "textpruner.transformer"


def _batches(task: Any, tokenizer: Any, cfg: TransformerConfig, device: str) -> list[dict[str, Any]]:
    """Labelled training batches for TextPruner's importance scores (the loss comes from the labels)."""
    import torch

    split = task.train.head(cfg.max_examples)
    batches = []
    for start in range(0, len(split), cfg.batch_size):
        texts = split.texts[start : start + cfg.batch_size]
        batch = dict(tokenizer(texts, padding=True, truncation=True, max_length=cfg.max_length, return_tensors="pt"))
        labels = split.labels[start : start + cfg.batch_size]
        batch["labels"] = torch.tensor(labels, dtype=torch.float32 if task.multi_label else torch.long)
        batches.append({k: v.to(device) for k, v in batch.items()})
    return batches


def prune_transformer(step: StepContext) -> Artifact:
    from slimkit_transformers.models import load_classifier
    from slimkit_transformers.predictors import head_checksum
    from slimkit_transformers.tasks import load_task

    cfg: TransformerConfig = step.config  # type: ignore[assignment]
    if step.task is None:
        raise SlimkitError(f"step {step.name!r}: {NAME} needs the pipeline's 'task' to score heads and neurons")
    textpruner = import_textpruner()
    from textpruner.model_map import MODEL_MAP

    task = load_task(step.task, step.pipeline.resolve_path)
    model, tokenizer = load_classifier(step.input.path, device=step.device)
    config = model.config
    if config.model_type not in MODEL_MAP:
        raise SlimkitError(f"step {step.name!r}: TextPruner does not know model type {config.model_type!r}")
    if not hasattr(model.base_model, "prune_heads"):
        raise SlimkitError(
            f"step {step.name!r}: {NAME} needs the model's prune_heads, which this transformers version lacks",
            fix="run it with transformers<5",
        )
    heads, ffn = config.num_attention_heads, config.intermediate_size
    target_heads = cfg.target_num_of_heads or heads
    target_ffn = cfg.target_ffn_size or ffn
    if target_heads > heads or target_ffn > ffn:
        raise SlimkitError(
            f"step {step.name!r}: the model has {heads} heads and {ffn} FFN neurons per layer; "
            f"cannot keep {target_heads} and {target_ffn}"
        )
    params_before = param_count(model)
    head_before = head_checksum(model)
    batches = _batches(task, tokenizer, cfg, step.device)
    with scratch_dir(step) as scratch:
        pruner = textpruner.TransformerPruner(
            model,
            transformer_pruning_config=textpruner.TransformerPruningConfig(
                target_ffn_size=target_ffn,
                target_num_of_heads=target_heads,
                pruning_method="iterative",
                n_iters=cfg.n_iters,
                pruning_order=cfg.pruning_order,
                use_logits=cfg.use_logits,
                head_even_masking=True,
                ffn_even_masking=True,
            ),
            general_config=textpruner.GeneralConfig(use_device=step.device, output_dir=str(scratch)),
        )
        pruner.prune(dataloader=batches, keep_shape=False, save_model=False)
    # What TextPruner's save_model would write into the config, for save_pretrained instead.
    ffn_sizes = sorted(set(pruner.ffn_mask.to(int).sum(-1).tolist()))
    head_counts = pruner.head_mask.to(int).sum(-1).tolist()
    config.intermediate_size = int(ffn_sizes[0])
    model.zero_grad(set_to_none=True)
    if head_checksum(model) != head_before:
        raise SlimkitError(f"step {step.name!r}: {NAME} changed the classification head")
    model.save_pretrained(step.output_dir)
    tokenizer.save_pretrained(step.output_dir)
    has_task_file = copy_task_file(step)
    return step.artifact(
        textpruner_version=textpruner_version(),
        heads_per_layer_before=heads,
        heads_per_layer_after=head_counts,
        ffn_size_before=ffn,
        ffn_size_after=ffn_sizes,
        pruned_heads={int(k): sorted(v) for k, v in (config.pruned_heads or {}).items()},
        importance_examples=sum(len(b["input_ids"]) for b in batches),
        importance_loss="kl_to_own_logits" if cfg.use_logits else "task_loss",
        params_before=params_before,
        params_after=param_count(model),
        size_bytes_before=disk_size(step.input.path),
        size_bytes_after=disk_size(step.output_dir),
        head_checksum=head_before,
        task_file_copied=has_task_file,
        fine_tuned=False,
    )
