"""PNG plots from results.json: accuracy against latency and against size, Pareto front marked.

matplotlib is optional (``pip install slimkit[plots]``; slimkit-transformers brings it): without
it, reports simply have no plots.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from slimkit.pareto import pareto_front, primary_accuracy, primary_latency
from slimkit.results import AnyResults, MeasuredArtifact, StudyResults, metric_names


def points(artifacts: list[MeasuredArtifact], x_name: str, y_name: str) -> list[tuple[str, float, float]]:
    out = []
    for a in artifacts:
        by_name = {m.name: m.value for m in a.metrics}
        x, y = by_name.get(x_name), by_name.get(y_name)
        if x is not None and y is not None:
            out.append((a.label, float(x), float(y)))
    return out


# Where a point's label may go, tried in order (offset points, horizontal alignment): variants
# with nearly equal figures (bf16 and NF4, a graph with and without ORT's optimizer) would
# otherwise print their names over each other.
_LABEL_SPOTS = ((4, 4, "left"), (4, -11, "left"), (-4, 4, "right"), (-4, -11, "right"), (4, 14, "left"),
                (4, -21, "left"), (-4, 14, "right"), (-4, -21, "right"))  # fmt: skip


def place_labels(fig: Any, ax: Any, pts: list[tuple[str, float, float]]) -> list[Any]:
    """Annotate each point with its name at the first spot that overlaps no earlier label."""
    fig.canvas.draw()  # fixes the axis limits, so that label boxes are where they will be drawn
    renderer = fig.canvas.get_renderer()
    placed: list[Any] = []
    boxes: list[Any] = []
    for lbl, x, y in pts:
        for dx, dy, align in _LABEL_SPOTS:
            note = ax.annotate(lbl, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=8, ha=align)
            box = note.get_window_extent(renderer)
            inside = fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1)
            if (inside and not any(box.overlaps(b) for b in boxes)) or (dx, dy, align) == _LABEL_SPOTS[-1]:
                break
            note.remove()
        placed.append(note)
        boxes.append(box)
    return placed


def chart_axes(results: AnyResults) -> tuple[str | None, list[str]]:
    """The accuracy metric the charts plot (a study's: the one its budget is about) and their x
    axes (the primary latency, size on disk), for the PNG plots and report.html alike."""
    artifacts = results.artifacts
    selection = results.selection if isinstance(results, StudyResults) else None
    y_name = (selection.accuracy if selection else None) or primary_accuracy(metric_names(artifacts, "accuracy"))
    names = metric_names(artifacts)
    return y_name, [x for x in (primary_latency(names), "size_bytes" if "size_bytes" in names else None) if x]


def render_plots(results: AnyResults, out_dir: Path) -> list[Path]:
    """Write the plots next to the report; return their paths (none without matplotlib or data)."""
    if importlib.util.find_spec("matplotlib") is None:
        return []
    artifacts = results.artifacts
    # A study plots the accuracy metric its budget is about, and stars the variant it chose.
    selection = results.selection if isinstance(results, StudyResults) else None
    chosen = selection.chosen if selection else None
    y_name, x_names = chart_axes(results)
    if y_name is None:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for x_name in x_names:
        x_label, scale = ("size on disk (MB)", 1e-6) if x_name == "size_bytes" else ("latency (ms, median)", 1.0)
        pts = [(lbl, x * scale, y * 100) for lbl, x, y in points(artifacts, x_name, y_name)]
        if len(pts) < 2:
            continue
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
        ax.scatter([p[1] for p in pts], [p[2] for p in pts], color="tab:blue", zorder=3)
        star = [p for p in pts if p[0] == chosen]
        if star:
            ax.scatter([star[0][1]], [star[0][2]], marker="*", s=220, color="tab:orange", zorder=4,
                       label=f"chosen: {star[0][0]}")  # fmt: skip
        front = pareto_front(pts)
        ax.plot([p[1] for p in front], [p[2] for p in front], color="tab:red", lw=1.2, ls="--",
                label="Pareto front", zorder=2)  # fmt: skip
        ax.set_xlabel(f"{x_label}: {x_name}")
        ax.set_ylabel(f"{y_name} (points)")
        ax.set_title(f"{results.title}: {y_name} vs {x_name}")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        place_labels(fig, ax, pts)  # last: the spots are measured on the final layout
        path = out_dir / f"{y_name}-vs-{'size' if x_name == 'size_bytes' else 'latency'}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written
