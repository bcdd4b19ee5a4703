"""Markdown report made from results.json alone, so it can be rebuilt at any time."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from slimkit.artifacts import write_text_atomic
from slimkit.journal import Journal
from slimkit.metrics import Metric
from slimkit.results import (
    AnyResults,
    MeasuredArtifact,
    ResultMetric,
    RunResults,
    StudyResults,
    VariantResult,
)
from slimkit.spec import MeasureSpec, StepSpec

KIND_ORDER = {"speed": 0, "memory": 1, "size": 2, "accuracy": 3, "info": 4}


def format_value(metric: Metric) -> str:
    value, unit = metric.value, metric.unit
    if value is None:
        return "n/a"
    if unit == "bytes":
        if value >= 1e5:
            return f"{value / 1e6:.2f} MB"
        return f"{value / 1e3:.1f} kB" if value >= 1e3 else f"{int(value)} B"
    if unit == "fraction":
        return f"{value * 100:.2f}"
    if unit == "ms":
        return f"{value:.2f} ms"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.4g}{' ' + unit if unit else ''}"
    return f"{int(value)}{' ' + unit if unit else ''}"


def _versus(metric: ResultMetric) -> str:
    vs = metric.vs_baseline
    if vs.get("ratio_min", vs.get("ratio")) != vs.get("ratio_max", vs.get("ratio")):  # several sessions: median (range)
        return f" · {vs['ratio']:.2f}x ({vs['ratio_min']:.2f}-{vs['ratio_max']:.2f})"
    if "ratio" in vs:
        return f" · {vs['ratio']:.2f}x"
    return f" · {vs['delta_points']:+.2f}" if "delta_points" in vs else ""


def format_cell(metric: ResultMetric) -> str:
    """The figure, its p90 for a latency, and its comparison with the baseline."""
    text = format_value(metric)
    if "p90" in metric.spread and metric.unit == "ms":
        text += f" (p90 {metric.spread['p90']:.2f})"
    return text + _versus(metric)


def compact_cell(metric: ResultMetric) -> str:
    """The figure and its comparison with the baseline, without the spread (model cards, report.html)."""
    return format_value(metric) + _versus(metric)


# Figures derivable from others, or context rather than comparison, stay in results.json only.
HIDDEN_PREFIXES = ("throughput.",)


def metric_columns(artifacts: Sequence[MeasuredArtifact], kinds: tuple[str, ...]) -> list[str]:
    """Metric names of the given kinds that the report shows, in a stable order."""
    seen: dict[str, str] = {}
    for artifact in artifacts:
        for metric in artifact.metrics:
            seen.setdefault(metric.name, metric.kind)
    names = [n for n, k in seen.items() if k in kinds and not n.startswith(HIDDEN_PREFIXES)]
    if "nonzero_params" in names and not _any_sparse(artifacts):
        names.remove("nonzero_params")
    return sorted(names, key=lambda n: (KIND_ORDER.get(seen[n], 9), n))


def _any_sparse(artifacts: Sequence[MeasuredArtifact]) -> bool:
    for artifact in artifacts:
        by_name = {m.name: m.value for m in artifact.metrics}
        if by_name.get("nonzero_params") not in (None, by_name.get("params")):
            return True
    return False


def metric_warnings(artifacts: Sequence[MeasuredArtifact]) -> list[str]:
    """Warnings measurers attached to figures (e.g. a lost classification head)."""
    notes = []
    for artifact in artifacts:
        for metric in artifact.metrics:
            warning = metric.details.get("warning")
            if warning:
                notes.append(f"**{artifact.label}** ({metric.name}): {warning}")
    return notes


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _plot_lines(plots: Sequence[str]) -> list[str]:
    return [line for plot in plots for line in (f"![{plot}]({plot})", "")]


def render_markdown(results: AnyResults, plots: Sequence[str] = ()) -> str:
    """The report of a run or a study; ``plots`` are the names of the PNGs beside it, if any."""
    if isinstance(results, StudyResults):
        return render_study_markdown(results, plots)
    out = [f"# slimkit run: {results.pipeline}", "", *_outcome(results)]
    out.append(
        f"{_machine(results)}. Baseline: **{results.baseline}**. "
        "Ratios are baseline / candidate for latency, size and memory (higher is better); "
        "accuracy deltas are in points."
    )
    out.append("")
    out += _run_tables(results.artifacts)
    out += _plot_lines(plots)
    out += _steps_section(results)
    notes = _notes(results)
    if notes:
        out.append("## Warnings")
        out.append("")
        out += [f"- {n}" for n in notes]
        out.append("")
    out += _measurement(results)
    return "\n".join(out + _libraries(results))


def _run_tables(artifacts: list[MeasuredArtifact]) -> list[str]:
    out = []
    for title, kinds in (("Speed, memory and size", ("speed", "memory", "size")), ("Accuracy", ("accuracy",))):
        columns = metric_columns(artifacts, kinds)
        if not columns:
            continue
        out += [f"## {title}", ""]
        rows = []
        for artifact in artifacts:
            by_name = {m.name: m for m in artifact.metrics}
            rows.append(
                [artifact.label, artifact.produced_by or "-", artifact.format]
                + [format_cell(by_name[c]) if c in by_name else "-" for c in columns]
            )
        out += _table(["model", "technique", "format", *columns], rows)
        out.append("")
    return out


def _steps_section(results: RunResults) -> list[str]:
    if not results.steps:
        return []
    rows = [
        [
            str(s.index),
            s.name,
            s.technique,
            f"{s.plugin} {s.plugin_version or ''}".strip(),
            s.status,
            "-" if s.seconds is None else f"{s.seconds:.1f} s",
            s.error or "",
        ]
        for s in results.steps
    ]
    return ["## Steps", "", *_table(["#", "step", "technique", "plugin", "status", "time", "error"], rows), ""]


def _measurement(results: AnyResults) -> list[str]:
    """How the figures were timed: settings, and the threads the measurers recorded using."""
    settings = results.measure_settings
    if settings is None or not (settings.enabled and settings.latency):
        return []
    used = sorted(
        {
            f"{d['threads']} thread(s), OMP_WAIT_POLICY {d.get('omp_wait_policy', 'default')}"
            for a in results.artifacts
            for m in a.metrics
            if m.name.startswith("latency_ms.") and "threads" in (d := m.details)
        }
    )
    threads = "; ".join(used) or f"threads {settings.threads or 'physical cores'}"
    return [
        "## Measurement",
        "",
        f"Measured in {_sessions_text(settings)}, blocks rotated round-robin across models: batch sizes "
        f"{settings.batch_sizes}, sequence lengths {settings.sequence_lengths}, "
        f"{settings.warmup} warm-up and {settings.repeats} timed calls per block, "
        f"{settings.rounds} round(s), {threads}.",
        "",
    ]


def _sessions_text(settings: MeasureSpec) -> str:
    if settings.sessions == 1:
        return "one session"
    return (
        f"{settings.sessions} sessions {settings.session_gap_s:g} s apart (figures: median across sessions; "
        "ratios: median of the per-session ratios, range in brackets)"
    )


def _libraries(results: AnyResults) -> list[str]:
    libs = results.libraries
    return ["Libraries: " + ", ".join(f"{k} {v}" for k, v in sorted(libs.items())), ""] if libs else []


OUTCOME_WORDS = {
    "done": "done",
    "failed": "failed",
    "bad_input": "stopped on bad input",
    "refused": "refused by the planner (nothing was computed)",
    "interrupted": "interrupted",
    "running": "not finished",
}


def _outcome(results: AnyResults) -> list[str]:
    """The first thing a reader sees: how the run or study ended, with the exit code and why."""
    outcome = results.outcome
    if outcome is None:  # written by an older slimkit
        return []
    code = results.exit_code
    line = f"**Outcome: {OUTCOME_WORDS.get(outcome, outcome)}**" + (f" (exit code {code})" if code is not None else "")
    reason = results.reason
    return [line + (f": {reason}" if reason else "."), ""]


def _machine(results: AnyResults) -> str:
    hw = results.hardware
    cpu, cores = (hw.cpu_model, hw.physical_cores) if hw else ("?", "?")
    flags = ", ".join(hw.cpu_flags) if hw else ""
    return f"Device `{results.device}` on {cpu} ({cores} cores; flags: {flags or 'none'})"


def _notes(results: AnyResults) -> list[str]:
    """Every warning of a run or study: measurers', the run's, measurer failures, artifacts' own."""
    artifacts = results.artifacts
    error = results.error if isinstance(results, RunResults) else None
    notes = ([f"the run stopped: {error}"] if error else []) + metric_warnings(artifacts)
    notes += list(results.warnings)
    notes += [f"measurer {p!r} failed: {e}" for p, e in results.measure_errors.items()]
    for artifact in artifacts:
        for flag in artifact.metadata.get("warnings", []):
            notes.append(f"{artifact.label}: {flag}")
    return notes


def options_text(config: dict[str, Any]) -> str:
    """A step's options as one line: ``epochs=6, student={"keep_every": 2}``."""
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in config.items())


def _step_text(step: StepSpec) -> str:
    options = options_text(step.config)
    return f"{step.name or step.technique} ({step.technique or step.stage}" + (f": {options})" if options else ")")


def _seconds(variant: VariantResult) -> str:
    seconds = variant.build_seconds
    if seconds is None:
        return "-"
    text = f"{seconds:.1f} s" if seconds < 600 else f"{seconds / 60:.1f} min"
    unknown = variant.steps_of_unknown_time
    return text + (f" + {unknown} step(s) built outside the study" if unknown else "")


def render_study_markdown(results: StudyResults, plots: Sequence[str] = ()) -> str:
    """The study report: every variant, the chosen one and why, Pareto front, machine, warnings."""
    out = [f"# slimkit study: {results.study}", "", *_outcome(results), _study_intro(results), ""]
    out += _chosen_section(results)
    out += _variants_section(results)
    out += _plot_lines(plots)
    out += _unmeasured_section(results)
    out += _recipes_section(results.variants)
    out += _search_section(results)
    notes = _notes(results)
    if notes:
        out += ["## Warnings", "", *[f"- {n}" for n in notes], ""]
    out += _measurement(results)
    return "\n".join(out + _libraries(results))


def _study_intro(results: StudyResults) -> str:
    model = results.model.source if results.model else "?"
    task, base = results.task, results.base
    return (
        f"Model `{model}`"
        + (f", task `{task.preset or task.dataset}`" if task and task.model_fields_set else "")
        + ". "
        f"{_machine(results)}. Baseline: **{results.baseline}**"
        + (" (" + " → ".join(_step_text(s) for s in base) + ")" if base else "")
        + ". Every figure below comes from "
        + (
            "one measurement session of all variants"
            if results.measure_settings is None or results.measure_settings.sessions == 1
            else f"{results.measure_settings.sessions} measurement sessions of all variants (median, range in brackets)"
        )
        + "; ratios are "
        "baseline / variant for latency, size and memory (higher is better); accuracy deltas are in points."
    )


def _chosen_section(results: StudyResults) -> list[str]:
    search, selection = results.search, results.selection
    budget = search.budget if search else None
    accuracy = (selection.accuracy if selection else None) or (budget.metric if budget else None) or "?"
    objective = (selection.objective if selection else None) or (search.objective if search else None)
    out = ["## Chosen variant", ""]
    out.append(
        f"Objective: **{objective}**; budget: at most "
        f"{budget.max_drop_points if budget else '?'} point(s) of **{accuracy}** below the baseline."
    )
    out.append("")
    if selection and selection.chosen:
        out.append(f"**{selection.chosen}**: {selection.reason}.")
    else:
        out.append(f"**No variant chosen**: {(selection.reason if selection else '') or 'nothing was measured'}.")
    if selection and selection.pareto_front:
        out += ["", "Pareto front (objective vs accuracy): " + ", ".join(selection.pareto_front) + "."]
    return [*out, ""]


def _variants_section(results: StudyResults) -> list[str]:
    """One row per measured variant, ★ on the chosen one and ◆ on the Pareto front."""
    artifacts, selection = results.artifacts, results.selection
    columns = metric_columns(artifacts, ("speed", "memory", "size", "accuracy"))
    by_label = {a.label: a for a in artifacts}
    chosen, front = (selection.chosen, set(selection.pareto_front)) if selection else (None, set())
    rows = []
    for v in results.variants:
        artifact = by_label.get(v.name)
        if artifact is None:
            continue
        metrics = {m.name: m for m in artifact.metrics}
        mark = " ★" if v.name == chosen else (" ◆" if v.name in front else "")
        rows.append(
            [v.name + mark, " → ".join(v.blocks) or "(base steps)", artifact.format]
            + [format_cell(metrics[c]) if c in metrics else "-" for c in columns]
            + [_seconds(v)]
        )
    if not rows:
        return []
    header = ["variant", "blocks", "format", *columns, "build time"]
    return ["## Variants", "", "★ chosen, ◆ on the Pareto front.", "", *_table(header, rows), ""]


def _unmeasured_section(results: StudyResults) -> list[str]:
    measured = {a.label for a in results.artifacts}
    unmeasured = [v for v in results.variants if v.name not in measured]
    if not unmeasured:
        return []
    rows = [[v.name, " → ".join(v.blocks), v.status, v.note or ""] for v in unmeasured]
    return ["## Variants without figures", "", *_table(["variant", "blocks", "status", "why"], rows), ""]


def _recipes_section(variants: list[VariantResult]) -> list[str]:
    recipes = [v for v in variants if v.config]
    if not recipes:
        return []
    lines = [f"- **{v.name}**: " + " → ".join(_step_text(s) for s in v.config) for v in recipes]
    return ["## Recipes", "", "Steps each variant adds after the base steps.", "", *lines, ""]


def _search_section(results: StudyResults) -> list[str]:
    search = results.search
    stopped = (
        " The time budget ran out; variants not started are listed above."
        if search and search.stopped_by_time_budget
        else ""
    )
    time_budget = search.time_budget_s if search else None
    return [
        "## Search",
        "",
        f"Strategy `{search.strategy if search else None}`: {search.built if search else 0} of "
        f"{search.total if search else 0} variant(s) built"
        + (f" within a time budget of {time_budget:g} s" if time_budget else "")
        + f"; executor `{results.executor}`; the study took {results.seconds or 0:.1f} s.{stopped}",
        "",
        *_where_lines(results),
    ]


def _where_lines(results: StudyResults) -> list[str]:
    """'Built on: host-a (3), host-b (2); measured on host-a in one session.' (none for older files)."""
    built = Counter(v.built_on for v in results.variants if v.built_on)
    if not built and not results.measured_on:
        return []
    parts = []
    if built:
        parts.append("Built on: " + ", ".join(f"{host} ({n})" for host, n in sorted(built.items())))
    if results.measured_on:
        settings = results.measure_settings
        sessions = "one session" if settings is None or settings.sessions == 1 else f"{settings.sessions} sessions"
        parts.append(f"measured on {results.measured_on} in {sessions}")
    line = "; ".join(parts)
    return [line[0].upper() + line[1:] + ".", ""]


def publish_results(
    run_dir: Path, results: AnyResults, journal: Journal, event: str, warn: Callable[[str], None]
) -> None:
    """Write results.json, then the report and the journal's last line (``event``, left out while
    the outcome is 'running'), so that all three tell one outcome. Only results.json may fail:
    the report is rebuilt from it (``slimkit report``), so its failure is a ``warn``ing."""
    results.save()
    try:
        write_report(run_dir, results)
    except Exception as exc:
        warn(f"report.md not written ({type(exc).__name__}: {exc}); `slimkit report` rebuilds it")
    if results.outcome != "running":
        journal.write(event, outcome=results.outcome, exit_code=results.exit_code, reason=results.reason)


def write_report(run_dir: Path, results: AnyResults) -> Path:
    """Write report.md (with its PNG plots) and report.html into the run directory; return report.md's path."""
    from slimkit.plots import render_plots

    try:
        plots = render_plots(results, run_dir)
    except Exception as exc:
        plots = []
        results = results.model_copy(update={"warnings": [*results.warnings, f"plots not drawn: {exc}"]})
    path = run_dir / "report.md"
    write_text_atomic(path, render_markdown(results, [p.name for p in plots]))
    from slimkit.html_report import write_html_report

    write_html_report(run_dir, results)
    return path
