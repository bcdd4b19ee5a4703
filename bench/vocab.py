"""Vocabulary pruning benchmark (issue 8): MiniLM-L6 fine-tuned on SemEval-2018 E-c, pruned by TextPruner.

    .venv/bin/python bench/vocab.py [--quick] [--min-count N] [--pipeline examples/minilm-semeval-vocab.toml]

Runs the pipeline finetune -> textpruner.vocabulary with baseline = "finetune", so the fine-tuned
and the pruned model are measured in one session (the fine-tuned model comes from the shared store
when minilm-semeval.toml ran before; otherwise it is trained first, about 15 minutes). Prints size
on disk, vocabulary size, latency and micro-F1 / Jaccard / macro-F1 with their deltas, and the
eval tokens that fall outside the kept vocabulary. Target: at least 1.5x smaller, at most 0.3
points of micro-F1 and Jaccard lost. Writes bench/results/vocab.json (vocab-quick.json with --quick).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import _common
from _common import table, write

REPO = Path(__file__).resolve().parents[1]
STEP = "vocab"
ACCURACY = ("micro_f1", "jaccard", "macro_f1")
SHAPES = ("b1.s128", "b32.s128", "b1.dyn", "b32.dyn")
TARGET_RATIO, TARGET_LOSS = 1.5, 0.3


def build(args: argparse.Namespace) -> Any:
    from slimkit.spec import load_pipeline, pipeline_from_dict

    pipeline = load_pipeline(args.pipeline)
    data = pipeline.model_dump(mode="json", exclude_unset=True)
    step = next(s for s in data["steps"] if s.get("name") == STEP)
    if args.min_count is not None:
        step.setdefault("config", {})["min_count"] = args.min_count
    if args.quick:
        data["name"] = f"{data['name']}-quick"
        data["task"]["max_eval_examples"] = 100
        data["measure"] |= {"warmup": 1, "repeats": 3, "rounds": 1}
        # Fewer texts checked for eval coverage: the quick run's step stays apart from the full one.
        step.setdefault("config", {})["check_texts"] = 64
    data["measure"] = data.get("measure", {}) | {"sessions": args.sessions, "session_gap_s": args.session_gap}
    data.pop("output_dir", None)
    pipeline = pipeline_from_dict(data, base_dir=Path(args.pipeline).resolve().parent)
    if args.output:
        pipeline = pipeline.model_copy(update={"output_dir": Path(args.output).resolve()})
    return pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", default=str(REPO / "examples" / "minilm-semeval-vocab.toml"))
    parser.add_argument("--quick", action="store_true", help="100 eval rows, 3 timed calls per block, one round")
    parser.add_argument("--min-count", type=int, help="override the vocab step's min_count")
    parser.add_argument("--output", help="run directory (default: runs/<pipeline name>)")
    _common.session_args(parser)
    args = parser.parse_args()

    from slimkit.plugins import build_plugins
    from slimkit.runner import run_pipeline

    pipeline = build(args)
    result = run_pipeline(pipeline, plugins=build_plugins(), show_progress=True)
    if result.exit_code != 0:
        sys.exit(f"the pipeline failed: see {result.results_path}")
    base = next(s.artifact for s in result.steps if s.name == pipeline.baseline and s.artifact)
    pruned = next(s.artifact for s in result.steps if s.name == STEP and s.artifact)
    m = {a.key: {x.name: x for x in result.metrics[a.key]} for a in (base, pruned)}
    mb, mp = m[base.key], m[pruned.key]
    meta = pruned.metadata

    def latency(metrics: dict[str, Any], shape: str) -> str:
        x = metrics.get(f"latency_ms.{shape}")
        return f"{x.value:.2f} (p90 {x.spread['p90']:.2f})" if x else "-"

    shapes = [s for s in SHAPES if f"latency_ms.{s}" in mb]
    header = ["model", "size MB", "vocabulary", *[f"ms {s}" for s in shapes], *ACCURACY, "agreement"]
    rows = []
    for label, metrics, vocab in (
        ("finetune (baseline)", mb, meta["vocab_size_before"]),
        (f"vocab (min_count {meta['min_count']})", mp, meta["vocab_size_after"]),
    ):
        rows.append(
            [label, f"{metrics['size_bytes'].value / 1e6:.2f}", vocab, *[latency(metrics, s) for s in shapes],
             *[f"{metrics[n].value * 100:.2f}" for n in ACCURACY], f"{metrics['agreement'].value * 100:.2f}"]
        )  # fmt: skip
    ratio = mb["size_bytes"].value / mp["size_bytes"].value
    deltas = {n: (mp[n].value - mb[n].value) * 100 for n in ACCURACY}
    speed = {s: _common.speedup(mp[f"latency_ms.{s}"], mb[f"latency_ms.{s}"]) for s in shapes}
    rows.append(
        ["ratio / delta", f"{ratio:.2f}x smaller", f"{meta['kept_token_share'] * 100:.1f}% kept",
         *[f"{speed[s]:.2f}x" for s in shapes], *[f"{deltas[n]:+.2f}" for n in ACCURACY], ""]
    )  # fmt: skip
    print(table(header, rows))
    threads = mb["latency_ms.b1.s128"].details["threads"] if "latency_ms.b1.s128" in mb else None
    print(
        f"\neval split: {meta['eval_texts']} texts, {meta['eval_tokens']} tokens; outside the kept vocabulary: "
        f"{meta['eval_tokens_outside_vocab']} tokens ({meta['eval_tokens_outside_share'] * 100:.2f}%) in "
        f"{meta['eval_texts_affected']} texts; [UNK] tokens {meta['eval_unk_tokens_before']} -> "
        f"{meta['eval_unk_tokens_after']}"
    )
    print(f"texts used: {meta['texts_used']}; threads {threads}")
    met = ratio >= TARGET_RATIO and all(deltas[n] >= -TARGET_LOSS for n in ("micro_f1", "jaccard"))
    print(f"target (>= {TARGET_RATIO}x smaller, <= {TARGET_LOSS} points lost): {'met' if met else 'NOT met'}")
    out = {
        "quick": args.quick,
        "size_ratio": ratio,
        "accuracy_delta_points": deltas,
        "latency_ratio": speed,
        "target_met": met,
        "baseline": {n: x.model_dump() for n, x in mb.items()},
        "pruned": {n: x.model_dump() for n, x in mp.items()},
        "pruned_metadata": meta,
        "run_dir": str(result.run_dir),
    }
    print(f"written: {write('vocab-quick' if args.quick else 'vocab', out)}")


if __name__ == "__main__":
    main()
