"""slimkit: make transformer classifiers cheaper to run, and prove it with honest measurements.

Public names are imported lazily so that ``import slimkit`` (and ``slimkit --help``) stay fast:
nothing heavy, not even pydantic, is imported until it is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from slimkit.hookspecs import hookimpl

if TYPE_CHECKING:
    from slimkit.artifacts import Artifact
    from slimkit.context import MeasureContext, StepContext
    from slimkit.errors import SlimkitError
    from slimkit.hardware import Hardware
    from slimkit.metrics import Metric
    from slimkit.planner import Plan
    from slimkit.plugins import Plugins
    from slimkit.predictor import Predictor
    from slimkit.recipes import Recipe
    from slimkit.runner import RunResult
    from slimkit.spec import Pipeline, load_pipeline
    from slimkit.techniques import KEY_WHEN_SET, Goal, HardwareSupport, NoConfig, Stage, Technique

__all__ = [
    "KEY_WHEN_SET",
    "Artifact",
    "Goal",
    "Hardware",
    "HardwareSupport",
    "MeasureContext",
    "Metric",
    "NoConfig",
    "Pipeline",
    "Plan",
    "Plugins",
    "Predictor",
    "Recipe",
    "RunResult",
    "SlimkitError",
    "Stage",
    "StepContext",
    "Technique",
    "hookimpl",
    "load_pipeline",
]

_LAZY = {
    "Artifact": "slimkit.artifacts",
    "MeasureContext": "slimkit.context",
    "StepContext": "slimkit.context",
    "SlimkitError": "slimkit.errors",
    "Hardware": "slimkit.hardware",
    "Metric": "slimkit.metrics",
    "Plan": "slimkit.planner",
    "Plugins": "slimkit.plugins",
    "Predictor": "slimkit.predictor",
    "Recipe": "slimkit.recipes",
    "RunResult": "slimkit.runner",
    "Pipeline": "slimkit.spec",
    "load_pipeline": "slimkit.spec",
    "KEY_WHEN_SET": "slimkit.techniques",
    "Goal": "slimkit.techniques",
    "HardwareSupport": "slimkit.techniques",
    "NoConfig": "slimkit.techniques",
    "Stage": "slimkit.techniques",
    "Technique": "slimkit.techniques",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'slimkit' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
