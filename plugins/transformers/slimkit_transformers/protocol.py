"""The measurement protocol: every artifact of a run measured in one process, interleaved.

- Threads fixed (``torch.set_num_threads``; ORT predictors get the same count) and recorded.
- Inputs are real eval texts, tokenized by each model's own tokenizer, never random tokens.
- Latency per (batch size, length): for each round, every artifact in turn (rotated each
  round) runs a block of ``warmup`` untimed calls, then ``repeats`` timed calls. Blocks keep one
  runtime's spinning threads from slowing the next one's calls (docs/measurement.md), and each
  block starts after a short pause (``SETTLE_S``) longer than the 50-70 ms those threads spin; rotation
  spreads machine drift over all artifacts alike. Median, p90 and p99 over all timed calls.
- Accuracy on the whole eval split, and agreement of predictions with the baseline's.
- Peak resident memory: each artifact is loaded and run in a fresh subprocess (memprobe), since
  one process's peak RSS cannot be split between models.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from slimkit.artifacts import Artifact
from slimkit.context import MeasureContext
from slimkit.metrics import Metric
from slimkit.processes import child_arguments

if TYPE_CHECKING:
    import numpy as np

    from slimkit_transformers.tasks import TaskData

Predictor = Any  # encode(texts, max_length=, pad_to_max=) -> inputs; __call__(inputs) -> logits; facts
EVAL_BATCH = 32
EVAL_MAX_LENGTH = 128  # accuracy is measured on texts cut at this many tokens (packages record it)
DISTINCT_BATCHES = 4  # timed calls cycle over a few different real batches
NEAR_CHANCE_MARGIN = 0.05
# A reference that gives one answer for this share of rows has not learned the task: agreement
# with it means nothing, and the report says so about the baseline instead.
DEGENERATE_SHARE = 0.9


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    import numpy as np

    arr = np.asarray(samples_ms)
    return {
        "median": float(np.median(arr)),
        "p90": float(np.percentile(arr, 90)),
        "p99": float(np.percentile(arr, 99)),
        "min": float(arr.min()),
    }


def _texts_for(task: TaskData | None, n: int) -> list[Any]:
    """``n`` eval inputs, cycling: texts, or (text, pair) tuples in a sentence-pair task."""
    if task is None or not task.eval.texts:
        raise ValueError("latency needs the pipeline's task: inputs come from its eval split")
    texts = task.eval.inputs
    return [texts[i % len(texts)] for i in range(n)]


# Pause before each block: torch's and ORT's worker threads spin for 50-70 ms after their last call
# (docs/measurement.md); after this the previous block's threads are asleep.
SETTLE_S = 0.1


def time_blocks(
    predictors: dict[str, Predictor],
    batches: dict[str, list[Any]],
    *,
    warmup: int,
    repeats: int,
    rounds: int,
    clock: Callable[[], int] = time.perf_counter_ns,
    settle: Callable[[], None] = lambda: time.sleep(SETTLE_S),
) -> dict[str, list[list[float]]]:
    """Timed call durations (ms) per predictor key, one list per round's block (see module docstring).

    Before the first timed block every predictor runs its warm-up once, so that the first calls
    at a new shape (allocations, kernel selection) fall in no model's timed block.
    """
    keys = list(predictors)
    blocks: dict[str, list[list[float]]] = {k: [] for k in keys}

    def run(key: str, calls: int) -> list[float]:
        predictor, inputs = predictors[key], batches[key]
        durations = []
        for i in range(calls):
            started = clock()
            predictor(inputs[i % len(inputs)])
            durations.append((clock() - started) / 1e6)
        return durations

    for key in keys:
        run(key, warmup)
    for r in range(rounds):
        order = keys[r % len(keys) :] + keys[: r % len(keys)]
        for key in order:
            settle()
            run(key, warmup)
            blocks[key].append(run(key, repeats))
    return blocks


def latency_metrics(
    predictors: dict[str, Predictor], task: TaskData | None, context: MeasureContext, threads: int
) -> dict[str, list[Metric]]:
    settings = context.settings
    shapes: list[tuple[int, int | None]] = [(b, s) for b in settings.batch_sizes for s in settings.sequence_lengths]
    if settings.dynamic_length:
        shapes += [(b, None) for b in settings.batch_sizes]
    out: dict[str, list[Metric]] = {k: [] for k in predictors}
    for batch, length in context.progress(shapes, description="timing"):
        texts = _texts_for(task, batch * DISTINCT_BATCHES)
        groups = [texts[i * batch : (i + 1) * batch] for i in range(DISTINCT_BATCHES)]
        encoded = {
            key: [p.encode(g, max_length=length or 512, pad_to_max=length is not None) for g in groups]
            for key, p in predictors.items()
        }
        timed = time_blocks(
            predictors,
            encoded,
            warmup=settings.warmup,
            repeats=settings.repeats,
            rounds=settings.rounds,
        )
        tag = f"b{batch}.s{length}" if length else f"b{batch}.dyn"
        for key, blocks in timed.items():
            ms = [d for block in blocks for d in block]
            stats = _percentiles(ms)
            details = {
                "batch_size": batch,
                "sequence_length": length or "dynamic (eval texts)",
                "threads": threads,
                "warmup": settings.warmup,
                "repeats": settings.repeats,
                "rounds": settings.rounds,
                "timed_calls": len(ms),
                # One median per round's block (rounds in order): paired with the baseline's block
                # of the same round, they give per-round ratios (bench/sessions.py).
                "block_medians_ms": [round(statistics.median(block), 4) for block in blocks],
                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
            }
            out[key].append(
                Metric(
                    name=f"latency_ms.{tag}",
                    value=round(stats["median"], 4),
                    unit="ms",
                    kind="speed",
                    better="lower",
                    spread={k: round(v, 4) for k, v in stats.items() if k != "median"},
                    details=details,
                )
            )
            out[key].append(
                Metric(
                    name=f"throughput.{tag}",
                    value=round(batch / (stats["median"] / 1000), 3),
                    unit="items/s",
                    kind="speed",
                    better="higher",
                    details={"from": f"latency_ms.{tag} median"},
                )
            )
    return out


def eval_logits(predictor: Predictor, texts: Sequence[Any], max_length: int = EVAL_MAX_LENGTH) -> np.ndarray:
    """Logits of ``texts`` (strings, or (text, pair) tuples: a split's ``inputs``)."""
    import numpy as np

    parts = [
        predictor(predictor.encode(texts[i : i + EVAL_BATCH], max_length=max_length, pad_to_max=False))
        for i in range(0, len(texts), EVAL_BATCH)
    ]
    return np.concatenate(parts, axis=0)


def accuracy_metrics(
    predictors: dict[str, Predictor],
    thresholds: dict[str, float],
    task: TaskData,
    baseline_key: str,
    untrained: frozenset[str] = frozenset(),
) -> dict[str, list[Metric]]:
    """Accuracy of each predictor on the eval split, and its agreement with the baseline.

    ``untrained``: keys of models whose head was freshly initialised on purpose (a source model
    given the task's labels): near-chance agreement is expected of them and gets a note, not the
    alarm meant for a step that lost its head.
    """
    from slimkit_transformers import scores

    out: dict[str, list[Metric]] = {}
    predictions = {}
    for key, predictor in predictors.items():
        logits = eval_logits(predictor, task.eval.inputs)
        predictions[key] = scores.predict(logits, task.multi_label, thresholds[key])
        figures = scores.classification_scores(task.eval.labels, predictions[key], task.multi_label)
        details = {
            "split": "eval",
            "rows": len(task.eval),
            "threshold": thresholds[key] if task.multi_label else None,
            "max_length": EVAL_MAX_LENGTH,
        }
        out[key] = [
            Metric(name=name, value=round(value, 6), unit="fraction", kind="accuracy", better="higher", details=details)
            for name, value in figures.items()
        ]
    reference = predictions.get(baseline_key)
    if reference is None:
        return out
    chance = scores.chance_agreement(reference)
    for key, preds in predictions.items():
        agree = scores.agreement(preds, reference)
        details: dict[str, Any] = {"reference": "baseline", "chance_level": round(chance, 4)}
        head = _head_changed(predictors[key], predictors[baseline_key])
        if head is not None:
            details["head_changed"] = head
        if key == baseline_key and chance >= DEGENERATE_SHARE:
            details["warning"] = (
                f"the baseline gives the same prediction for {chance:.1%} of eval rows: it has not learned the "
                "task (train longer, or check the labels), so deltas against it mean little"
            )
        elif key in untrained:
            details["note"] = "the source model's head is new (not yet trained on this task): a reference, not a result"
        elif key != baseline_key and chance < DEGENERATE_SHARE and agree <= chance + NEAR_CHANCE_MARGIN:
            weights = {
                True: "its head weights differ from the baseline's",
                False: "its head weights are the baseline's",
            }
            details["warning"] = (
                f"predictions agree with the baseline's only {agree:.1%} of the time (chance: {chance:.1%}); "
                f"{weights.get(head, 'its head weights could not be compared')}: "
                "the classification head was probably re-initialised or lost"
            )
        out[key].append(
            Metric(
                name="agreement",
                value=round(agree, 6),
                unit="fraction",
                kind="accuracy",
                better="higher",
                details=details,
            )
        )
    return out


def _head_changed(candidate: Predictor, baseline: Predictor) -> bool | None:
    a, b = candidate.facts.get("head_checksum"), baseline.facts.get("head_checksum")
    if a is None or b is None:
        return None
    return bool(abs(a - b) > 1e-3 * max(abs(b), 1e-12))


def plugin_modules(plugins: Any) -> list[str]:
    """Importable modules of the plugins registered now, for the memory probe to register too (it
    must load the same formats even when entry points are off, as under test)."""
    if plugins is None:
        return []
    names = []
    for name, plugin in plugins.pm.list_name_plugin():
        record = plugins.records.get(name)
        if isinstance(plugin, ModuleType) and record is not None and record.origin in ("entry-point", "test"):
            names.append(plugin.__name__)
    return names


def memory_metric(artifact: Artifact, context: MeasureContext, threads: int) -> Metric:
    """Peak RSS of a fresh process that loads the artifact and runs the largest timed batch."""
    batch = max(context.settings.batch_sizes)
    length = max(context.settings.sequence_lengths)
    command = [
        sys.executable, "-m", "slimkit_transformers.memprobe",
        "--artifact", artifact.model_dump_json(), "--batch", str(batch), "--length", str(length),
        "--threads", str(threads), "--device", context.device, *child_arguments(),
    ]  # fmt: skip
    for module in plugin_modules(context.plugins):
        command += ["--plugin", module]
    env = dict(os.environ)
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return Metric(name="peak_rss_bytes", value=None, unit="bytes", kind="memory", details={"error": tail})
    facts = json.loads(proc.stdout.strip().splitlines()[-1])
    return Metric(
        name="peak_rss_bytes",
        value=float(facts["peak_rss_bytes"]),
        unit="bytes",
        kind="memory",
        better="lower",
        details={"batch_size": batch, "sequence_length": length, "process": "fresh subprocess", **facts},
    )


def static_metrics(predictor: Predictor) -> list[Metric]:
    facts = predictor.facts
    out = []
    for name in ("params", "nonzero_params"):
        if name in facts:
            out.append(Metric(name=name, value=float(facts[name]), unit="", kind="size", better="lower"))
    if "embedding_share" in facts:
        out.append(Metric(name="embedding_share", value=round(facts["embedding_share"], 4), unit="fraction"))
    return out


def measure(
    artifacts: Sequence[Artifact],
    context: MeasureContext,
    load_predictor: Callable[[Artifact], Predictor | None],
    task: TaskData | None,
) -> dict[str, list[Metric]]:
    from slimkit_transformers.models import set_threads
    from slimkit_transformers.predictors import saved_threshold

    settings = context.settings
    threads = set_threads(settings.threads)
    predictors: dict[str, Predictor] = {}
    for artifact in artifacts:
        predictor = load_predictor(artifact)
        if predictor is not None:
            predictors[artifact.key] = predictor
    if not predictors:
        return {}
    out: dict[str, list[Metric]] = {k: static_metrics(p) for k, p in predictors.items()}
    if task is None:
        note = "the pipeline has no task: latency and accuracy need its eval texts, so only sizes were measured"
        for metrics in out.values():
            metrics.append(Metric(name="measurement_scope", value=None, details={"warning": note}))
    if task is not None and settings.accuracy:
        default = saved_threshold(context.baseline.path, task.threshold)
        by_key = {a.key: a for a in artifacts}
        thresholds = {k: saved_threshold(by_key[k].path, default) for k in predictors}
        untrained = frozenset(a.key for a in artifacts if a.metadata.get("head") == "initialised")
        for key, metrics in accuracy_metrics(predictors, thresholds, task, context.baseline.key, untrained).items():
            out[key] += metrics
    if settings.latency and task is not None:
        for key, metrics in latency_metrics(predictors, task, context, threads).items():
            out[key] += metrics
    for predictor in predictors.values():
        predictor.close()
    if settings.latency:
        for artifact in artifacts:
            if artifact.key in predictors:
                out[artifact.key].append(memory_metric(artifact, context, threads))
    return out
