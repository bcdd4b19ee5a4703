"""Distillation benchmark (issue 6): the fine-tuned MiniLM-L6 teacher, 3-layer students distilled from
it, and the same students fine-tuned without a teacher, measured in one session on SemEval-2018 E-c.

    .venv/bin/python bench/distill.py [--quick] [--pipeline examples/minilm-semeval-distill.toml]

1. Runs examples/minilm-semeval-distill.toml (the teacher comes from the shared store when
   minilm-semeval.toml has run) and, from the same file, three more pipelines, all with
   measurement off. Two students for each of two starting points:
   - "distilled": distill.kd as written in the file (a student cut from the pre-trained MiniLM:
     its layers 1, 3, 5 before fine-tuning, student.from_step = 'source');
   - "no-teacher": the same step with alpha = 0 and no transfer set, the hard-label end, which is
     plain fine-tuning of the same student with the same settings (the plugin's tests check that it
     equals transformers.finetune weight for weight): a student that never saw the teacher;
   - "distilled-teacher-start" and "no-teacher-teacher-start": the same pair for a student cut from
     the fine-tuned teacher instead (its layers 1, 3, 5), which starts with the teacher's knowledge
     in its weights. (A file whose student starts from the teacher gets "...-pretrained-start".)
2. Measures teacher and students together, one measure() call (blocks rotated round-robin).
3. Prints micro-F1, Jaccard, latency at batch 1 and 32 (seq 128), size and training time, what the
   teacher adds for each start (distilled minus no-teacher), and the issue's targets: the
   distilled student at least 1.8x faster than the teacher, within 1.5 points of its micro-F1, and
   better than the student trained without a teacher (the same student, and every no-teacher one).
Writes bench/results/distill.json (bench/results/distill-quick.json with --quick).

--quick: 800 training tweets, 200 eval tweets, one epoch everywhere, few timing repeats, and a run
folder of its own (runs/bench-distill-quick), so nothing lands in the shared store.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import _common
from _common import table, write

REPO = Path(__file__).resolve().parents[1]
SPEEDUP_TARGET, F1_GAP_TARGET = 1.8, 0.015
SHAPES = ("b1.s128", "b32.s128")


def _other_start(student: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The other common starting point of a student cut from the teacher's architecture: the
    teacher's own layers, or the pre-trained model's (the source, before fine-tuning). None when
    the file's student starts elsewhere (another model or another step)."""
    if student.get("model") is not None or student.get("from_step") not in (None, "source"):
        return None
    if student.get("from_step") == "source":
        return "teacher-start", {k: v for k, v in student.items() if k != "from_step"}
    return "pretrained-start", student | {"from_step": "source"}


def _pipelines(path: Path, quick: bool) -> dict[str, Any]:
    """The pipelines to run, by candidate name; each ends with the step whose output is the candidate."""
    from slimkit.spec import pipeline_from_dict, read_spec_file

    data = read_spec_file(path)  # with the file it extends merged in
    distill = next(s for s in data["steps"] if s.get("technique") == "distill.kd")
    if quick:
        data["name"] += "-quick"
        data.pop("store_dir", None)
        data["output_dir"] = str(REPO / "runs" / "bench-distill-quick")
        data["task"] |= {"max_train_examples": 800, "max_eval_examples": 200}
        for step in data["steps"]:
            step["config"] = step.get("config", {}) | {"epochs": 1}
        data["measure"] |= {"warmup": 2, "repeats": 5, "rounds": 1, "dynamic_length": False}
    data["measure"] = data.get("measure", {}) | {"enabled": False}
    config = distill["config"]
    # No teacher: the hard-label end, no hidden-state loss and no transfer set (masked or unlabelled).
    no_teacher = {k: v for k, v in config.items() if k != "transfer_texts"}
    no_teacher |= {"alpha": 0.0, "hidden_weight": 0.0, "augment_copies": 0}
    variants = {"distilled": config, "no-teacher": no_teacher}
    other = _other_start(config.get("student", {"keep_every": 2}))
    if other is not None:
        start, student = other
        variants[f"distilled-{start}"] = config | {"student": student}
        variants[f"no-teacher-{start}"] = no_teacher | {"student": student}
    pipelines = {}
    for name, cfg in variants.items():
        steps = [s for s in data["steps"] if s is not distill] + [distill | {"name": name, "config": cfg}]
        suffix = "" if name == "distilled" else f"-{name}"
        extra = {} if quick else {"output_dir": str(REPO / "runs" / f"{data['name']}{suffix}")}
        pipelines[name] = pipeline_from_dict(
            data | {"name": data["name"] + suffix, "steps": steps} | extra, base_dir=path.resolve().parent
        )
    return pipelines


def _value(metrics: dict[str, Any], name: str) -> float | None:
    m = metrics.get(name)
    return None if m is None or m.value is None else float(m.value)


def _train_seconds(artifact: Any) -> float:
    meta = artifact.metadata
    return float(meta.get("train_seconds") or 0.0) + float(meta.get("teacher_pass_seconds") or 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", default=str(REPO / "examples" / "minilm-semeval-distill.toml"))
    parser.add_argument("--quick", action="store_true", help="smoke check: little data, one epoch, few repeats")
    _common.session_args(parser)
    args = parser.parse_args()

    from slimkit.context import MeasureContext
    from slimkit.plugins import build_plugins
    from slimkit.runner import run_pipeline

    plugins = build_plugins()
    pipelines = _pipelines(Path(args.pipeline), args.quick)
    teacher, candidates, results = None, [], {}
    for name, pipeline in pipelines.items():
        result = run_pipeline(pipeline, plugins=plugins, show_progress=True)
        if result.exit_code != 0:
            sys.exit(f"pipeline {pipeline.name} failed: {[s.error for s in result.steps if s.error]}")
        results[name] = result
        teacher = teacher or next(s.artifact for s in result.steps if s.name == pipeline.baseline)
        candidates.append(result.steps[-1].artifact.with_updates(label=name))
    assert teacher is not None
    teacher = teacher.with_updates(label="teacher")

    main_pipeline, main_result = pipelines["distilled"], results["distilled"]
    settings = main_pipeline.measure.model_copy(update={"enabled": True})
    context = MeasureContext(
        baseline=teacher, pipeline=main_pipeline, settings=settings, hardware=main_result.plan.hardware,
        device=main_result.plan.device, run_dir=main_result.run_dir, plugins=plugins,
    )  # fmt: skip
    measured, errors = _common.measure(plugins, [teacher, *candidates], context, args)
    if errors:
        sys.exit(f"measurement failed: {errors}")

    rows, figures = [], {}
    base = {m.name: m for m in measured[teacher.key]}
    for artifact in [teacher, *candidates]:
        metrics = {m.name: m for m in measured[artifact.key]}
        lat = {s: metrics[f"latency_ms.{s}"] for s in SHAPES}
        speedup = {s: _common.speedup(lat[s], base[f"latency_ms.{s}"]) for s in SHAPES}
        meta = artifact.metadata
        figures[artifact.label] = {
            "micro_f1": _value(metrics, "micro_f1"),
            "macro_f1": _value(metrics, "macro_f1"),
            "jaccard": _value(metrics, "jaccard"),
            "agreement_with_teacher": _value(metrics, "agreement"),
            "latency_ms": {s: lat[s].model_dump() for s in SHAPES},
            "speedup": speedup,
            "size_bytes": _value(metrics, "size_bytes"),
            "params": _value(metrics, "params"),
            "peak_rss_bytes": _value(metrics, "peak_rss_bytes"),
            "train_seconds": _train_seconds(artifact),
            "metadata": meta,
        }
        f = figures[artifact.label]
        rows.append([
            artifact.label,
            meta.get("student_layers", 6),
            f"{f['micro_f1'] * 100:.2f}",
            f"{f['jaccard'] * 100:.2f}",
            f"{f['macro_f1'] * 100:.2f}",
            f"{f['agreement_with_teacher'] * 100:.1f}",
            *[f"{lat[s].value:.2f} (p90 {lat[s].spread['p90']:.2f})" for s in SHAPES],
            *[f"{speedup[s]:.2f}x" for s in SHAPES],
            f"{f['size_bytes'] / 1e6:.1f}",
            f"{f['params'] / 1e6:.2f}",
            f"{f['train_seconds']:.0f}",
        ])  # fmt: skip
    header = ["model", "layers", "micro-F1", "Jaccard", "macro-F1", "agree %", "b1 ms", "b32 ms",
              "b1 speed-up", "b32 speed-up", "MB", "M params", "train s"]  # fmt: skip
    print(table(header, rows))

    d, t = figures["distilled"], figures["teacher"]
    no_teacher = {k: v for k, v in figures.items() if k.startswith("no-teacher")}
    targets = {
        "speedup_b1_at_least_1.8": d["speedup"]["b1.s128"] >= SPEEDUP_TARGET,
        "speedup_b32_at_least_1.8": d["speedup"]["b32.s128"] >= SPEEDUP_TARGET,
        "micro_f1_within_1.5_points": t["micro_f1"] - d["micro_f1"] <= F1_GAP_TARGET,
        # the same student without a teacher first, then any no-teacher student of the other start
        **{f"better_than_{k}": d["micro_f1"] > v["micro_f1"] for k, v in no_teacher.items()},
    }
    for name in figures:  # what the teacher adds, for each starting point
        if name.startswith("distilled"):
            control = "no-teacher" + name.removeprefix("distilled")
            gain = (figures[name]["micro_f1"] - figures[control]["micro_f1"]) * 100
            print(f"{name} minus {control}: {gain:+.2f} micro-F1 points (same start, the control without a teacher)")
    threads = base["latency_ms.b1.s128"].details.get("threads")
    print(f"\nthreads {threads}; micro-F1 gap to the teacher {(t['micro_f1'] - d['micro_f1']) * 100:+.2f} points")
    for name, ok in targets.items():
        print(f"  {'met' if ok else 'MISSED'}: {name}")
    out = {
        "quick": args.quick,
        "figures": figures,
        "targets": targets,
        "runs": {name: str(r.run_dir) for name, r in results.items()},
        "steps": {name: [s.as_dict() for s in r.steps] for name, r in results.items()},
    }
    print(f"written: {write('distill-quick' if args.quick else 'distill', out)}")


if __name__ == "__main__":
    main()
