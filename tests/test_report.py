"""Metrics comparison, the Markdown report, and the atomic writes that keep runs resumable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from slimkit.artifacts import atomic_dir, disk_size, stable_hash, write_json_atomic
from slimkit.metrics import Metric, compare
from slimkit.pareto import primary_latency
from slimkit.report import format_cell, format_value, metric_columns, render_markdown
from slimkit.results import ResultMetric, RunResults, parse_results


def metric(**kw: Any) -> Metric:
    return Metric.model_validate({"name": "m", "value": 1.0} | kw)


def test_compare() -> None:
    base_latency = metric(kind="speed", better="lower", value=10.0)
    assert compare(metric(kind="speed", better="lower", value=4.0), base_latency) == {"ratio": 2.5}
    assert compare(metric(kind="speed", better="higher", value=30.0), metric(value=10.0)) == {"ratio": 3.0}
    assert compare(metric(kind="accuracy", value=0.8), metric(value=0.85)) == {"delta_points": -5.0}
    assert compare(metric(kind="size", better="lower", value=0.0), base_latency) == {}
    assert compare(metric(kind="info"), metric()) == {}
    assert compare(metric(value=None), metric()) == {}
    assert compare(metric(), None) == {}


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (None, "ms", "n/a"),
        (2_500_000.0, "bytes", "2.50 MB"),
        (2_500.0, "bytes", "2.5 kB"),
        (0.8512, "fraction", "85.12"),
        (12.345, "ms", "12.35 ms"),
        (123.456, "items/s", "123.5 items/s"),
        (3.0, "", "3"),
        (7.0, "layers", "7 layers"),
    ],
)
def test_format_value(value: float | None, unit: str, text: str) -> None:
    assert format_value(metric(value=value, unit=unit)) == text


def test_format_cell() -> None:
    latency = ResultMetric(name="l", value=10.0, unit="ms", spread={"p90": 12.0}, vs_baseline={"ratio": 2.0})
    assert format_cell(latency) == "10.00 ms (p90 12.00) · 2.00x"
    delta = ResultMetric(name="f1", value=0.5, unit="fraction", vs_baseline={"delta_points": -1.5})
    assert format_cell(delta) == "50.00 · -1.50"


def results(**overrides: Any) -> dict[str, Any]:
    m = {"unit": "", "spread": {}, "vs_baseline": {}}
    hardware = {"cpu_model": "Test CPU", "arch": "x86_64", "logical_cores": 8, "physical_cores": 4}
    return {
        "schema": "slimkit.results/2",
        "pipeline": "demo",
        "device": "cpu",
        "baseline": "source",
        "hardware": hardware | {"cpu_flags": ["avx2"], "memory_bytes": None},
        "artifacts": [
            {
                "label": "source",
                "key": "k0",
                "path": "$SLIMKIT_CACHE/toy-k0",
                "produced_by": None,
                "format": "toy",
                "metadata": {},
                "metrics": [
                    m | {"name": "f1", "value": 0.9, "unit": "fraction", "kind": "accuracy"},
                    m | {"name": "latency", "value": 10.0, "unit": "ms", "kind": "speed"},
                ],
            },
            {
                "label": "small|model",
                "key": "k1",
                "path": "steps/small-k1/model",
                "produced_by": "toy.round",
                "format": "toy",
                "metadata": {"warnings": ["accuracy fell"]},
                "metrics": [m | {"name": "latency", "value": 5.0, "unit": "ms", "kind": "speed"}],
            },
        ],
        "steps": [
            {
                "index": 1,
                "name": "small|model",
                "technique": "toy.round",
                "stage": "quantize",
                "plugin": "toy",
                "plugin_version": "1.0",
                "status": "done",
                "seconds": 0.25,
                "error": None,
            },
            {
                "index": 2,
                "name": "x",
                "technique": "toy.fail",
                "stage": "prune",
                "plugin": "toy",
                "plugin_version": None,
                "status": "skipped",
                "seconds": None,
                "error": "step 1 failed",
            },
        ],
        "warnings": ["a warning"],
        "measure_errors": {"extra": "ValueError: no"},
        "libraries": {"pluggy": "1.0", "slimkit": "0.1.0"},
    } | overrides


def read(data: dict[str, Any]) -> RunResults:
    document = parse_results(data, Path("results.json"))
    assert isinstance(document, RunResults)
    return document


def test_metric_columns_order_by_kind_then_name() -> None:
    artifacts = read(results()).artifacts
    assert metric_columns(artifacts, ("speed", "memory", "size", "accuracy")) == ["latency", "f1"]
    assert metric_columns(artifacts, ("accuracy",)) == ["f1"]


def test_metric_warnings_are_listed_loudly() -> None:
    data = results()
    data["artifacts"][1]["metrics"].append(
        {"name": "agreement", "value": 0.1, "kind": "accuracy", "details": {"warning": "head lost"}}
    )
    text = render_markdown(read(data))
    assert "- **small|model** (agreement): head lost" in text


def test_render_markdown() -> None:
    assert render_markdown(read(results())) == "\n".join(
        [
            "# slimkit run: demo",
            "",
            "Device `cpu` on Test CPU (4 cores; flags: avx2). Baseline: **source**. Ratios are baseline / candidate "
            "for latency, size and memory (higher is better); accuracy deltas are in points.",
            "",
            "## Speed, memory and size",
            "",
            "| model | technique | format | latency |",
            "|---|---|---|---|",
            "| source | - | toy | 10.00 ms |",
            "| small\\|model | toy.round | toy | 5.00 ms |",
            "",
            "## Accuracy",
            "",
            "| model | technique | format | f1 |",
            "|---|---|---|---|",
            "| source | - | toy | 90.00 |",
            "| small\\|model | toy.round | toy | - |",
            "",
            "## Steps",
            "",
            "| # | step | technique | plugin | status | time | error |",
            "|---|---|---|---|---|---|---|",
            "| 1 | small\\|model | toy.round | toy 1.0 | done | 0.2 s |  |",
            "| 2 | x | toy.fail | toy | skipped | - | step 1 failed |",
            "",
            "## Warnings",
            "",
            "- a warning",
            "- measurer 'extra' failed: ValueError: no",
            "- small|model: accuracy fell",
            "",
            "Libraries: pluggy 1.0, slimkit 0.1.0",
            "",
        ]
    )


def test_render_markdown_says_how_it_was_timed() -> None:
    settings = {"batch_sizes": [1], "sequence_lengths": [128], "warmup": 5, "repeats": 20, "rounds": 3}
    data = results(measure_settings=settings)
    latency = data["artifacts"][0]["metrics"][1]
    latency |= {"name": "latency_ms.b1.s128", "details": {"threads": 2, "omp_wait_policy": "PASSIVE"}}
    text = render_markdown(read(data))
    assert (
        "## Measurement\n\nMeasured in one session, blocks rotated round-robin across models: batch sizes [1], "
        "sequence lengths [128], 5 warm-up and 20 timed calls per block, 3 round(s), 2 thread(s), "
        "OMP_WAIT_POLICY PASSIVE.\n"
    ) in text
    assert "## Measurement" not in render_markdown(read(results(measure_settings=settings | {"latency": False})))


def test_render_markdown_of_an_empty_run() -> None:
    text = render_markdown(RunResults(pipeline="empty"))
    assert text.startswith("# slimkit run: empty\n\nDevice `None` on ? (? cores; flags: none).")
    assert "## Accuracy" not in text and "## Steps" not in text and "## Warnings" not in text


@pytest.mark.parametrize(
    ("names", "chosen"),
    [
        (["b1.dyn", "b1.s128", "b32.s128", "b1.s64"], "b1.s128"),  # padded before real length, longest first
        (["b32.s128", "b1.dyn"], "b1.dyn"),  # batch 1 first
        (["b32.s128", "b8.s64"], "b8.s64"),  # smallest batch first
        ([], None),
    ],
)
def test_primary_latency_prefers_batch_one_padded(names: list[str], chosen: str | None) -> None:
    assert primary_latency([f"latency_ms.{n}" for n in names] + ["micro_f1"]) == (chosen and f"latency_ms.{chosen}")


def test_stable_hash() -> None:
    assert stable_hash({"a": 1, "b": 2}) == stable_hash({"b": 2, "a": 1})
    assert stable_hash("x", 1) != stable_hash("x", 2)
    assert len(stable_hash("x")) == 16
    assert len(stable_hash("x", length=8)) == 8


def test_write_json_atomic(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "data.json"
    write_json_atomic(path, {"p": Path("/x")})
    assert json.loads(path.read_text()) == {"p": "/x"}

    class Unprintable:
        def __str__(self) -> str:
            raise TypeError("cannot be written")

    with pytest.raises(TypeError, match="cannot be written"):
        write_json_atomic(path, {"x": Unprintable()})
    assert json.loads(path.read_text()) == {"p": "/x"}  # the old file is intact
    assert [p.name for p in path.parent.iterdir()] == ["data.json"]  # no temporary file left


def test_atomic_dir(tmp_path: Path) -> None:
    final = tmp_path / "steps" / "one"
    with atomic_dir(final) as scratch:
        assert scratch.parent == final.parent and scratch.name.startswith(".tmp-one-")
        (scratch / "f").write_text("1")
    assert (final / "f").read_text() == "1"
    assert not scratch.exists()

    with pytest.raises(RuntimeError), atomic_dir(final) as scratch:
        (scratch / "f").write_text("2")
        raise RuntimeError
    assert (final / "f").read_text() == "1"  # the finished folder is untouched
    assert sorted(p.name for p in final.parent.iterdir()) == ["one"]

    with atomic_dir(final) as scratch:
        (scratch / "g").write_text("3")
    assert sorted(p.name for p in final.iterdir()) == ["g"]  # replaced as a whole


def test_disk_size(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"x" * 5)
    (tmp_path / "link").symlink_to(tmp_path / "a")
    assert disk_size(tmp_path) == 15
    assert disk_size(tmp_path / "a") == 10
    assert disk_size(tmp_path / "absent") == 0


def test_labels_of_points_with_equal_figures_do_not_overlap() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from slimkit.plots import place_labels

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    pts = [("onnx-int4", 55.0, 51.7), ("onnx-opt-int4", 55.5, 51.7), ("bf16", 55.2, 51.7), ("baseline", 119.0, 52.2)]
    ax.scatter([p[1] for p in pts], [p[2] for p in pts])
    notes = place_labels(fig, ax, pts)
    boxes = [n.get_window_extent(fig.canvas.get_renderer()) for n in notes]
    assert [n.get_text() for n in notes] == [p[0] for p in pts]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    assert all(fig.bbox.contains(b.x1, b.y1) and fig.bbox.contains(b.x0, b.y0) for b in boxes)  # none cut off
    plt.close(fig)
