"""The runner: execute a plan, reuse finished steps, measure everything in one session, record all.

Layout of a run directory::

    pipeline.json             the pipeline as run
    journal.jsonl             one JSON line per event (started, step done/reused/failed, measured)
    steps/<name>-<key>/       one folder per finished step (the step store, see slimkit.store)
    results.json              everything measured and every failure, written atomically
    report.md                 the Markdown table made from results.json

A step's key hashes (input key, technique, plugin version, config), so running the same pipeline
again reuses finished steps and a run killed mid-way resumes where it stopped. A stored step is
reused only after its files match their digests; a damaged one is built again.

results.json, the journal's last line, the report and the exit code always tell the same outcome
(``RunResult.outcome``): done (0), failed (1), bad input (2), refused (3) or interrupted (130).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from slimkit import store
from slimkit.artifacts import Artifact, atomic_dir, cache_dir, stable_hash, write_json_atomic
from slimkit.claims import claim
from slimkit.context import MeasureContext, StepContext
from slimkit.digests import Damaged
from slimkit.display import Display
from slimkit.errors import PlanRefused, PluginError, SlimkitError, error_line
from slimkit.hardware import Hardware, probe
from slimkit.journal import Journal
from slimkit.metrics import Metric
from slimkit.planner import Plan, PlannedStep, plan_pipeline
from slimkit.plugins import Plugins, build_plugins
from slimkit.processes import running_reason
from slimkit.remote_store import RemoteStore
from slimkit.results import OUTCOME_EXIT_CODES, Outcome, PlanResult, RunResults, StepResult, measured_artifacts
from slimkit.sessions import measure_sessions
from slimkit.spec import Pipeline
from slimkit.techniques import Stage, config_key_dump
from slimkit.versions import library_versions

LOADING = "while loading the model"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:40] or "step"


# Fields of the task that change what is scored, never what a step builds.
EVAL_ONLY_TASK_FIELDS = ("max_eval_examples",)


def step_key(input_key: str, step: PlannedStep, pipeline: Pipeline) -> str:
    """What a step's output depends on: its input, the technique and its version, the config, and the
    pipeline's task and seed (training, calibration and vocabulary pruning read the task's data).

    Task fields that only choose which eval rows are scored (``EVAL_ONLY_TASK_FIELDS``) are left
    out, so scoring fewer dev rows never retrains a model. They are set to None rather than
    dropped, which keeps the keys of pipelines that never set them as they were; task fields added
    later are left out while at their default (``TaskSpec.key_dump``) for the same reason."""
    task = pipeline.task.key_dump() if pipeline.task else None
    if task is not None:
        task |= dict.fromkeys(EVAL_ONLY_TASK_FIELDS)
    data = {"task": task, "seed": pipeline.seed}
    config = config_key_dump(step.config)
    return stable_hash(input_key, step.technique.name, step.technique.plugin_version, config, data)


@dataclass
class StepRecord:
    index: int
    name: str
    technique: str
    stage: str
    plugin: str | None
    plugin_version: str | None
    config: dict[str, Any]
    key: str | None = None
    status: str = "pending"  # done | reused | failed | skipped | interrupted | not run
    seconds: float | None = None
    error: str | None = None
    artifact: Artifact | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "technique": self.technique,
            "stage": self.stage,
            "plugin": self.plugin,
            "plugin_version": self.plugin_version,
            "config": self.config,
            "key": self.key,
            "status": self.status,
            "seconds": self.seconds,
            "error": self.error,
            "artifact": self.artifact.model_dump(mode="json") if self.artifact else None,
        }

    def result(self, folder: Path) -> StepResult:
        """The record as results.json in ``folder`` holds it: the artifact's path made portable."""
        return StepResult.of(self.as_dict(), folder)


@dataclass
class RunResult:
    run_dir: Path
    plan: Plan
    source: Artifact | None
    steps: list[StepRecord]
    metrics: dict[str, list[Metric]] = field(default_factory=dict)
    measure_errors: dict[str, str] = field(default_factory=dict)
    baseline: Artifact | None = None
    warnings: list[str] = field(default_factory=list)
    # Why the run stopped early, if it did: bad input (the source model, a step's data), an
    # unexpected exception (a bug), or the user's Ctrl-C, each with where it happened.
    error: str | None = None
    crash: str | None = None
    interrupted: str | None = None
    refused: list[str] | None = None
    running: bool = True  # False once the run has ended, in any way

    @property
    def outcome(self) -> Outcome:
        """done | failed | bad_input | refused | interrupted (or running, until the run ends): what
        results.json, the journal and the report say."""
        if self.running:
            return "running"
        if self.interrupted is not None:
            return "interrupted"
        if self.refused is not None:
            return "refused"
        if self.error is not None:
            return "bad_input"
        failed = any(s.status == "failed" for s in self.steps) or bool(self.measure_errors)
        return "failed" if failed or self.crash is not None else "done"

    @property
    def exit_code(self) -> int | None:
        """The process's exit code; None while the run is still running."""
        return OUTCOME_EXIT_CODES.get(self.outcome)

    @property
    def reason(self) -> str | None:
        """One line on why the run did not end as done, or None when it did."""
        if self.outcome == "failed" and self.crash is None:
            failed = [f"step {s.index} ({s.name}): {s.error}" for s in self.steps if s.status == "failed"]
            failed += [f"measurer {name!r}: {error}" for name, error in self.measure_errors.items()]
            return "; ".join(failed)
        if self.refused is not None:
            return "the plan was refused: " + "; ".join(self.refused)
        if self.running:
            return running_reason()
        return self.interrupted or self.error or self.crash

    @property
    def results_path(self) -> Path:
        return self.run_dir / "results.json"

    def artifacts(self) -> list[Artifact]:
        done = [s.artifact for s in self.steps if s.artifact is not None]
        return ([self.source] if self.source else []) + done


def _relocate(artifact: Artifact, step: StepContext[Any], scratch: Path, final: Path) -> Artifact:
    """The hook returned paths inside the scratch folder; point them at the final folder.

    The key and label are the runner's, whatever the hook put there: results are merged by key, so
    a step must never reuse its input's key.
    """
    try:
        relative = artifact.path.resolve().relative_to(scratch.resolve())
    except ValueError as exc:
        raise PluginError(
            f"step {step.name!r} returned an artifact outside its output folder: {artifact.path}",
            fix="write into step.output_dir and return step.artifact()",
        ) from exc
    return artifact.with_updates(path=final / relative, key=step.key, label=step.name)


@dataclass
class _Job:
    """One step as this run works on it: the plan's step, its record, and where its output goes."""

    step: PlannedStep
    record: StepRecord
    input: Artifact
    key: str
    final: Path
    done: dict[str, Artifact]  # the artifacts of the steps before it, by name
    label: str


class Runner:
    def __init__(self, plan: Plan, plugins: Plugins, *, force: bool, display: Display) -> None:
        self.plan = plan
        self.pipeline = plan.pipeline
        self.plugins = plugins
        self.force = force
        self.display = display
        self.run_dir = self.pipeline.run_dir.resolve()
        self.steps_dir = self.pipeline.steps_dir.resolve()
        self.remote: RemoteStore | None = None  # the store at store_dir's URL, opened at the first step
        self.journal = Journal(self.run_dir / "journal.jsonl")
        self.hardware: Hardware = plan.hardware
        self.results: RunResults | None = None  # what results.json says, once written
        self.phase = "before any step"  # where the run is, for the record of an interruption

    def run(self) -> RunResult:
        result = self._start()
        started = time.time()
        # Until the run ends its record says 'running' with this process's pid: a run killed with
        # SIGKILL (which leaves no chance to write) never leaves an earlier run's outcome in place.
        self._write_results(result, started)
        result.running = False
        try:
            self.phase = LOADING
            result.source = self._source()
            self._untrained_head(result)
            self._steps(result)
            if self.pipeline.measure.enabled:
                self.phase = "during measurement"
                self._measure(result)
        except KeyboardInterrupt:
            result.interrupted = f"interrupted by the user {self.phase}"
            for record in result.steps:
                if record.status == "pending" and record.key is not None:  # waiting for another run's build
                    record.status, record.error = "interrupted", "interrupted by the user"
            raise
        except SlimkitError as exc:
            if self.phase != LOADING:  # a plugin's error outside any step: the run failed (exit 1)
                result.crash = f"{error_line(exc)} ({self.phase})"
            else:
                result.error = str(exc)  # the model cannot be loaded: bad input (exit 2)
                raise SlimkitError(exc.message, fix=exc.fix) from None
        except SystemExit as exc:  # plugin code exiting outside any step: recorded, never the exit code
            result.crash = f"{error_line(exc)} ({self.phase})"
        except BaseException as exc:  # a bug: recorded, then it propagates with its traceback (exit 1)
            result.crash = f"{error_line(exc)} ({self.phase})"
            raise
        finally:
            for record in result.steps:
                if record.status == "pending":
                    record.status = "not run"
            self._write_results(result, started)
        return result

    def refuse(self, problems: list[str]) -> RunResult:
        """Record a refused plan (nothing computed), so that an earlier run's results.json in the
        same folder does not contradict the exit code."""
        result = self._start()
        result.refused, result.running = problems, False
        self._write_results(result, time.time())
        return result

    def _start(self) -> RunResult:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.run_dir / "pipeline.json", self.pipeline.model_dump(mode="json"))
        self.journal.write("run_started", pipeline=self.pipeline.name, force=self.force)
        result = RunResult(run_dir=self.run_dir, plan=self.plan, source=None, steps=self._records())
        result.warnings.extend(self.plan.warnings)
        return result

    def _records(self) -> list[StepRecord]:
        return [
            StepRecord(
                index=s.index,
                name=s.name,
                technique=s.technique.name,
                stage=s.technique.stage.value,
                plugin=s.technique.plugin,
                plugin_version=s.technique.plugin_version,
                config=s.config.model_dump(mode="json"),
            )
            for s in self.plan.steps
        ]

    def _source(self) -> Artifact:
        with self.display.status(f"loading model {self.pipeline.model.source}"):
            try:
                source = self.plugins.resolve_model(self.pipeline.model, self.pipeline, cache_dir())
            except SlimkitError as exc:
                self.journal.write("source_failed", error=str(exc))
                raise
        if source is None:
            error = SlimkitError(
                f"model: no installed plugin can load {self.pipeline.model.source!r}",
                fix="install slimkit-transformers (`slimkit install transformers`), "
                "or set model.format for a local file",
            )
            self.journal.write("source_failed", error=str(error))
            raise error
        source = source.with_updates(label="source")
        self.journal.write("source_resolved", key=source.key, path=str(source.path), format=source.format)
        return source

    def _untrained_head(self, result: RunResult) -> None:
        """The libraries' own notice of a freshly initialised classification head goes to the run's
        log; when no step trains the model, slimkit says it, since every accuracy figure depends on it."""
        assert result.source is not None
        trains = any(s.technique.stage in (Stage.TRAIN, Stage.DISTILL) for s in self.plan.steps)
        if result.source.metadata.get("head") == "initialised" and not trains:
            warning = (
                "model: its classification head is newly initialised (random) for the task's labels and no step "
                "trains it, so its accuracy is chance level (fix: add a train step, or start from a fine-tuned model)"
            )
            result.warnings.append(warning)
            self.display.line(f"! {warning}")

    def _context(self, job: _Job, out: Path) -> StepContext[Any]:
        step = job.step
        return StepContext(
            name=step.name,
            index=step.index,
            spec=step.spec,
            technique=step.technique,
            config=step.config,
            input=job.input,
            output_dir=out,
            key=job.key,
            pipeline=self.pipeline,
            hardware=self.hardware,
            device=self.plan.device,
            run_dir=self.run_dir,
            artifacts=job.done,
            progress=self.display.progress,
            plugins=self.plugins,
        )

    def _verified(self, folder: Path, result: RunResult, *, report: bool, then: str) -> Artifact | None:
        """The finished step in ``folder`` if its files match their digests, else None. Damage is
        reported (console, journal, results) only when ``report``: a check made outside the claim
        can catch another run in the middle of republishing the folder."""
        try:
            return store.verify_step(folder)
        except Damaged as why:
            warning = f"stored step {folder.name} is damaged ({why}); {then}"
            if report and warning not in result.warnings:
                result.warnings.append(warning)
                self.display.line(f"! {warning}")
                self.journal.write("step_damaged", folder=folder.name, reason=str(why))
            return None

    def _reusable(self, final: Path, key: str, result: RunResult, *, report: bool) -> Artifact | None:
        """A verified finished step with this key: in its own folder, or under another step name
        (a store shared between pipelines holds the same work under the name each gave it)."""
        found = self._verified(final, result, report=report, then="building it again")
        if found is None and self.steps_dir.is_dir():
            for other in sorted(self.steps_dir.glob(f"[!.]*-{key}")):
                if other == final:
                    continue
                if (found := self._verified(other, result, report=report, then="not reused")) is not None:
                    break
        return found

    def _steps(self, result: RunResult) -> None:
        assert result.source is not None
        current = result.source
        done: dict[str, Artifact] = {"source": current}
        total = len(self.plan.steps)
        for step, record in zip(self.plan.steps, result.steps, strict=True):
            self.phase = f"during step {step.index} ({step.name})"
            key = step_key(current.key, step, self.pipeline)
            record.key = key
            job = _Job(
                step=step,
                record=record,
                input=current,
                key=key,
                final=self.steps_dir / f"{_slug(step.name)}-{key}",
                done=dict(done),
                label=f"[{step.index}/{total}] {step.name} ({step.technique.name})",
            )
            artifact = self._reuse_or_build(job, result)
            if artifact is None:
                for later in result.steps[step.index :]:
                    later.status = "skipped"
                    later.error = f"step {step.index} ({step.name}) failed"
                return
            done[step.name] = artifact
            current = artifact

    def _reuse_or_build(self, job: _Job, result: RunResult) -> Artifact | None:
        """Reuse a verified finished step, else claim its key and build it. A run that finds the
        key claimed waits: the other run's step is then reused, never built twice."""
        if not self.force and (found := self._reusable(job.final, job.key, result, report=False)) is not None:
            return self._reuse(job, found)

        def waiting(owner: str) -> None:
            self.display.line(f"… {job.label}: waiting for {owner}, which is building it")
            self.journal.write("step_waiting", step=job.step.name, key=job.key, owner=owner)

        with claim(self.steps_dir, job.key, on_wait=waiting):
            if not self.force and (found := self._reusable(job.final, job.key, result, report=True)) is not None:
                return self._reuse(job, found)
            store.remove_scratch(job.final)  # left by a killed run; ours to remove while we hold the key
            if self.pipeline.store_url is None:
                return self._execute(job)
            return self._shared(job, result, waiting)

    def _shared(self, job: _Job, result: RunResult, waiting: Callable[[str], None]) -> Artifact | None:
        """With a store_dir URL (holding this machine's claim): reuse the step another machine
        published, else claim the key in the shared store too, build it here and publish it."""
        if self.remote is None:
            assert self.pipeline.store_url is not None
            self.remote = RemoteStore(self.pipeline.store_url)
        remote = self.remote
        if not self.force and (found := self._fetched(remote, job, result, report=False)) is not None:
            return self._reuse(job, found)

        def stale(owner: str) -> None:
            self.display.line(f"… {job.label}: the claim of {owner} is stale; building it here")
            self.journal.write("step_claim_stale", step=job.step.name, key=job.key, owner=owner)

        with remote.claim(job.key, on_wait=waiting, on_stale=stale) as lease:
            if not self.force and (found := self._fetched(remote, job, result, report=True)) is not None:
                return self._reuse(job, found)
            artifact = self._execute(job)
            if artifact is None:
                return None
            if lease.lost:  # another machine took the claim over (this one stalled): it publishes
                warning = f"step {job.step.name}: its claim in {remote.url} was taken over; not uploaded"
            else:
                try:
                    remote.publish(job.final)
                    self.journal.write("step_published", step=job.step.name, key=job.key, url=remote.url)
                    return artifact
                except SlimkitError as exc:  # the step is built and usable here; others build it again
                    warning = f"step {job.step.name}: {exc.message}; not uploaded"
            result.warnings.append(warning)
            self.display.line(f"! {warning}")
            return artifact

    def _fetched(self, remote: RemoteStore, job: _Job, result: RunResult, *, report: bool) -> Artifact | None:
        """The step with this key copied from the shared store and verified, or None. A published
        step that does not match its manifest is reported (under the claim only) and never used."""
        try:
            found = remote.fetch(job.key, job.final)
        except Damaged as why:  # 'URL/<name>-<key>: what is wrong'
            folder, _, reason = str(why).partition(": ")
            warning = f"shared step {folder} is damaged ({reason}); building it again"
            if report and warning not in result.warnings:
                result.warnings.append(warning)
                self.display.line(f"! {warning}")
                self.journal.write("step_damaged", folder=folder, reason=reason)
            return None
        if found is not None:
            self.journal.write("step_fetched", step=job.step.name, key=job.key, url=remote.url)
            self.display.line(f"↓ {job.label}: copied from {remote.url}")
        return found

    def _reuse(self, job: _Job, found: Artifact) -> Artifact | None:
        artifact = found.with_updates(key=job.key, label=job.step.name)
        ctx = self._context(job, artifact.path)
        ctx.scratch["cached"] = True
        try:
            self.plugins.before_step(ctx)
            self.plugins.after_step(ctx, artifact)
        except (Exception, SystemExit) as exc:  # a hook's error fails the step, as the step's own would
            self._failed(job, exc, ctx, 0.0)
            return None
        job.record.status, job.record.artifact, job.record.seconds = "reused", artifact, 0.0
        self.journal.write("step_reused", step=job.step.name, key=job.key, path=str(artifact.path))
        self.display.line(f"↺ {job.label}: reused from an earlier run")
        return artifact

    def _execute(self, job: _Job) -> Artifact | None:
        started = time.perf_counter()
        self.journal.write("step_started", step=job.step.name, technique=job.step.technique.name, key=job.key)
        ctx: StepContext[Any] | None = None
        try:
            with atomic_dir(job.final) as scratch:
                out = scratch / "model"
                out.mkdir()
                ctx = self._context(job, out)
                self.plugins.before_step(ctx)
                with self.display.status(f"▶ {job.label}"):
                    produced = self.plugins.run_stage(ctx)
                artifact = _relocate(produced, ctx, scratch, job.final)
                # The manifest holds the path relative to the step's folder, so the store can move.
                store.write_manifest(scratch, artifact.with_updates(path=artifact.path.relative_to(job.final)))
            ctx.output_dir = artifact.path if artifact.path.is_dir() else artifact.path.parent
            self.plugins.after_step(ctx, artifact)
        except KeyboardInterrupt:
            job.record.status, job.record.error = "interrupted", "interrupted by the user"
            job.record.seconds = round(time.perf_counter() - started, 3)
            self.journal.write("step_interrupted", step=job.step.name, key=job.key)
            raise
        except (Exception, SystemExit) as exc:  # recorded; earlier results stay usable
            self._failed(job, exc, ctx, round(time.perf_counter() - started, 3))
            return None
        job.record.status, job.record.artifact = "done", artifact
        job.record.seconds = round(time.perf_counter() - started, 3)
        self.journal.write(
            "step_done", step=job.step.name, key=job.key, seconds=job.record.seconds, path=str(artifact.path)
        )
        self.display.line(f"✓ {job.label} in {job.record.seconds:.1f} s")
        return artifact

    def _failed(self, job: _Job, exc: BaseException, ctx: StepContext[Any] | None, seconds: float) -> None:
        """Record a failed step (its own error, a hook's, or plugin code calling sys.exit)."""
        job.record.status, job.record.error, job.record.seconds = "failed", error_line(exc), seconds
        if ctx is not None:
            self.plugins.on_step_error(ctx, exc)
        self.journal.write("step_failed", step=job.step.name, key=job.key, error=job.record.error)
        self.display.line(f"✗ {job.label} failed: {job.record.error}")

    def _baseline(self, result: RunResult) -> Artifact:
        assert result.source is not None
        if self.pipeline.baseline == "source":
            return result.source
        for record in result.steps:
            if record.name == self.pipeline.baseline and record.artifact is not None:
                return record.artifact
        result.warnings.append(
            f"baseline step {self.pipeline.baseline!r} did not finish; figures are relative to the source model"
        )
        return result.source

    def _measure(self, result: RunResult) -> None:
        baseline = self._baseline(result)
        result.baseline = baseline
        artifacts = [baseline, *[a for a in result.artifacts() if a.key != baseline.key]]
        context = MeasureContext(
            baseline=baseline,
            pipeline=self.pipeline,
            settings=self.pipeline.measure,
            hardware=self.hardware,
            device=self.plan.device,
            run_dir=self.run_dir,
            progress=self.display.progress,
            plugins=self.plugins,
        )
        self.journal.write("measure_started", artifacts=[a.label for a in artifacts])
        with self.display.status(f"measuring {len(artifacts)} model(s)"):
            result.metrics, result.measure_errors = measure_sessions(
                lambda: self.plugins.measure(artifacts, context), self.pipeline.measure, announce=self.display.line
            )
        for plugin, error in result.measure_errors.items():
            self.display.line(f"✗ measurer {plugin!r} failed: {error}")
        self.journal.write("measure_done", errors=result.measure_errors)

    def _write_results(self, result: RunResult, started: float) -> None:
        """results.json, then the report and the journal's last line. Only results.json may fail
        the run: the report is rebuilt from it (`slimkit report`), so its failure is a warning."""
        from slimkit.report import publish_results

        results = results_document(result, seconds=time.time() - started)
        self.results = results
        publish_results(self.run_dir, results, self.journal, "run_finished", lambda w: self.display.line(f"! {w}"))


def results_document(result: RunResult, *, seconds: float) -> RunResults:
    """results.json of a run, its paths relative to the run directory (or under $SLIMKIT_CACHE)."""
    folder = result.run_dir
    baseline_key = result.baseline.key if result.baseline else None
    return RunResults(
        pipeline=result.plan.pipeline.name,
        finished=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        seconds=round(seconds, 3),
        outcome=result.outcome,
        exit_code=result.exit_code,
        reason=result.reason,
        device=result.plan.device,
        hardware=result.plan.hardware,
        libraries=library_versions(),
        measure_settings=result.plan.pipeline.measure,
        baseline=result.baseline.label if result.baseline else None,
        plan=PlanResult.model_validate(result.plan.as_dict()),
        steps=[s.result(folder) for s in result.steps],
        artifacts=measured_artifacts(result.artifacts(), result.metrics, baseline_key, folder),
        measure_errors=result.measure_errors,
        warnings=result.warnings,
        error=result.error,
    ).located(folder)


def run_pipeline(
    pipeline: Pipeline,
    *,
    plugins: Plugins | None = None,
    hardware: Hardware | None = None,
    force: bool = False,
    show_progress: bool = False,
    console: TextIO | None = None,
    track: bool = True,
) -> RunResult:
    """Plan, then run. Raises PlanRefused (nothing computed) when the plan has problems.
    ``console``: where progress lines go (default: standard error); ``track``: hand the results to
    the trackers (``after_run``), off for a study's variant builds."""
    plugins = plugins or build_plugins()
    plan = plan_pipeline(pipeline, plugins=plugins, hardware=hardware or probe(cuda=pipeline.device != "cpu"))
    runner = Runner(plan, plugins, force=force, display=Display(show_progress, console))
    if not plan.ok:
        runner.refuse(plan.problems)
        raise PlanRefused(plan.problems)
    result = runner.run()
    if track:
        from slimkit.tracking import track as track_results

        track_results(plugins, result.run_dir, runner.results, pipeline.tracking, runner.display.line)
    return result
