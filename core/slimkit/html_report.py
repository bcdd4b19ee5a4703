"""``report.html``: the report as one self-contained page (no network at view time).

The page embeds the figures from results.json as JSON and draws, with a little inline JavaScript:
the table of every measured model (click a header to sort), accuracy against latency and against
size as SVG charts with the Pareto front marked, and for the model under the pointer (or clicked,
in the table or a chart) its recipe and warnings. Built from results.json alone, like report.md.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from slimkit.artifacts import write_text_atomic
from slimkit.pareto import pareto_front
from slimkit.plots import chart_axes, points
from slimkit.report import compact_cell, format_cell, metric_columns, options_text
from slimkit.results import AnyResults, MeasuredArtifact, StudyResults

ASSET = Path(__file__).with_name("report_page.html")


def _recipe(results: AnyResults, label: str) -> list[str]:
    """A measured model's steps, as lines ('name: technique (options)')."""
    lines = []
    for step in results.steps_of(label):
        options = options_text(step.config)
        lines.append(f"{step.name}: {step.technique}" + (f" ({options})" if options else ""))
    return lines


def _warnings(results: AnyResults) -> dict[str, list[str]]:
    if isinstance(results, StudyResults):
        return {v.name: list(v.warnings) for v in results.variants}
    return {}


def _front(artifacts: list[MeasuredArtifact], x: str, y: str) -> list[str]:
    return [label for label, _, _ in pareto_front(points(artifacts, x, y))]


def page_data(results: AnyResults) -> dict[str, Any]:
    """Everything the page draws, as plain JSON."""
    artifacts = results.artifacts
    accuracy, x_names = chart_axes(results)  # the PNG plots' axes: a study's budget metric
    columns = metric_columns(artifacts, ("speed", "memory", "size", "accuracy"))
    warnings = _warnings(results)
    chosen = results.selection.chosen if isinstance(results, StudyResults) and results.selection else None
    rows = []
    for a in artifacts:
        by_name = {m.name: m for m in a.metrics}
        rows.append({
            "label": a.label, "format": a.format, "chosen": a.label == chosen,
            "cells": {n: compact_cell(by_name[n]) if n in by_name else "—" for n in columns},
            "titles": {n: format_cell(by_name[n]) for n in columns if n in by_name},
            "values": {n: by_name[n].value for n in columns if n in by_name},
            "recipe": _recipe(results, a.label), "warnings": warnings.get(a.label, []),
        })  # fmt: skip
    charts = [{"x": x, "y": accuracy, "front": _front(artifacts, x, accuracy)} for x in x_names] if accuracy else []
    return {
        "title": f"slimkit {'study' if isinstance(results, StudyResults) else 'run'}: {results.title}",
        "outcome": f"{results.outcome or 'done'} (exit code {results.exit_code})", "baseline": results.baseline,
        "columns": columns, "rows": rows, "charts": charts,
    }  # fmt: skip


def render_html(results: AnyResults) -> str:
    data = json.dumps(page_data(results)).replace("</", "<\\/")  # no '</script>' inside the script
    page = ASSET.read_text(encoding="utf-8")
    return page.replace("{{TITLE}}", html.escape(results.title)).replace("{{DATA}}", data)


def write_html_report(run_dir: Path, results: AnyResults) -> Path:
    path = run_dir / "report.html"
    write_text_atomic(path, render_html(results))
    return path
