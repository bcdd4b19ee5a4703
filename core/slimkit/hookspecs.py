"""Every hook slimkit calls, grouped by pipeline phase.

Each docstring has the same shape, which docs/hooks.md is generated from: a summary line; when the
hook fires; one ``:param name:`` line per argument; ``Returns:``; whether it stops at the first
non-None result; the version that added it.

Hooks evolve only by gaining arguments. Implementations take the arguments they need by name and
must not give them default values: pluggy treats a defaulted parameter as optional and may not pass the
caller's value to it (pluggy #442), so slimkit refuses such plugins at registration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from slimkit.artifacts import Artifact
    from slimkit.context import MeasureContext, StepContext
    from slimkit.metrics import Metric
    from slimkit.predictor import Predictor
    from slimkit.recipes import Recipe
    from slimkit.results import Results
    from slimkit.spec import ModelSource, Pipeline, TaskSpec
    from slimkit.techniques import Technique

PROJECT = "slimkit"
_hookspec = pluggy.HookspecMarker(PROJECT)  # private: only slimkit declares hooks
hookimpl = pluggy.HookimplMarker(PROJECT)  # re-exported as slimkit.hookimpl


# -- Registration ---------------------------------------------------------------------------


@_hookspec
def register_techniques(register: Callable[[Technique], None]) -> None:
    """Declare the techniques this plugin offers.

    Fires: once, when the plugin manager is built, for every loaded plugin.

    :param register: call it once per technique with a :class:`slimkit.Technique`; slimkit
        validates the declaration, tags it with the plugin's name and version, and refuses a name
        that another plugin already declared.

    Returns: nothing.

    Added in 0.1.
    """


@_hookspec
def register_recipes(register: Callable[[Recipe], None]) -> None:
    """Declare the recipes this plugin recommends: named chains of steps that ``recipe = "auto"``
    and ``slimkit compress`` try as candidate variants (techniques of other plugins may appear).

    Fires: once, when the plugin manager is built, for every loaded plugin.

    :param register: call it once per recipe with a :class:`slimkit.recipes.Recipe` (or a dict of
        its fields); slimkit validates it, tags it with the plugin's name, and refuses a name that
        another plugin already declared.

    Returns: nothing.

    Added in 0.2.
    """


# -- Model sources --------------------------------------------------------------------------


@_hookspec(firstresult=True)
def resolve_model(source: ModelSource, pipeline: Pipeline, cache_dir: Path) -> Artifact | None:
    """Turn the pipeline's model source into an artifact on disk.

    Fires: once per run, before the first step, to obtain the source model.

    :param source: the pipeline's ``model`` entry (hub id, path, packaged short name, format).
    :param pipeline: the whole pipeline, for its task, device and seed.
    :param cache_dir: a folder shared between runs where conversions (e.g. GGUF to a HF folder)
        can be cached, keyed by the input's content.

    Returns: an :class:`slimkit.Artifact` whose ``key`` identifies the source's content, or None
    when this plugin does not recognise the source.

    Stops at the first non-None result.

    Added in 0.1.
    """


@_hookspec(firstresult=True)
def model_config(source: ModelSource, pipeline: Pipeline, cache_dir: Path) -> dict[str, Any] | None:
    """Read the source model's configuration without loading its weights, for plan-time checks.

    Fires: at plan time, at most once per plan, when a step's technique declares ``check_model``
    and no step before it changes the model's shapes (a prune or distill stage).

    :param source: the pipeline's ``model`` entry (hub id, path, packaged short name, format).
    :param pipeline: the whole pipeline, to resolve relative paths.
    :param cache_dir: the same cache folder as ``resolve_model``'s, where a slow read (e.g. a
        GGUF file's metadata) can be kept.

    Returns: the model's configuration as a dict with Hugging Face ``config.json`` keys
    (``hidden_size``, ``num_attention_heads``, ``intermediate_size``, ...), or None when this
    plugin does not recognise the source or cannot read it without downloading weights.

    Stops at the first non-None result.

    Added in 0.1.
    """


# -- Tasks ----------------------------------------------------------------------------------


@_hookspec
def check_task(task: TaskSpec, pipeline: Pipeline) -> list[str] | None:
    """Check the task's data at plan time, where it is local and cheap to read.

    Fires: at plan time, once per plan, when the pipeline has a ``task``.

    :param task: the pipeline's ``task`` entry, as written (a preset not yet expanded).
    :param pipeline: the whole pipeline, to resolve relative paths.

    Returns: one line per problem found reading the task's local data (an empty file, a missing
    column, a label outside the label list), naming the file, row and field, with the fix; an
    empty list or None when the data is fine or is not yours to read. Never download data here:
    leave data that is not local to the run. Every implementation's problems are listed; one that
    raises is listed as a problem naming the plugin.

    Added in 0.2.
    """


# -- Stages ---------------------------------------------------------------------------------
# A technique's work is done by the function its declaration names (``implementation``): the
# built-in ``dispatch`` plugin implements these five hooks ``trylast`` and calls that function.
# Implement a stage hook yourself only to cut across techniques: ``wrapper=True`` to time, log or
# track every step of a stage, or to take over steps (the older style, still supported: return
# None for steps that are not yours, checked with ``step.owns(name)``).


@_hookspec(firstresult=True)
def train(step: StepContext[Any]) -> Artifact | None:
    """Fine-tune a model (to build a baseline, or to recover accuracy after pruning).

    Fires: for each step whose technique has stage ``train``.

    :param step: the step: its technique, validated config, input artifact, output folder,
        task, hardware and earlier artifacts.

    Returns: ``step.artifact(...)`` after writing the model into ``step.output_dir``, or None
    to leave the step to its technique's declared implementation.

    Stops at the first non-None result.

    Added in 0.1.
    """


@_hookspec(firstresult=True)
def prune(step: StepContext[Any]) -> Artifact | None:
    """Remove weights, neurons, heads, layers or vocabulary.

    Fires: for each step whose technique has stage ``prune``.

    :param step: the step: its technique, validated config, input artifact, output folder,
        task, hardware and earlier artifacts.

    Returns: ``step.artifact(...)`` after writing the model into ``step.output_dir``, or None
    to leave the step to its technique's declared implementation.

    Stops at the first non-None result.

    Added in 0.1.
    """


@_hookspec(firstresult=True)
def distill(step: StepContext[Any]) -> Artifact | None:
    """Train a smaller student to imitate the step's input model.

    Fires: for each step whose technique has stage ``distill``.

    :param step: the step: its technique, validated config, input artifact (the teacher), output
        folder, task, hardware and earlier artifacts.

    Returns: ``step.artifact(...)`` after writing the student into ``step.output_dir``, or None
    to leave the step to its technique's declared implementation.

    Stops at the first non-None result.

    Added in 0.1.
    """


@_hookspec(firstresult=True)
def quantize(step: StepContext[Any]) -> Artifact | None:
    """Store weights (and maybe compute) in fewer bits.

    Fires: for each step whose technique has stage ``quantize``.

    :param step: the step: its technique, validated config, input artifact, output folder,
        task (for calibration data), hardware and earlier artifacts.

    Returns: ``step.artifact(...)`` after writing the model into ``step.output_dir``, or None
    to leave the step to its technique's declared implementation.

    Stops at the first non-None result.

    Added in 0.1.
    """


@_hookspec(firstresult=True)
def export(step: StepContext[Any]) -> Artifact | None:
    """Convert a model to a deployment format (e.g. ONNX).

    Fires: for each step whose technique has stage ``export``.

    :param step: the step: its technique, validated config, input artifact, output folder,
        task, hardware and earlier artifacts.

    Returns: ``step.artifact(...)`` after writing the model into ``step.output_dir``, or None
    to leave the step to its technique's declared implementation.

    Stops at the first non-None result.

    Added in 0.1.
    """


# -- Measurement ----------------------------------------------------------------------------


@_hookspec
def measure(artifacts: Sequence[Artifact], context: MeasureContext) -> dict[str, list[Metric]] | None:
    """Contribute the metrics this plugin can compute for some of the artifacts.

    Fires: once per run after the steps, with the baseline first and every finished step's
    artifact after it, so that a measurer can interleave them in one process.

    :param artifacts: the artifacts to measure; skip those whose ``format`` you cannot load.
    :param context: the baseline, task, measurement settings, hardware and device.

    Returns: a mapping from ``artifact.key`` to the metrics measured for it, or None. Every
    implementation's results are merged; two plugins reporting the same metric name for one
    artifact is an error.

    Added in 0.1.
    """


@_hookspec(firstresult=True)
def load_predictor(artifact: Artifact, device: str, threads: int) -> Predictor | None:
    """Load an artifact for inference behind the predictor interface that measurers time.

    Fires: when a measurer (or the memory probe) needs to run a model, once per artifact.

    :param artifact: the model to load; return None unless you can load its ``format``.
    :param device: ``cpu``, ``cuda`` or ``mps``.
    :param threads: the intra-op thread count every runtime must use, so timings compare.

    Returns: a ``slimkit.Predictor`` (``runtime``, ``facts``, ``encode(texts, *, max_length,
    pad_to_max)``, never timed, ``__call__(encoded) -> numpy logits`` and ``close()``), or None.

    Stops at the first non-None result.

    Added in 0.1.
    """


# -- Studies --------------------------------------------------------------------------------


@_hookspec(firstresult=True)
def make_executor(name: str, options: dict[str, Any]) -> Any | None:
    """Provide the executor that builds a study's variants (for example on a cluster).

    Fires: once per study run, with the study file's ``[executor]`` entry; the built-in ``local``
    executor is used when no plugin answers for ``name = "local"``.

    :param name: the executor the study file names.
    :param options: the study file's ``executor.options``, as written.

    Returns: an object with ``name`` and ``run(jobs, context)`` yielding a
    :class:`slimkit.study.executors.VariantOutcome` per :class:`slimkit.study.executors.VariantJob`
    as each finishes (see slimkit.study.executors), or None when ``name`` is not yours.

    Stops at the first non-None result.

    Added in 0.1.
    """


# -- Lifecycle ------------------------------------------------------------------------------


@_hookspec
def before_step(step: StepContext[Any]) -> None:
    """Observe a step about to run.

    Fires: before each step's stage hook, and also before a step whose output is reused from an
    earlier run (``step.scratch["cached"]`` is True then).

    :param step: the step about to run.

    Returns: nothing.

    Added in 0.1.
    """


@_hookspec
def after_step(step: StepContext[Any], artifact: Artifact) -> None:
    """Observe a finished step.

    Fires: after each step's stage hook returned (or its output was reused), once the artifact
    is in its final place.

    :param step: the finished step.
    :param artifact: the artifact it produced.

    Returns: nothing.

    Added in 0.1.
    """


@_hookspec
def on_step_error(step: StepContext[Any], error: BaseException) -> None:
    """Observe a step that raised.

    Fires: when a step's stage hook raises; the run records the failure, measures the steps that
    finished, and exits with code 1.

    :param step: the step that failed.
    :param error: the exception it raised.

    Returns: nothing.

    Added in 0.1.
    """


@_hookspec
def after_run(run_dir: Path, results: Results, tracking: dict[str, dict[str, Any]]) -> str | None:
    """Record a finished run or study somewhere else: an experiment tracker, a dashboard.

    Fires: once per ``slimkit run``, ``study`` or ``compress`` (and per ``run_pipeline`` or
    ``run_study`` call in Python), after results.json, the report and the plots are written,
    whatever the outcome; not for the variant builds inside a study (the study's call covers them).

    :param run_dir: the run's or study's folder (results.json, report.md, report.html, plots).
    :param results: what results.json holds, a :class:`slimkit.results.RunResults` or
        :class:`slimkit.results.StudyResults`; its paths are relative to ``run_dir``.
    :param tracking: the file's ``[tracking]`` table (one table per tracker, as written), ``{}``
        when the file has none; a plugin may also follow its own environment variables.

    Returns: one line for the console saying where the run was recorded, or None when this plugin
    recorded nothing. Every implementation is called; one that raises is reported by name as a
    warning and changes neither the outcome nor results.json.

    Added in 0.2.
    """
