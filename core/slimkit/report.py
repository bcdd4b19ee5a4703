"""Markdown report made from results.json alone, so it can be rebuilt at any time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slimkit.artifacts import write_text_atomic
from slimkit.errors import SlimkitError

STUDY_SCHEMA = "slimkit.study/1"
KIND_ORDER = {"speed": 0, "memory": 1, "size": 2, "accuracy": 3, "info": 4}


def load_results(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "results.json" if run_dir.is_dir() else run_dir
    if not path.is_file():
        raise SlimkitError(f"no results.json in {run_dir}", fix="pass the run directory that `slimkit run` printed")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SlimkitError(f"{path} is not a results file: {exc}") from None
    if not isinstance(data, dict):
        raise SlimkitError(f"{path} is not a results file: it holds no JSON object")
    return data


def format_value(metric: dict[str, Any]) -> str:
    value, unit = metric.get("value"), metric.get("unit", "")
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


def format_cell(metric: dict[str, Any]) -> str:
    text = format_value(metric)
    spread = metric.get("spread") or {}
    if "p90" in spread and metric.get("unit") == "ms":
        text += f" (p90 {spread['p90']:.2f})"
    vs = metric.get("vs_baseline") or {}
    if "ratio" in vs:
        text += f" · {vs['ratio']:.2f}x"
    elif "delta_points" in vs:
        text += f" · {vs['delta_points']:+.2f}"
    return text


# Figures derivable from others, or context rather than comparison, stay in results.json only.
HIDDEN_PREFIXES = ("throughput.",)


def metric_columns(artifacts: list[dict[str, Any]], kinds: tuple[str, ...]) -> list[str]:
    """Metric names of the given kinds that the report shows, in a stable order."""
    seen: dict[str, str] = {}
    for artifact in artifacts:
        for metric in artifact["metrics"]:
            seen.setdefault(metric["name"], metric.get("kind", "info"))
    names = [n for n, k in seen.items() if k in kinds and not n.startswith(HIDDEN_PREFIXES)]
    if "nonzero_params" in names and not _any_sparse(artifacts):
        names.remove("nonzero_params")
    return sorted(names, key=lambda n: (KIND_ORDER.get(seen[n], 9), n))


def _any_sparse(artifacts: list[dict[str, Any]]) -> bool:
    for artifact in artifacts:
        by_name = {m["name"]: m.get("value") for m in artifact["metrics"]}
        if by_name.get("nonzero_params") not in (None, by_name.get("params")):
            return True
    return False


def metric_warnings(artifacts: list[dict[str, Any]]) -> list[str]:
    """Warnings measurers attached to figures (e.g. a lost classification head)."""
    notes = []
    for artifact in artifacts:
        for metric in artifact["metrics"]:
            warning = (metric.get("details") or {}).get("warning")
            if warning:
                notes.append(f"**{artifact['label']}** ({metric['name']}): {warning}")
    return notes


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def render_markdown(results: dict[str, Any]) -> str:
    if results.get("schema") == STUDY_SCHEMA:
        return render_study_markdown(results)
    artifacts: list[dict[str, Any]] = results.get("artifacts", [])
    out = [f"# slimkit run: {results.get('pipeline')}", "", *_outcome(results)]
    out.append(
        f"{_machine(results)}. Baseline: **{results.get('baseline')}**. "
        "Ratios are baseline / candidate for latency, size and memory (higher is better); "
        "accuracy deltas are in points."
    )
    out.append("")
    for title, kinds in (("Speed, memory and size", ("speed", "memory", "size")), ("Accuracy", ("accuracy",))):
        columns = metric_columns(artifacts, kinds)
        if not columns:
            continue
        out += [f"## {title}", ""]
        rows = []
        for artifact in artifacts:
            by_name = {m["name"]: m for m in artifact["metrics"]}
            rows.append(
                [artifact["label"], artifact.get("produced_by") or "-", artifact["format"]]
                + [format_cell(by_name[c]) if c in by_name else "-" for c in columns]
            )
        out += _table(["model", "technique", "format", *columns], rows)
        out.append("")
    for plot in results.get("plots", []):
        out += [f"![{plot}]({plot})", ""]
    steps = results.get("steps", [])
    if steps:
        out.append("## Steps")
        out.append("")
        rows = [
            [
                str(s["index"]),
                s["name"],
                s["technique"],
                f"{s['plugin']} {s.get('plugin_version') or ''}".strip(),
                s["status"],
                "-" if s.get("seconds") is None else f"{s['seconds']:.1f} s",
                s.get("error") or "",
            ]
            for s in steps
        ]
        out += _table(["#", "step", "technique", "plugin", "status", "time", "error"], rows)
        out.append("")
    notes = _notes(results)
    if notes:
        out.append("## Warnings")
        out.append("")
        out += [f"- {n}" for n in notes]
        out.append("")
    out += _measurement(results)
    return "\n".join(out + _libraries(results))


def _measurement(results: dict[str, Any]) -> list[str]:
    """How the figures were timed: settings, and the threads the measurers recorded using."""
    settings = results.get("measure_settings") or {}
    if not settings or not (settings.get("enabled", True) and settings.get("latency", True)):
        return []
    used = sorted(
        {
            f"{d['threads']} thread(s), OMP_WAIT_POLICY {d.get('omp_wait_policy', 'default')}"
            for a in results.get("artifacts", [])
            for m in a["metrics"]
            if m["name"].startswith("latency_ms.") and "threads" in (d := m.get("details") or {})
        }
    )
    threads = "; ".join(used) or f"threads {settings.get('threads') or 'physical cores'}"
    return [
        "## Measurement",
        "",
        "Measured in one session, blocks rotated round-robin across models: batch sizes "
        f"{settings.get('batch_sizes')}, sequence lengths {settings.get('sequence_lengths')}, "
        f"{settings.get('warmup')} warm-up and {settings.get('repeats')} timed calls per block, "
        f"{settings.get('rounds')} round(s), {threads}.",
        "",
    ]


def _libraries(results: dict[str, Any]) -> list[str]:
    libs = results.get("libraries") or {}
    return ["Libraries: " + ", ".join(f"{k} {v}" for k, v in sorted(libs.items())), ""] if libs else []


OUTCOME_WORDS = {
    "done": "done",
    "failed": "failed",
    "bad_input": "stopped on bad input",
    "refused": "refused by the planner (nothing was computed)",
    "interrupted": "interrupted",
    "running": "not finished",
}


def _outcome(results: dict[str, Any]) -> list[str]:
    """The first thing a reader sees: how the run or study ended, with the exit code and why."""
    outcome = results.get("outcome")
    if outcome is None:  # written by an older slimkit
        return []
    code = results.get("exit_code")
    line = f"**Outcome: {OUTCOME_WORDS.get(outcome, outcome)}**" + (f" (exit code {code})" if code is not None else "")
    reason = results.get("reason")
    return [line + (f": {reason}" if reason else "."), ""]


def _machine(results: dict[str, Any]) -> str:
    hw = results.get("hardware") or {}
    return (
        f"Device `{results.get('device')}` on {hw.get('cpu_model', '?')} ({hw.get('physical_cores', '?')} cores; "
        f"flags: {', '.join(hw.get('cpu_flags', [])) or 'none'})"
    )


def _notes(results: dict[str, Any]) -> list[str]:
    """Every warning of a run or study: measurers', the run's, measurer failures, artifacts' own."""
    artifacts = results.get("artifacts", [])
    notes = ([f"the run stopped: {results['error']}"] if results.get("error") else []) + metric_warnings(artifacts)
    notes += list(results.get("warnings", []))
    notes += [f"measurer {p!r} failed: {e}" for p, e in (results.get("measure_errors") or {}).items()]
    for artifact in artifacts:
        for flag in (artifact.get("metadata") or {}).get("warnings", []):
            notes.append(f"{artifact['label']}: {flag}")
    return notes


def _step_text(step: dict[str, Any]) -> str:
    config = step.get("config") or {}
    options = ", ".join(f"{k}={json.dumps(v)}" for k, v in config.items())
    return f"{step.get('name') or step.get('technique')} ({step.get('technique') or step.get('stage')}" + (
        f": {options})" if options else ")"
    )


def _seconds(variant: dict[str, Any]) -> str:
    seconds = variant.get("build_seconds")
    if seconds is None:
        return "-"
    text = f"{seconds:.1f} s" if seconds < 600 else f"{seconds / 60:.1f} min"
    unknown = variant.get("steps_of_unknown_time") or 0
    return text + (f" + {unknown} step(s) built outside the study" if unknown else "")


def render_study_markdown(results: dict[str, Any]) -> str:
    """The study report: every variant, the chosen one and why, Pareto front, machine, warnings."""
    artifacts: list[dict[str, Any]] = results.get("artifacts", [])
    variants: list[dict[str, Any]] = results.get("variants", [])
    search = results.get("search") or {}
    selection = results.get("selection") or {}
    model = (results.get("model") or {}).get("source", "?")
    task = results.get("task") or {}
    out = [f"# slimkit study: {results.get('study')}", "", *_outcome(results)]
    out.append(
        f"Model `{model}`" + (f", task `{task.get('preset') or task.get('dataset')}`" if task else "") + ". "
        f"{_machine(results)}. Baseline: **{results.get('baseline')}**"
        + (" (" + " → ".join(_step_text(s) for s in results.get("base", [])) + ")" if results.get("base") else "")
        + ". Every figure below comes from one measurement session of all variants; ratios are "
        "baseline / variant for latency, size and memory (higher is better); accuracy deltas are in points."
    )
    out.append("")
    out += ["## Chosen variant", ""]
    budget = search.get("budget") or {}
    accuracy = selection.get("accuracy") or budget.get("metric") or "?"
    out.append(
        f"Objective: **{selection.get('objective') or search.get('objective')}**; budget: at most "
        f"{budget.get('max_drop_points', '?')} point(s) of **{accuracy}** below the baseline."
    )
    out.append("")
    if selection.get("chosen"):
        out.append(f"**{selection['chosen']}**: {selection.get('reason', '')}.")
    else:
        out.append(f"**No variant chosen**: {selection.get('reason') or 'nothing was measured'}.")
    if selection.get("pareto_front"):
        out += ["", "Pareto front (objective vs accuracy): " + ", ".join(selection["pareto_front"]) + "."]
    out.append("")
    columns = metric_columns(artifacts, ("speed", "memory", "size", "accuracy"))
    by_label = {a["label"]: a for a in artifacts}
    chosen = selection.get("chosen")
    front = set(selection.get("pareto_front") or [])
    rows = []
    for v in variants:
        artifact = by_label.get(v["name"])
        if artifact is None:
            continue
        metrics = {m["name"]: m for m in artifact["metrics"]}
        mark = " ★" if v["name"] == chosen else (" ◆" if v["name"] in front else "")
        rows.append(
            [v["name"] + mark, " → ".join(v.get("blocks") or []) or "(base steps)", artifact["format"]]
            + [format_cell(metrics[c]) if c in metrics else "-" for c in columns]
            + [_seconds(v)]
        )
    if rows:
        out += ["## Variants", "", "★ chosen, ◆ on the Pareto front.", ""]
        out += _table(["variant", "blocks", "format", *columns, "build time"], rows)
        out.append("")
    for plot in results.get("plots", []):
        out += [f"![{plot}]({plot})", ""]
    unmeasured = [v for v in variants if v["name"] not in by_label]
    if unmeasured:
        out += ["## Variants without figures", ""]
        out += _table(
            ["variant", "blocks", "status", "why"],
            [[v["name"], " → ".join(v.get("blocks") or []), v["status"], v.get("note") or ""] for v in unmeasured],
        )
        out.append("")
    recipes = [v for v in variants if v.get("config")]
    if recipes:
        out += ["## Recipes", "", "Steps each variant adds after the base steps.", ""]
        out += [f"- **{v['name']}**: " + " → ".join(_step_text(s) for s in v["config"]) for v in recipes]
        out.append("")
    out += ["## Search", ""]
    stopped = (
        " The time budget ran out; variants not started are listed above."
        if search.get("stopped_by_time_budget")
        else ""
    )
    time_budget = search.get("time_budget_s")
    out.append(
        f"Strategy `{search.get('strategy')}`: {search.get('built', 0)} of {search.get('total', 0)} variant(s) built"
        + (f" within a time budget of {time_budget:g} s" if time_budget else "")
        + f"; executor `{results.get('executor')}`; the study took {results.get('seconds', 0):.1f} s.{stopped}"
    )
    out.append("")
    notes = _notes(results)
    if notes:
        out += ["## Warnings", ""]
        out += [f"- {n}" for n in notes]
        out.append("")
    out += _measurement(results)
    return "\n".join(out + _libraries(results))


def write_report(run_dir: Path, results: dict[str, Any]) -> Path:
    """Write report.md (and its PNG plots) into the run directory; return the report's path."""
    from slimkit.plots import render_plots

    try:
        plots = render_plots(results, run_dir)
    except Exception as exc:
        plots = []
        results = results | {"warnings": [*results.get("warnings", []), f"plots not drawn: {exc}"]}
    results = results | {"plots": [p.name for p in plots]}
    path = run_dir / "report.md"
    write_text_atomic(path, render_markdown(results))
    return path
