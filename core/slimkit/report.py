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
        return f"{value / 1e6:.2f} MB" if value >= 1e5 else f"{value / 1e3:.1f} kB"
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


def metric_columns(artifacts: list[dict[str, Any]]) -> list[str]:
    kinds: dict[str, str] = {}
    for artifact in artifacts:
        for metric in artifact["metrics"]:
            kinds.setdefault(metric["name"], metric.get("kind", "info"))
    return sorted(kinds, key=lambda n: (KIND_ORDER.get(kinds[n], 9), n))


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def render_markdown(results: dict[str, Any]) -> str:
    artifacts: list[dict[str, Any]] = results.get("artifacts", [])
    columns = metric_columns(artifacts)
    out = [f"# slimkit run: {results.get('pipeline')}", ""]
    hw = results.get("hardware") or {}
    out.append(
        f"Device `{results.get('device')}` on {hw.get('cpu_model', '?')} ({hw.get('physical_cores', '?')} cores; "
        f"flags: {', '.join(hw.get('cpu_flags', [])) or 'none'}). Baseline: **{results.get('baseline')}**. "
        "Ratios are baseline / candidate for latency, size and memory (higher is better); "
        "accuracy deltas are in points."
    )
    out.append("")
    if artifacts:
        out.append("## Results")
        out.append("")
        rows = []
        for artifact in artifacts:
            by_name = {m["name"]: m for m in artifact["metrics"]}
            rows.append(
                [artifact["label"], artifact.get("produced_by") or "-", artifact["format"]]
                + [format_cell(by_name[c]) if c in by_name else "-" for c in columns]
            )
        out += _table(["model", "technique", "format", *columns], rows)
        out.append("")
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
    notes = list(results.get("warnings", []))
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
