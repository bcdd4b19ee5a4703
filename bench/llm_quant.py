"""LLM weight quantization benchmark (issue 7): SmolLM2-135M fine-tuned as a 7-class GoEmotions-Ekman
classifier (examples/smollm2-ekman.toml), quantized six ways, all measured in one session.

    .venv/bin/python bench/llm_quant.py [--quick] [--eval-rows N] [--no-gptq] [--build-only]

1. Finds the fine-tuned baseline in runs/smollm2-ekman/results.json, or runs
   examples/smollm2-ekman.toml first (measurement off) to make it. With --quick and no baseline
   yet, a 10-step fine-tune on 200 texts stands in (figures then say nothing about accuracy).
2. Runs one pipeline per candidate from that model (measurement off):
   "bf16" torch.half; "torch-int8" torch.dynamic-int8 (legacy backend); "bnb-int8" bnb.int8; "bnb-nf4" bnb.4bit
   (nf4, double quantization, bf16 compute); "gptq-4bit" gptq.quantize (4 bits, group 64,
   calibration packed from the training texts). GPTQModel runs with GPTQMODEL_CPU_WORKERS=2.
   "onnx-int8" onnx.export then onnx.quantize-dynamic (per channel); reported and skipped if it fails.
3. Measures the baseline and every candidate in one measure() call (blocks rotated round-robin):
   accuracy and macro-F1 on the dev split (first --eval-rows rows), latency at batch 1 and 8 with
   texts padded to 64 tokens, size on disk.
4. Prints the table and the issue's targets: every 4-bit variant at least 3x smaller than fp32 on
   disk and within 1.5 points of accuracy.
Writes bench/results/llm_quant.json (llm_quant-quick.json with --quick).
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

import _common

HERE = Path(__file__).resolve().parent

REPO = HERE.parent
EXAMPLE = REPO / "examples" / "smollm2-ekman.toml"
SIZE_TARGET, ACCURACY_GAP_POINTS = 3.0, 1.5
SHAPES = ("b1.s64", "b8.s64")
CANDIDATES: dict[str, dict[str, Any]] = {
    "bf16": {"technique": "torch.half", "config": {"dtype": "bfloat16"}},
    # The legacy backend: torchao's (the default) compiles per input shape, minutes for 30 layers here.
    "torch-int8": {"technique": "torch.dynamic-int8", "config": {"backend": "torch-ao-legacy"}},
    "bnb-int8": {"technique": "bnb.int8"},
    "bnb-nf4": {"technique": "bnb.4bit", "config": {"quant_type": "nf4", "double_quant": True}},
    "gptq-4bit": {"technique": "gptq.quantize", "config": {"bits": 4, "group_size": 64}},
    # Two steps: TorchScript export (eager attention), then ORT dynamic int8, per channel.
    "onnx-int8": [
        {"name": "export", "technique": "onnx.export", "config": {"attn_implementation": "eager"}},
        {"name": "int8", "technique": "onnx.quantize-dynamic", "config": {"per_channel": True}},
    ],
}
# Candidates whose failure is reported and skipped instead of stopping the benchmark.
OPTIONAL = ("onnx-int8",)
FOUR_BIT = ("bnb-nf4", "gptq-4bit")


def _baseline(plugins: Any, quick: bool) -> Path:
    """The fine-tuned classifier folder: from the example's last run, else trained now."""
    from slimkit.results import RunResults, load_results
    from slimkit.runner import run_pipeline
    from slimkit.spec import pipeline_from_dict

    results = REPO / "runs" / "smollm2-ekman" / "results.json"
    if results.is_file() and isinstance(earlier := load_results(results), RunResults):
        step = earlier.step("finetune")
        if step is not None and step.status in ("done", "reused") and step.artifact is not None:
            model = earlier.resolve(step.artifact.path)  # relative to the run folder, or under $SLIMKIT_CACHE
            if model.is_dir():
                return model
    data = tomllib.loads(EXAMPLE.read_text()) | {"measure": {"enabled": False}}
    if quick:
        data |= {"name": "bench-llm-quant-quick-finetune", "store_dir": str(REPO / "runs" / "bench-llm-quant-quick")}
        data["task"] |= {"max_train_examples": 200, "validation_fraction": 0.01}  # the slice is cut from all rows
        data["steps"][0]["config"] |= {"max_steps": 10, "evals_per_epoch": 1}
    pipeline = pipeline_from_dict(data, base_dir=EXAMPLE.parent)
    result = run_pipeline(pipeline, plugins=plugins, show_progress=True)
    if result.exit_code != 0:
        sys.exit(f"baseline fine-tune failed: {[s.error for s in result.steps if s.error]}")
    return result.steps[0].artifact.path


def _pipelines(model: Path, quick: bool, eval_rows: int | None, gptq: bool) -> dict[str, Any]:
    from slimkit.spec import pipeline_from_dict

    example = tomllib.loads(EXAMPLE.read_text())
    task = example["task"] | ({"max_eval_examples": eval_rows} if eval_rows else {})
    measure = {"batch_sizes": [1, 8], "sequence_lengths": [64], "dynamic_length": False, "enabled": False}
    measure |= {"warmup": 1, "repeats": 3, "rounds": 1} if quick else {"warmup": 3, "repeats": 10, "rounds": 2}
    runs = REPO / "runs" / ("bench-llm-quant-quick" if quick else "bench-llm-quant")
    pipelines = {}
    for name, step in CANDIDATES.items():
        if name.startswith("gptq") and not gptq:
            continue
        if name.startswith("gptq") and quick:
            step = step | {"config": step["config"] | {"calibration_examples": 64}}  # about 16 sequences
        steps = step if isinstance(step, list) else [step | {"name": name}]
        pipelines[name] = pipeline_from_dict(
            {
                "name": f"llm-quant-{name}",
                "model": str(model),
                "task": task,
                "steps": steps,
                "measure": measure,
                "output_dir": str(runs / name),
                "store_dir": str(runs / "store"),
            },
            base_dir=EXAMPLE.parent,
        )
    return pipelines


def _value(metrics: dict[str, Any], name: str) -> float | None:
    m = metrics.get(name)
    return None if m is None or m.value is None else float(m.value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke check: 100 eval rows, few repeats")
    parser.add_argument("--eval-rows", type=int, default=None, help="first N dev rows (default: all; quick: 100)")
    parser.add_argument("--no-gptq", action="store_true", help="skip GPTQ (its calibration takes minutes)")
    parser.add_argument(
        "--build-only", action="store_true", help="build the candidates and stop (measure later, on a quiet machine)"
    )
    _common.session_args(parser)
    args = parser.parse_args()
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2")  # GPTQModel refuses fewer than 2 workers

    from slimkit.context import MeasureContext
    from slimkit.plugins import build_plugins
    from slimkit.runner import run_pipeline

    plugins = build_plugins()
    model = _baseline(plugins, args.quick)
    eval_rows = args.eval_rows or (100 if args.quick else None)
    pipelines = _pipelines(model, args.quick, eval_rows, not args.no_gptq)
    results = {}
    for name, pipeline in pipelines.items():
        result = run_pipeline(pipeline, plugins=plugins, show_progress=True)
        if result.exit_code != 0:
            failure = f"pipeline {pipeline.name} failed: {[s.error for s in result.steps if s.error]}"
            if name not in OPTIONAL:
                sys.exit(failure)
            print(f"skipped {name}: {failure}")
            continue
        results[name] = result
    if args.build_only:
        print(f"built {len(results)} candidate(s); run again without --build-only to measure them")
        return
    first = next(iter(results.values()))
    baseline = first.source.with_updates(label="fp32")
    candidates = [r.steps[-1].artifact.with_updates(label=n) for n, r in results.items()]

    pipeline = next(iter(pipelines.values()))
    settings = pipeline.measure.model_copy(update={"enabled": True})
    context = MeasureContext(
        baseline=baseline, pipeline=pipeline, settings=settings, hardware=first.plan.hardware,
        device=first.plan.device, run_dir=first.run_dir, plugins=plugins,
    )  # fmt: skip
    measured, errors = _common.measure(plugins, [baseline, *candidates], context, args)
    if errors:
        sys.exit(f"measurement failed: {errors}")

    base = {m.name: m for m in measured[baseline.key]}
    rows, figures = [], {}
    for artifact in [baseline, *candidates]:
        metrics = {m.name: m for m in measured[artifact.key]}
        lat = {s: metrics[f"latency_ms.{s}"] for s in SHAPES}
        acc, macro = _value(metrics, "accuracy"), _value(metrics, "macro_f1")
        acc_base, macro_base = _value(base, "accuracy"), _value(base, "macro_f1")
        size, size_base = _value(metrics, "size_bytes"), _value(base, "size_bytes")
        figures[artifact.label] = f = {
            "technique": artifact.produced_by,
            "format": artifact.format,
            "accuracy": acc,
            "accuracy_delta_points": None if acc is None or acc_base is None else (acc - acc_base) * 100,
            "macro_f1": macro,
            "macro_f1_delta_points": None if macro is None or macro_base is None else (macro - macro_base) * 100,
            "agreement_with_baseline": _value(metrics, "agreement"),
            "latency_ms": {s: lat[s].model_dump() for s in SHAPES},
            "speedup": {s: _common.speedup(lat[s], base[f"latency_ms.{s}"]) for s in SHAPES},
            "size_bytes": size,
            "smaller_by": size_base / size if size and size_base else None,
            "peak_rss_bytes": _value(metrics, "peak_rss_bytes"),
            "metadata": artifact.metadata,
        }
        rows.append([
            artifact.label,
            f"{acc * 100:.2f}" if acc is not None else "-",
            f"{f['accuracy_delta_points']:+.2f}" if f["accuracy_delta_points"] is not None else "-",
            f"{macro * 100:.2f}" if macro is not None else "-",
            f"{f['macro_f1_delta_points']:+.2f}" if f["macro_f1_delta_points"] is not None else "-",
            f"{f['agreement_with_baseline'] * 100:.1f}" if f["agreement_with_baseline"] is not None else "-",
            *[f"{lat[s].value:.1f} (p90 {lat[s].spread['p90']:.1f})" for s in SHAPES],
            *[f"{f['speedup'][s]:.2f}x" for s in SHAPES],
            f"{size / 1e6:.1f}" if size else "-",
            f"{f['smaller_by']:.2f}x" if f["smaller_by"] else "-",
        ])  # fmt: skip
    header = ["variant", "acc %", "Δ pts", "macro-F1", "Δ pts", "agree %", "b1 ms", "b8 ms", "b1 x", "b8 x"]
    print(_common.table([*header, "MB", "smaller"], rows))

    targets = {}
    for name in (n for n in FOUR_BIT if n in figures):
        f = figures[name]
        targets[f"{name} >= {SIZE_TARGET}x smaller than fp32 on disk"] = (f["smaller_by"] or 0) >= SIZE_TARGET
        delta = f["accuracy_delta_points"]
        targets[f"{name} within {ACCURACY_GAP_POINTS} points of accuracy"] = (
            delta is not None and delta >= -ACCURACY_GAP_POINTS
        )
    print()
    for name, met in targets.items():
        print(f"{'met ' if met else 'MISSED'}  {name}")
    threads = base["latency_ms.b1.s64"].details["threads"]
    print(f"\nthreads {threads}; eval rows {eval_rows or 'all'}; measured in one session, blocks rotated round-robin")
    out = {
        "baseline_model": str(model),
        "figures": figures,
        "targets": targets,
        "threads": threads,
        "eval_rows": eval_rows,
        "measure_settings": settings.model_dump(mode="json"),
        "run_dirs": {n: str(r.run_dir) for n, r in results.items()},
    }
    print(f"written: {_common.write('llm_quant-quick' if args.quick else 'llm_quant', out)}")


if __name__ == "__main__":
    main()
