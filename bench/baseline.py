"""Baseline benchmark (issue 3): MiniLM-L6 fine-tuned on SemEval-2018 E-c, and a protocol check.

    .venv/bin/python bench/baseline.py [--pipeline examples/minilm-semeval.toml]

1. Runs the pipeline (fine-tuning is reused from an earlier run of the same pipeline) and prints
   micro-F1, macro-F1, Jaccard on dev and latency at batch 1 and 32, seq 128.
2. Measures the fine-tuned model twice in one session, as two artifacts: with a sound protocol
   the two medians agree within 5%; the script exits 1 when they do not.
Writes bench/results/baseline.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _common import table, write

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", default=str(REPO / "examples" / "minilm-semeval.toml"))
    parser.add_argument("--output", help="run directory (default: the pipeline's, so its steps are reused)")
    args = parser.parse_args()

    from slimkit.context import MeasureContext
    from slimkit.plugins import build_plugins
    from slimkit.runner import run_pipeline
    from slimkit.spec import load_pipeline

    plugins = build_plugins()
    pipeline = load_pipeline(args.pipeline)
    if args.output:
        pipeline = pipeline.model_copy(update={"output_dir": Path(args.output).resolve()})
    result = run_pipeline(pipeline, plugins=plugins, show_progress=True)
    if result.exit_code != 0:
        sys.exit(f"the pipeline failed: see {result.results_path}")
    tuned = next(s.artifact for s in result.steps if s.name == pipeline.baseline and s.artifact)
    metrics = {m.name: m for m in result.metrics[tuned.key]}

    # The same model as two artifacts: any gap between their medians is the protocol's noise.
    twin = tuned.with_updates(key=tuned.key + "-twin", label="finetune (again)")
    settings = pipeline.measure.model_copy(update={"accuracy": False, "dynamic_length": False})
    context = MeasureContext(
        baseline=tuned, pipeline=pipeline, settings=settings, hardware=result.plan.hardware,
        device=result.plan.device, run_dir=result.run_dir, plugins=plugins,
    )  # fmt: skip
    twice, errors = plugins.measure([tuned, twin], context)
    if errors:
        sys.exit(f"measurement failed: {errors}")

    rows, agreement = [], {}
    for name in ("micro_f1", "macro_f1", "jaccard", "exact_match"):
        rows.append([name, f"{metrics[name].value * 100:.2f}", "", ""])
    for shape in ("b1.s128", "b32.s128"):
        m = metrics[f"latency_ms.{shape}"]
        a = next(x for x in twice[tuned.key] if x.name == f"latency_ms.{shape}")
        b = next(x for x in twice[twin.key] if x.name == f"latency_ms.{shape}")
        gap = abs(a.value - b.value) / min(a.value, b.value) * 100  # type: ignore[operator]
        agreement[shape] = {"first_ms": a.value, "second_ms": b.value, "gap_percent": gap, "within_5_percent": gap < 5}
        rows.append([f"latency ms {shape}", f"{m.value:.2f} (p90 {m.spread['p90']:.2f})",
                     f"{a.value:.2f} vs {b.value:.2f}", f"{gap:.1f}%"])  # fmt: skip
    print(table(["figure", "value", "same model twice", "gap"], rows))
    threads = metrics["latency_ms.b1.s128"].details["threads"]
    train, threshold = tuned.metadata.get("train_seconds"), tuned.metadata.get("threshold")
    print(f"\nthreads {threads}; train time {train} s; threshold {threshold}")
    out = {
        "accuracy": {n: metrics[n].value for n in ("micro_f1", "macro_f1", "jaccard", "exact_match")},
        "latency": {s: metrics[f"latency_ms.{s}"].model_dump() for s in ("b1.s128", "b32.s128")},
        "same_model_twice": agreement,
        "train": {k: tuned.metadata.get(k) for k in ("train_seconds", "epochs_run", "threshold", "validation")},
        "run_dir": str(result.run_dir),
    }
    print(f"written: {write('baseline', out)}")
    drifted = [s for s, a in agreement.items() if not a["within_5_percent"]]
    if drifted:
        # The protocol is the ruler every other benchmark uses: a ruler that disagrees with itself fails.
        sys.exit(f"the same model measured twice differs by 5% or more at {', '.join(drifted)}: the protocol is noisy")


if __name__ == "__main__":
    main()
