"""Markdown report made from results.json alone, so it can be rebuilt at any time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slimkit.errors import SlimkitError

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
    artifacts: list[dict[str, Any]] = results.get("artifacts", [])
    out = [f"# slimkit run: {results.get('pipeline')}", ""]
    hw = results.get("hardware") or {}
    out.append(
        f"Device `{results.get('device')}` on {hw.get('cpu_model', '?')} ({hw.get('physical_cores', '?')} cores; "
        f"flags: {', '.join(hw.get('cpu_flags', [])) or 'none'}). Baseline: **{results.get('baseline')}**. "
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
    notes = metric_warnings(artifacts) + list(results.get("warnings", []))
    notes += [f"measurer {p!r} failed: {e}" for p, e in (results.get("measure_errors") or {}).items()]
    for artifact in artifacts:
        for flag in (artifact.get("metadata") or {}).get("warnings", []):
            notes.append(f"{artifact['label']}: {flag}")
    if notes:
        out.append("## Warnings")
        out.append("")
        out += [f"- {n}" for n in notes]
        out.append("")
    libs = results.get("libraries") or {}
    if libs:
        out.append("Libraries: " + ", ".join(f"{k} {v}" for k, v in sorted(libs.items())))
        out.append("")
    return "\n".join(out)


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
    path.write_text(render_markdown(results), encoding="utf-8")
    return path
