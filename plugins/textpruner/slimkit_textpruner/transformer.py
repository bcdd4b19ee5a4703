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

from slimkit.artifacts import Artifact, disk_size
from slimkit.context import StepContext
from slimkit.errors import SlimkitError
from slimkit_textpruner.common import import_textpruner, param_count, scratch_dir, textpruner_version
from slimkit_textpruner.config import TransformerConfig
from slimkit_transformers.steps import calibration_batches, carry_task_file

NAME = "textpruner.transformer"


def _targets(step: StepContext[TransformerConfig], heads: int, ffn: int) -> tuple[int, int]:
    """(heads, FFN neurons) kept per layer; the model's own count where the config sets none."""
    target_heads = step.config.target_num_of_heads or heads
    target_ffn = step.config.target_ffn_size or ffn
    if target_heads > heads or target_ffn > ffn:
        raise SlimkitError(
            f"step {step.name!r}: the model has {heads} heads and {ffn} FFN neurons per layer; "
            f"cannot keep {target_heads} and {target_ffn}"
        )
    return target_heads, target_ffn


def prune_transformer(step: StepContext[TransformerConfig]) -> Artifact:
    """``textpruner.transformer``: remove the least important heads and FFN neurons, the same number per layer."""
    from slimkit_transformers.models import load_classifier
    from slimkit_transformers.predictors import head_checksum

    cfg = step.config
    textpruner = import_textpruner()
    from textpruner.model_map import MODEL_MAP

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
    target_heads, target_ffn = _targets(step, heads, ffn)
    params_before = param_count(model)
    head_before = head_checksum(model)
    # Labelled: TextPruner's importance scores come from the task loss (or KL to the own logits).
    batches = calibration_batches(
        step, tokenizer, examples=cfg.calibration_examples, batch_size=cfg.batch_size, max_length=cfg.max_length
    )
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
    has_task_file = carry_task_file(step)
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
