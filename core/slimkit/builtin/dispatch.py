"""Built-in plugin: performs each technique through the implementation its declaration names.

A technique declared with ``implementation="package.module:function"`` needs no stage hook: these
``trylast`` implementations of the five stage hooks call the declaring plugin's function for the
step, and only it. Any plugin's own stage hook still runs first (the older style, and plugins that
take over a step), and ``wrapper=True`` stage hooks wrap every step, whichever plugin performs it
(timing, logging, tracking).
"""

from __future__ import annotations

from typing import Any

from slimkit.artifacts import Artifact
from slimkit.context import StepContext
from slimkit.hookspecs import hookimpl


def _perform(step: StepContext[Any]) -> Artifact | None:
    implementation = step.technique.load_implementation()
    if implementation is None:
        return None
    return implementation(step)  # type: ignore[no-any-return]  # Plugins.run_stage checks the type


@hookimpl(trylast=True)
def train(step: StepContext[Any]) -> Artifact | None:
    return _perform(step)


@hookimpl(trylast=True)
def prune(step: StepContext[Any]) -> Artifact | None:
    return _perform(step)


@hookimpl(trylast=True)
def distill(step: StepContext[Any]) -> Artifact | None:
    return _perform(step)


@hookimpl(trylast=True)
def quantize(step: StepContext[Any]) -> Artifact | None:
    return _perform(step)


@hookimpl(trylast=True)
def export(step: StepContext[Any]) -> Artifact | None:
    return _perform(step)
