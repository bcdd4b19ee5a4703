"""A technique is a declaration plus a function: slimkit calls the function the declaration names."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slimkit import StepContext, hookimpl
from slimkit.hardware import Hardware
from slimkit.runner import RunResult
from slimkit.spec import Pipeline
from slimkit.techniques import Technique
from toy_plugin import RoundConfig, ToyPlugin, read

SOURCE = {"source": "toy:0.1,0.5,-0.3,0.04", "format": "toy"}


class Declares:
    """A plugin whose only hook is its declaration: no stage hook, no owns() ladder."""

    def __init__(self, implementation: Any) -> None:
        self.implementation = implementation

    @hookimpl
    def register_techniques(self, register):  # type: ignore[no-untyped-def]
        register(
            Technique(
                name="lean.halve",
                stage="quantize",
                summary="Halve every weight.",
                consumes=["toy"],
                config=RoundConfig,
                implementation=self.implementation,
            )
        )


@pytest.fixture
def run(run_pipeline: Callable[..., RunResult], hw: Hardware) -> Callable[..., RunResult]:
    def go(**kw: Any) -> RunResult:
        pipeline = Pipeline(name="lean", model=SOURCE, device="cpu").prune("toy.prune").quantize("lean.halve")
        return run_pipeline(pipeline, hardware=hw, **kw)

    return go


def weights(result: RunResult) -> list[float]:
    return read(result.steps[-1].artifact.path)  # type: ignore[union-attr]


@pytest.mark.parametrize("how", ["path", "function"])
def test_the_declared_function_performs_the_step(run: Any, toy: ToyPlugin, register_plugin: Any, how: str) -> None:
    from dispatch_impl import halve

    register_plugin(Declares("dispatch_impl:halve" if how == "path" else halve), name="lean")
    result = run()
    assert result.exit_code == 0, [s.error for s in result.steps]
    assert weights(result) == [0.0, 0.2, -0.1, 0.0]
    assert result.steps[-1].artifact.metadata == {"halved": 4}  # type: ignore[union-attr]
    # The toy plugin's stage hooks (the older style) still perform its own steps.
    assert toy.executed == ["toy.prune"]


@pytest.mark.parametrize(
    ("implementation", "error"),
    [
        ("dispatch_impl:missing", "AttributeError"),
        ("no_such_module_xyz:run", "ModuleNotFoundError"),
        ("dispatch_impl:NOT_A_FUNCTION", "is not a function"),
    ],
)
def test_an_implementation_that_cannot_be_loaded_fails_the_step_naming_it(
    run: Any, toy: ToyPlugin, register_plugin: Any, implementation: str, error: str
) -> None:
    register_plugin(Declares(implementation), name="lean")
    result = run()
    assert result.exit_code == 1
    assert result.steps[-1].error is not None and error in result.steps[-1].error
    assert "technique 'lean.halve'" in result.steps[-1].error


def test_a_malformed_implementation_path_is_refused_at_registration() -> None:
    with pytest.raises(ValueError, match=r"is not 'package\.module:function'"):
        Technique(name="lean.halve", stage="quantize", summary="s", consumes=["toy"], implementation="halve")


def test_nothing_performing_a_technique_is_one_line(run: Any, toy: ToyPlugin, register_plugin: Any) -> None:
    register_plugin(Declares(None), name="lean")
    result = run()
    assert result.steps[-1].error == (
        "PluginError: step 'lean.halve': plugin 'lean' declares 'lean.halve' but nothing performed it: the "
        "declaration names no implementation and no 'quantize' hook returned an artifact (fix: declare "
        "implementation='package.module:function' for 'lean.halve')"
    )


def test_a_wrapper_stage_hook_wraps_a_declared_step(run: Any, toy: ToyPlugin, register_plugin: Any) -> None:
    seen: list[str] = []

    class Timer:
        @hookimpl(wrapper=True)
        def quantize(self, step: StepContext[Any]) -> Any:
            seen.append(f"before {step.name}")
            artifact = yield
            seen.append(f"after {step.name}: {type(artifact).__name__}")
            return artifact

    register_plugin(Declares("dispatch_impl:halve"), name="lean")
    register_plugin(Timer(), name="timer")
    assert run().exit_code == 0
    assert seen == ["before lean.halve", "after lean.halve: Artifact"]


def test_a_declared_function_that_returns_no_artifact_is_named(
    run: Any, toy: ToyPlugin, register_plugin: Any, tmp_path: Path
) -> None:
    def sloppy(step: StepContext[Any]) -> Any:
        (step.output_dir / "weights.json").write_text(json.dumps([1.0]))
        return str(step.output_dir)

    register_plugin(Declares(sloppy), name="lean")
    result = run()
    assert result.steps[-1].error is not None
    assert "the 'quantize' hook returned str, not an Artifact" in result.steps[-1].error
