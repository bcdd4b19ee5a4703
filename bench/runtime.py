"""slimkit-runtime against the transformers pipeline: install size, cold start, steady latency.

    .venv/bin/python bench/runtime.py PACKAGE_DIR BASELINE_DIR [--texts N] [--rounds R]

PACKAGE_DIR: a folder written by `slimkit package` (the MiniLM study's chosen ONNX model);
BASELINE_DIR: the fp32 fine-tuned Hugging Face folder it was measured against (the study's
baseline artifact). Figures, on this machine, in one session:

- install size: the files of the runtime's dependency closure (onnxruntime, tokenizers, numpy
  and what they require) against transformers + torch and theirs, as installed in this venv;
- cold start: a fresh Python process that imports, loads and predicts one text, timed from the
  outside, runtime and transformers pipeline alternated, median of R;
- steady latency at batch 1 and 32 on real eval texts, both loaded in one process, blocks
  interleaved after warm-up, median and p90, 2 threads for both.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

from _common import table, write

THREADS = 2
TEXTS = [
    "I can't believe how well this turned out, thank you all!",
    "Stuck in traffic again and late for the meeting, great.",
    "not sure what to think about the news tonight",
    "That was the scariest movie I have ever seen #nope",
]


def closure(roots: list[str]) -> set[str]:
    """Installed distributions that ``roots`` need, transitively (extras left out)."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        seen.add(name)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def installed_bytes(names: set[str]) -> int:
    total = 0
    for name in names:
        for file in md.distribution(name).files or []:
            path = Path(str(file.locate()))
            if path.is_file():
                total += path.stat().st_size
    return total


RUNTIME_COLD = """
import time; t = time.perf_counter()
from slimkit_runtime import Classifier
Classifier.load({folder!r}, threads={threads}).predict(["what a day!"])
print(time.perf_counter() - t)
"""
PIPELINE_COLD = """
import time; t = time.perf_counter()
import torch; torch.set_num_threads({threads})
from transformers import pipeline
pipeline("text-classification", model={folder!r}, top_k=None)(["what a day!"])
print(time.perf_counter() - t)
"""


def cold_starts(package: Path, baseline: Path, rounds: int) -> dict[str, list[float]]:
    """Seconds from process start to the first prediction, alternating the two, measured outside."""
    out: dict[str, list[float]] = {"runtime": [], "transformers": []}
    for _ in range(rounds):
        for name, code, folder in (("runtime", RUNTIME_COLD, package), ("transformers", PIPELINE_COLD, baseline)):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code.format(folder=str(folder), threads=THREADS)], check=True,
                           capture_output=True)  # fmt: skip
            out[name].append(time.perf_counter() - start)
    return out


def steady(package: Path, baseline: Path, texts: list[str], rounds: int) -> dict[str, dict[str, float]]:
    """Latency per call (ms) at batch 1 and 32, both models in this process, blocks interleaved."""
    import torch
    from transformers import pipeline

    from slimkit_runtime import Classifier

    torch.set_num_threads(THREADS)
    runtime = Classifier.load(package, threads=THREADS)
    pipe = pipeline("text-classification", model=str(baseline), top_k=None)
    calls = {"runtime": lambda b: runtime.predict_proba(b), "transformers": lambda b: pipe(b, batch_size=len(b))}
    timings: dict[str, list[float]] = {f"{n}.b{b}": [] for n in calls for b in (1, 32)}
    for _ in range(rounds):
        for batch in (1, 32):
            chunk = (texts * 32)[:batch]
            for name, call in calls.items():
                for _ in range(3):
                    call(chunk)  # warm-up of this block
                for _ in range(10):
                    start = time.perf_counter()
                    call(chunk)
                    timings[f"{name}.b{batch}"].append((time.perf_counter() - start) * 1000)
    return {k: {"median": statistics.median(v), "p90": sorted(v)[int(0.9 * (len(v) - 1))]} for k, v in timings.items()}


def agreement(package: Path, preset: str) -> dict[str, Any]:
    """The runtime's logits and labels on the task's eval texts against slimkit's own (its ONNX
    predictor and measurement code), for the packaged model."""
    import numpy as np

    from slimkit.spec import TaskSpec
    from slimkit_onnx.predictor import OnnxPredictor
    from slimkit_runtime import Classifier
    from slimkit_transformers.protocol import eval_logits
    from slimkit_transformers.scores import predict
    from slimkit_transformers.tasks import load_task

    task = load_task(TaskSpec(preset=preset), Path)
    texts = task.eval.texts
    expected = eval_logits(OnnxPredictor(package, threads=THREADS), texts)
    clf = Classifier.load(package, threads=THREADS)
    got = clf.logits(texts)
    same = predict(got, clf.multi_label, clf.threshold) == predict(expected, clf.multi_label, clf.threshold)
    rows = same.all(axis=1) if same.ndim == 2 else same
    return {
        "texts": len(texts),
        "max_abs_logit_diff": float(np.abs(got - expected).max()),
        "agreement": float(rows.mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path)
    parser.add_argument("baseline", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--task", help="A task preset: also compare the runtime's predictions with slimkit's on its eval texts."
    )
    args = parser.parse_args()
    check = agreement(args.package, args.task) if args.task else None
    if check is not None:
        print(f"runtime vs slimkit on {check['texts']} eval texts: agreement {100 * check['agreement']:.2f} %, "
              f"max |logit difference| {check['max_abs_logit_diff']:.2e}")  # fmt: skip
    sizes = {
        "runtime": installed_bytes(closure(["onnxruntime", "tokenizers", "numpy"])),
        "transformers": installed_bytes(closure(["transformers", "torch"])),
    }
    cold = cold_starts(args.package, args.baseline, args.rounds)
    lat = steady(args.package, args.baseline, TEXTS, args.rounds)
    rows = []
    for name in ("runtime", "transformers"):
        rows.append([name, f"{sizes[name] / 1e6:.0f} MB", f"{statistics.median(cold[name]):.2f} s",
                     f"{lat[name + '.b1']['median']:.2f} ms", f"{lat[name + '.b32']['median']:.1f} ms"])  # fmt: skip
    ratios = {
        "install_size": sizes["transformers"] / sizes["runtime"],
        "cold_start": statistics.median(cold["transformers"]) / statistics.median(cold["runtime"]),
        "b1": lat["transformers.b1"]["median"] / lat["runtime.b1"]["median"],
        "b32": lat["transformers.b32"]["median"] / lat["runtime.b32"]["median"],
    }
    print(table(["environment", "installed", "cold start (median)", "b1 latency", "b32 latency"], rows))
    print("runtime ahead by: " + ", ".join(f"{k} {v:.1f}x" for k, v in ratios.items()))
    data: dict[str, Any] = {"sizes_bytes": sizes, "cold_start_s": cold, "latency_ms": lat, "ratios": ratios}
    data["agreement"] = check
    print(write("runtime", data | {"threads": THREADS, "rounds": args.rounds}))


if __name__ == "__main__":
    main()
