"""Several measurement sessions: each figure's median across sessions, each ratio's median and range."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from slimkit import Metric, hookimpl
from slimkit.cli import cli
from slimkit.hardware import Hardware
from slimkit.metrics import compare
from slimkit.report import render_markdown
from slimkit.results import load_results
from slimkit.sessions import combine_sessions, measure_sessions
from slimkit.spec import MeasureSpec
from slimkit.study import study_from_dict
from slimkit.study.runner import run_study
from toy_plugin import ToyPlugin


def latency(ms: float, **spread: float) -> Metric:
    return Metric(name="latency_ms.b1.s8", value=ms, unit="ms", kind="speed", better="lower", spread=spread)


def test_a_combined_figure_is_the_median_across_sessions_and_keeps_every_value() -> None:
    sessions = [{"a": [latency(10, p90=12)]}, {"a": [latency(30, p90=40)]}, {"a": [latency(12, p90=13)]}]
    (metric,) = combine_sessions(sessions)["a"]
    assert metric.value == 12 and metric.sessions == [10, 30, 12]
    assert metric.spread == {"p90": 13} and metric.details["session_spreads"][1] == {"p90": 40}


def test_each_sessions_varying_details_are_kept_and_the_constant_ones_once() -> None:
    def blocks(*ms: float) -> Metric:
        return latency(ms[0]).model_copy(update={"details": {"block_medians_ms": list(ms), "threads": 2}})

    (metric,) = combine_sessions([{"a": [blocks(10, 11)]}, {"a": [latency(9)]}, {"a": [blocks(12, 13)]}])["a"]
    # Per-round ratios pair each session's block medians with the baseline's of the same session.
    assert metric.details["session_block_medians_ms"] == [[10, 11], None, [12, 13]]
    assert metric.details["session_threads"] == [2, None, 2]  # the second session did not record it
    (same,) = combine_sessions([{"a": [blocks(10, 11)]}, {"a": [blocks(10, 11)]}])["a"]
    assert same.details["block_medians_ms"] == [10, 11] and "session_block_medians_ms" not in same.details
    assert "session_threads" not in same.details


def test_a_session_without_the_figure_counts_as_missing_not_as_zero() -> None:
    (metric,) = combine_sessions([{"a": [latency(10)]}, {"a": []}, {"a": [latency(14)]}])["a"]
    assert metric.value == 12 and metric.sessions == [10, None, 14]


def test_ratios_pair_figures_of_the_same_session() -> None:
    """Baseline 10, 20, 10 ms; candidate 5, 4, 2 ms: per-session ratios 2, 5, 5."""
    base = latency(10).model_copy(update={"sessions": [10, 20, 10]})
    candidate = latency(4).model_copy(update={"sessions": [5, 4, 2]})
    assert compare(candidate, base) == {"ratio": 5.0, "ratio_min": 2.0, "ratio_max": 5.0}
    # One session: the plain ratio of the two figures, no range.
    assert compare(latency(5), latency(10)) == {"ratio": 2.0}


def test_sessions_are_spaced_apart_and_a_measurer_failing_in_some_is_named_with_them() -> None:
    calls: list[str] = []
    pauses: list[float] = []

    def once() -> tuple[dict[str, list[Metric]], dict[str, str]]:
        calls.append("measure")
        errors = {"flaky": "boom"} if len(calls) == 2 else {}
        return {"a": [latency(len(calls))]}, errors | {"broken": "always"}

    settings = MeasureSpec(sessions=3, session_gap_s=7)
    lines: list[str] = []
    metrics, errors = measure_sessions(once, settings, announce=lines.append, sleep=pauses.append)
    assert len(calls) == 3 and pauses == [7, 7]
    assert metrics["a"][0].sessions == [1, 2, 3]
    assert errors == {"broken": "always", "flaky": "session 2: boom"}
    assert "measurement session 3/3" in lines


class DriftingLatency:
    """The toy's latency, times a drift that changes from one measurement session to the next,
    and a candidate that gains more in some sessions than in others."""

    def __init__(self) -> None:
        self.session = 0

    @hookimpl
    def measure(self, artifacts: Sequence[Any], context: Any) -> dict[str, list[Metric]]:
        drift, gain = [(1.0, 2.0), (3.0, 5.0), (2.0, 3.0)][self.session]
        self.session += 1
        out = {}
        for a in artifacts:
            ms = drift * 10 / (gain if a.label != "baseline" else 1)
            out[a.key] = [latency(ms)]
        return out


def test_a_study_measured_in_three_sessions_reports_median_ratios_with_their_range(
    tmp_path: Path, register_plugin: Any, toy: ToyPlugin, slimkit_plugins: Any, hw: Hardware
) -> None:
    drifting = DriftingLatency()
    register_plugin(drifting, name="drift")
    data = {
        "name": "drift",
        "model": {"source": "toy:0.5,0.2", "format": "toy"},
        "device": "cpu",
        "output_dir": str(tmp_path / "study"),
        "blocks": {"round": {"technique": "toy.round"}},
        "variants": [{"blocks": ["round"]}],
        "search": {"objective": "latency_ms.b1.s8", "budget": {"metric": "nonzero_share", "max_drop_points": 50}},
        "measure": {"sessions": 3, "session_gap_s": 0},
    }
    result = run_study(study_from_dict(data, base_dir=tmp_path), plugins=slimkit_plugins, hardware=hw)
    assert drifting.session == 3
    variant = next(a for a in result.results.artifacts if a.label == "round")
    figure = variant.metric("latency_ms.b1.s8")
    assert figure is not None and figure.sessions == pytest.approx([5.0, 6.0, 20 / 3])
    # The median of the per-session ratios (2, 5, 3), not the ratio of the medians (20 / 6).
    assert figure.vs_baseline == {"ratio": 3.0, "ratio_min": 2.0, "ratio_max": 5.0}
    assert "(3.00x the baseline's)" in (result.results.selection.reason or "")
    report = render_markdown(load_results(tmp_path / "study"))
    assert "3.00x (2.00-5.00)" in report and "3 measurement sessions" in report


@pytest.mark.parametrize("bad", ["0", "101", "x"])
def test_a_bad_session_count_is_one_line(bad: str) -> None:
    result = CliRunner().invoke(cli, ["study", "nowhere.toml", "--sessions", bad])
    assert result.exit_code == 2 and "--sessions" in result.output
