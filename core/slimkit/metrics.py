"""The record every measurer returns, so the core can compare, tabulate and plot any metric."""

from __future__ import annotations

from statistics import median
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MetricKind = Literal["speed", "size", "memory", "accuracy", "info"]


class Metric(BaseModel):
    """One measured figure of one artifact.

    Accuracy metrics are fractions in [0, 1]; reports show their deltas in points (x100).
    Speed, size and memory metrics are compared as ratios to the baseline.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Stable identifier, e.g. 'latency_ms.b1.s128' or 'micro_f1'.")
    value: float | None = Field(description="The figure; None when it could not be measured (see details).")
    unit: str = Field(default="", description="'ms', 'bytes', 'items/s', 'fraction', ...")
    kind: MetricKind = Field(default="info", description="How reports compare it to the baseline.")
    better: Literal["lower", "higher", "none"] = Field(default="none", description="Direction of improvement.")
    spread: dict[str, float] = Field(
        default_factory=dict, description="Dispersion next to the value, e.g. {'p90': 13.1, 'p99': 15.0}."
    )
    details: dict[str, Any] = Field(
        default_factory=dict, description="Conditions of the measurement (threads, repeats, batch, ...)."
    )
    source: str | None = Field(default=None, description="Set by slimkit: the plugin that measured it.")
    sessions: list[float | None] = Field(
        default_factory=list,
        exclude_if=lambda sessions: not sessions,  # files of one session read and write back unchanged
        description="Set by slimkit when the measurement was repeated: the value in each session, in order "
        "(``value`` is their median).",
    )


def compare(metric: Metric, baseline: Metric | None) -> dict[str, float]:
    """Ratio (speed, size, memory) or delta in points (accuracy) against the baseline's figure.

    When both were measured in the same several sessions, the ratio is the median of the
    per-session ratios, with their lowest and highest as ``ratio_min`` and ``ratio_max``: a ratio
    pairs figures of one session only, since machines drift between sessions.
    """
    if baseline is None:
        return {}
    paired = _per_session(metric, baseline)
    if len(paired) > 1 and metric.kind in ("speed", "size", "memory"):
        ratios = sorted(r for r in (_ratio(metric, value, base) for value, base in paired) if r is not None)
        if not ratios:
            return {}
        return {"ratio": round(median(ratios), 4), "ratio_min": round(ratios[0], 4), "ratio_max": round(ratios[-1], 4)}
    if metric.value is None or baseline.value is None:
        return {}
    if metric.kind == "accuracy":
        return {"delta_points": round((metric.value - baseline.value) * 100, 4)}
    ratio = _ratio(metric, metric.value, baseline.value)
    return {} if ratio is None else {"ratio": round(ratio, 4)}


def _per_session(metric: Metric, baseline: Metric) -> list[tuple[float, float]]:
    """The (candidate, baseline) pairs of the sessions where both were measured."""
    if len(metric.sessions) != len(baseline.sessions):
        return []
    return [(v, b) for v, b in zip(metric.sessions, baseline.sessions, strict=True) if v is not None and b is not None]


def _ratio(metric: Metric, value: float, base: float) -> float | None:
    if metric.kind not in ("speed", "size", "memory") or value <= 0 or base <= 0:
        return None
    return base / value if metric.better == "lower" else value / base
