"""The record every measurer returns, so the core can compare, tabulate and plot any metric."""

from __future__ import annotations

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


def compare(metric: Metric, baseline: Metric | None) -> dict[str, float | None]:
    """Ratio (speed, size, memory) or delta in points (accuracy) against the baseline's figure."""
    if baseline is None or metric.value is None or baseline.value is None:
        return {}
    if metric.kind == "accuracy":
        return {"delta_points": round((metric.value - baseline.value) * 100, 4)}
    if metric.kind in ("speed", "size", "memory") and metric.value > 0 and baseline.value > 0:
        ratio = baseline.value / metric.value if metric.better == "lower" else metric.value / baseline.value
        return {"ratio": round(ratio, 4)}
    return {}
