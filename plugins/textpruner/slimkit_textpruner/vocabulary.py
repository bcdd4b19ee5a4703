"""``textpruner.vocabulary``: keep only the tokens that the task's training texts use.

TextPruner's ``VocabularyPruner`` counts the tokens of the texts, keeps those seen ``min_count``
times plus the special tokens, and replaces the word embeddings with the kept rows. The tokenizer
is rebuilt from the kept tokens (pruned_tokenizer.py), the model saved with ``save_pretrained``:
the result is a normal HF folder. Eval texts are never used to choose tokens; their tokens that
fall outside the kept vocabulary are counted, because those words reach the model differently:
split into smaller kept pieces, or as [UNK] when no kept pieces spell them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slimkit.artifacts import Artifact, disk_size
from slimkit.context import StepContext
from slimkit.errors import SlimkitError
from slimkit_textpruner.common import import_textpruner, param_count, scratch_dir, textpruner_version
from slimkit_textpruner.config import VocabularyConfig
from slimkit_textpruner.pruned_tokenizer import check_remapped, wordpiece_problem, write_pruned_tokenizer
from slimkit_transformers.steps import carry_task_file, step_task

NAME = "textpruner.vocabulary"
CONFIG_TOKEN_IDS = ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id")


def gather_texts(cfg: VocabularyConfig, task: Any, resolve: Any) -> tuple[list[str], dict[str, Any]]:
    """The texts whose tokens are kept, and a record of where they came from. A sentence-pair
    task's splits give both texts of each row (``used["splits"]`` counts texts, not rows)."""
    texts: list[str] = []
    used: dict[str, Any] = {"splits": {}, "texts": len(cfg.texts), "text_files": {}}
    if task is not None:
        for split in cfg.splits:
            part = _split_texts(getattr(task, split))
            texts += part
            used["splits"][split] = len(part)
    texts += cfg.texts
    for name in cfg.text_files:
        path = resolve(name)
        if not Path(path).is_file():
            raise SlimkitError(f"{NAME}: config.text_files: no such file {path}")
        lines = [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
        texts += lines
        used["text_files"][str(name)] = len(lines)
    used["total"] = len(texts)
    return texts, used


def _split_texts(split: Any) -> list[str]:
    """Every text of a split: the first texts, then a sentence-pair task's second texts."""
    texts: list[str] = split.texts + (split.text_pairs or [])
    return texts


def eval_coverage(old: Any, new: Any, kept: list[int], texts: list[str]) -> dict[str, Any]:
    """How much of the eval texts the kept vocabulary covers (tokens of the original tokenizer)."""
    if not texts:
        return {"eval_texts": 0}
    kept_set = set(kept)
    before = old(texts, add_special_tokens=False)["input_ids"]
    after = new(texts, add_special_tokens=False)["input_ids"]
    total = sum(len(ids) for ids in before)
    outside = sum(1 for ids in before for i in ids if i not in kept_set)
    return {
        "eval_texts": len(texts),
        "eval_tokens": total,
        "eval_tokens_outside_vocab": outside,
        "eval_tokens_outside_share": outside / total if total else 0.0,
        "eval_texts_affected": sum(1 for ids in before if any(i not in kept_set for i in ids)),
        # WordPiece splits a word with a pruned piece into smaller kept pieces; only a word that no
        # kept pieces spell becomes [UNK].
        "eval_unk_tokens_before": sum(ids.count(old.unk_token_id) for ids in before),
        "eval_unk_tokens_after": sum(ids.count(new.unk_token_id) for ids in after),
    }


def _check_prunable(step: StepContext[VocabularyConfig], model: Any, tokenizer: Any) -> None:
    """Refuse a model TextPruner or the tokenizer rebuild cannot handle, and unknown ``config.tokens``."""
    from textpruner.model_map import MODEL_MAP

    model_type = getattr(model.config, "model_type", None)
    problem = wordpiece_problem(tokenizer)
    if model_type not in MODEL_MAP:
        problem = f"TextPruner does not know model type {model_type!r} (it knows {', '.join(sorted(MODEL_MAP))})"
    if problem:
        raise SlimkitError(f"step {step.name!r}: {NAME} cannot prune this model: {problem}")
    vocab = tokenizer.get_vocab()
    unknown = [t for t in step.config.tokens if t not in vocab]
    if unknown:
        raise SlimkitError(f"step {step.name!r}: config.tokens: not in the vocabulary: {', '.join(unknown[:10])}")


def _remap_config(config: Any, kept: list[int]) -> None:
    """The model config's vocabulary size and special-token ids, for the kept tokens (None when pruned)."""
    remap = {old: new for new, old in enumerate(kept)}
    config.vocab_size = len(kept)
    for attr in CONFIG_TOKEN_IDS:
        value = getattr(config, attr, None)
        if isinstance(value, int):
            setattr(config, attr, remap.get(value))


def prune_vocabulary(step: StepContext[VocabularyConfig]) -> Artifact:
    """``textpruner.vocabulary``: prune the word embeddings and the tokenizer to the tokens of the texts."""
    from slimkit_transformers.models import load_classifier
    from slimkit_transformers.predictors import head_checksum

    cfg = step.config
    task = step_task(step) if step.task is not None else None  # config.texts alone may choose the tokens
    texts, used = gather_texts(cfg, task, step.pipeline.resolve_path)
    if not texts:
        raise SlimkitError(
            f"step {step.name!r}: {NAME} has no texts to choose tokens from",
            fix="give the pipeline a task, or set config.texts / config.text_files",
        )
    textpruner = import_textpruner()
    model, tokenizer = load_classifier(step.input.path)
    _check_prunable(step, model, tokenizer)
    vocab_before = model.get_input_embeddings().num_embeddings
    params_before = param_count(model)
    head_before = head_checksum(model)
    with scratch_dir(step) as scratch:
        pruner = textpruner.VocabularyPruner(
            model,
            tokenizer,
            vocabulary_pruning_config=textpruner.VocabularyPruningConfig(min_count=cfg.min_count, prune_lm_head=False),
            general_config=textpruner.GeneralConfig(use_device="cpu", output_dir=str(scratch)),
        )
        pruner.prune(dataiter=texts, additional_tokens=cfg.tokens or None, save_model=False)
    kept = [int(i) for i in pruner.pruned_token_ids]
    _remap_config(model.config, kept)
    if head_checksum(model) != head_before:
        raise SlimkitError(f"step {step.name!r}: {NAME} changed the classification head")

    pruned_tokenizer = write_pruned_tokenizer(tokenizer, kept, step.output_dir, pruner.tokenizer_helper.save_vocab)
    model.save_pretrained(step.output_dir)
    has_task_file = carry_task_file(step)
    eval_texts = _split_texts(task.eval) if task is not None else []
    sample = texts[: cfg.check_texts] + eval_texts[: cfg.check_texts]
    check = check_remapped(tokenizer, pruned_tokenizer, kept, sample)
    coverage = eval_coverage(tokenizer, pruned_tokenizer, kept, eval_texts)
    step.log(
        f"vocabulary {vocab_before} -> {len(kept)} tokens; "
        f"{coverage.get('eval_tokens_outside_vocab', 0)} eval tokens outside it"
    )
    return step.artifact(
        textpruner_version=textpruner_version(),
        vocab_size_before=vocab_before,
        vocab_size_after=len(kept),
        kept_token_share=len(kept) / vocab_before,
        texts_used=used,
        min_count=cfg.min_count,
        extra_tokens=len(cfg.tokens),
        params_before=params_before,
        params_after=param_count(model),
        embedding_params_after=model.get_input_embeddings().weight.numel(),
        size_bytes_before=disk_size(step.input.path),
        size_bytes_after=disk_size(step.output_dir),
        head_checksum=head_before,
        tokenizer_check=check,
        task_file_copied=has_task_file,
        **coverage,
    )
