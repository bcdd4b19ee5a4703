"""Run a study: plan every variant, build them through an executor, measure all in one session.

Layout of a study directory::

    study.json          the study as run
    journal.jsonl       one JSON line per event
    state.json          each finished variant's outcome, provisional figures, the last measurement
    optuna.db           the Optuna study of a sampled search (random, tpe, nsga2), unless search.storage
    variants/NNN-name/  each variant's own run folder (pipeline.json, journal, results.json)
    steps/              the step store shared by every variant (unless store_dir says otherwise)
    results.json        every variant, every figure, the search and the chosen variant
    report.md, *.png    the report made from results.json

Resuming: a variant whose outcome is in state.json (same pipeline, artifact still on disk) is not
built again; a variant interrupted half-way resumes from its finished steps through the store. The
measurement is reused only when the same artifacts were measured with the same settings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from slimkit import store
from slimkit.artifacts import MANIFEST, Artifact, stable_hash, write_json_atomic
from slimkit.claims import claim
from slimkit.context import MeasureContext
from slimkit.digests import Damaged
from slimkit.display import Display
from slimkit.errors import ExitCode, PlanRefused, SlimkitError, error_line
from slimkit.hardware import Hardware, probe
from slimkit.journal import Journal
from slimkit.metrics import Metric
from slimkit.planner import Plan, plan_pipeline
from slimkit.plugins import Plugins, build_plugins
from slimkit.processes import running_reason
from slimkit.results import (
    OUTCOME_EXIT_CODES,
    MeasuredArtifact,
    Outcome,
    SearchResult,
    StepResult,
    StudyResults,
    VariantResult,
    measured_artifacts,
)
from slimkit.sessions import measure_sessions
from slimkit.study.executors import Executor, ExecutorContext, VariantJob, VariantOutcome, make_executor
from slimkit.study.search import (
    OptunaSearch,
    Proposal,
    grid_order,
    provisional_figures,
    provisional_settings,
    select,
)
from slimkit.study.spec import BASELINE, Study, Variant, expand, space_slots
from slimkit.versions import library_versions

STATE_FILE = "state.json"


@dataclass
class StudyResult:
    run_dir: Path
    results: StudyResults

    @property
    def results_path(self) -> Path:
        return self.run_dir / "results.json"

    @property
    def exit_code(self) -> int:
        code = self.results.exit_code
        return ExitCode.OK if code is None else code


@dataclass
class StudyPlan:
    """Every variant of a study with its plan's problems and warnings; nothing computed."""

    study: Study
    variants: list[Variant]
    plans: dict[str, Plan] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        """Each variant's problems; one that every variant has (an untrusted local plugin, a
        missing data file) is listed once."""
        first, *others = self.variants
        shared = [p for p in first.problems if all(p in v.problems for v in others)] if others else []
        lines = [f"every variant: {p}" for p in shared]
        return lines + [f"variant {v.name}: {p}" for v in self.variants for p in v.problems if p not in shared]

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "study": self.study.name,
            "ok": self.ok,
            "strategy": self.study.search.strategy,
            "variants": [v.as_dict() for v in self.variants],
            "problems": self.problems,
        }


def plan_study(study: Study, *, plugins: Plugins | None = None, hardware: Hardware | None = None) -> StudyPlan:
    """Expand and plan every variant. Never raises for a variant's problems: see ``problems``."""
    plugins = plugins or build_plugins()
    hardware = hardware or probe(cuda=study.device != "cpu")
    variants = expand(study)
    result = StudyPlan(study=study, variants=variants)
    for variant in variants:
        plan = plan_pipeline(variant.pipeline, plugins=plugins, hardware=hardware)
        variant.problems, variant.warnings = list(plan.problems), list(plan.warnings)
        result.plans[variant.name] = plan
    return result


class _State:
    """state.json: what a rerun must not do again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        data = _read_state(path)
        self.outcomes: dict[str, dict[str, Any]] = data.get("outcomes", {})
        # Paired (baseline, variant) sessions of a sampled search: they steer it, never reported as figures.
        self.provisional: dict[str, dict[str, Any]] = data.get("provisional", {})
        self.step_seconds: dict[str, float] = data.get("step_seconds", {})
        self.measurement: dict[str, Any] = data.get("measurement", {})

    def save(self) -> None:
        write_json_atomic(
            self.path,
            {
                "outcomes": self.outcomes,
                "provisional": self.provisional,
                "step_seconds": self.step_seconds,
                "measurement": self.measurement,
            },
        )

    def finished(self, job: VariantJob) -> VariantOutcome | None:
        """The outcome of a variant an earlier run built, if its model is still there and intact."""
        entry: Any = self.outcomes.get(job.name)
        try:
            if entry["fingerprint"] != _fingerprint(job) or entry["outcome"]["status"] != "done":
                return None
            outcome = VariantOutcome.from_dict(entry["outcome"])
        except (KeyError, TypeError, ValueError):  # no entry, or a damaged one: the variant is built again
            return None
        return outcome if outcome.artifact is not None and _intact(outcome.artifact.path) else None

    def record(self, job: VariantJob, outcome: VariantOutcome) -> None:
        self.outcomes[job.name] = {"fingerprint": _fingerprint(job), "outcome": outcome.as_dict()}
        for step in outcome.steps:
            if step.get("status") == "done" and step.get("key") and step.get("seconds") is not None:
                self.step_seconds[step["key"]] = step["seconds"]
        self.save()


def _read_state(path: Path) -> dict[str, Any]:
    """state.json's tables; a damaged or unreadable state only costs reuse (the step store still
    has the work), so it reads as empty."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)}


def _verified_here(final: Path) -> Artifact | None:
    """The step already copied into this machine's store, when it is intact; None otherwise."""
    try:
        return store.verify_step(final)
    except Damaged:
        return None


def _intact(model: Path) -> bool:
    """Whether a variant's model is there and, when it lies in a stored step (a folder or a file
    inside it), that step matches its digests."""
    # The step folder is the model's parent, or its grandparent for a file artifact (model/x.onnx).
    folder = next((p for p in model.parents[:2] if (p / MANIFEST).is_file()), None)
    if folder is None:
        return model.exists()
    try:
        step = store.verify_step(folder)
    except Damaged:
        return False
    return step is not None and model.is_relative_to(step.path) and model.exists()


def _fingerprint(job: VariantJob) -> str:
    # Without the run folder's name, which holds the variant's position: adding a variant to the
    # study must not make the finished ones look new.
    recipe = {k: v for k, v in job.pipeline.items() if k not in ("name", "output_dir")}
    return stable_hash(recipe, job.base_dir)


class StudyRunner:
    def __init__(
        self,
        study_plan: StudyPlan,
        plugins: Plugins,
        hardware: Hardware,
        *,
        executor: Executor,
        force: bool,
        remeasure: bool,
        display: Display,
        show_progress: bool,
        clock: Callable[[], float],
    ) -> None:
        self.plan = study_plan
        self.study = study_plan.study
        self.plugins = plugins
        self.hardware = hardware
        self.executor = executor
        self.force = force
        self.remeasure = remeasure
        self.display = display
        self._remote: Any = None  # the RemoteStore at store_dir's URL, opened at the first fetch
        self.show_progress = show_progress
        self.clock = clock
        self.run_dir = self.study.run_dir.resolve()
        self.journal = Journal(self.run_dir / "journal.jsonl")
        self.state = _State(self.run_dir / STATE_FILE)
        self.outcomes: dict[str, VariantOutcome] = {}
        self.status: dict[str, str] = {}  # variant -> built | reused | failed | refused | skipped | not run | invalid
        self.notes: dict[str, str] = {}
        self.stopped_by_time = False
        self._deadline: float | None = None
        self._done = 0
        self._total = 0

    # -- building -------------------------------------------------------------------------
    def _job(self, variant: Variant) -> VariantJob:
        return VariantJob(
            name=variant.name,
            # Only what the study file set: a default written out would read back as the user's
            # choice and override a task preset's own values (its data files, its eval split).
            pipeline=variant.pipeline.model_dump(mode="json", exclude_unset=True),
            base_dir=str(variant.pipeline.base_dir),
            force=self.force,
        )

    def _take(self, variant: Variant, outcome: VariantOutcome, reused: bool, done: int, total: int) -> None:
        self.outcomes[variant.name] = outcome
        label = f"[{done}/{total}] {variant.name}"
        if reused:
            self.status[variant.name] = "reused"
            self.display.line(f"↺ {label}: built in an earlier run")
            return
        self.status[variant.name] = "built" if outcome.status == "done" else outcome.status
        if outcome.error:
            self.notes[variant.name] = outcome.error
        self.journal.write("variant_finished", variant=variant.name, status=outcome.status, error=outcome.error)
        if outcome.status == "done":
            computed = sum(1 for s in outcome.steps if s.get("status") == "done")
            self.display.line(f"✓ {label}: {computed} step(s) computed, {len(outcome.steps) - computed} reused")
        else:
            self.display.line(f"✗ {label}: {outcome.error}")

    def _here(self, outcome: VariantOutcome) -> VariantOutcome:
        """The outcome with its model on this machine: a variant built on another machine (a Ray
        worker) into a store at a URL is copied from there, verified, into this machine's copy of
        the store, so that the one measurement session reads every model here."""
        artifact, url = outcome.artifact, self.study.store_url
        if artifact is None or url is None or artifact.path.exists():
            return outcome
        from slimkit.remote_store import RemoteStore

        candidates = (artifact.path, *artifact.path.parents[:2])
        step = next((p for p in candidates if p.name.endswith(f"-{artifact.key}")), None)
        if step is None:
            return outcome
        final = self.study.steps_dir / step.name
        try:
            # Under this machine's claim on the key, as the runner fetches: one copy, never two at once.
            with claim(self.study.steps_dir, artifact.key):
                fetched = _verified_here(final)
                if fetched is None:
                    self._remote = self._remote or RemoteStore(url)
                    fetched = self._remote.fetch(artifact.key, final)
        except (SlimkitError, Damaged) as exc:
            why = f"built on {outcome.built_on or 'another machine'} but not fetched from {url}: {exc}"
            return dataclasses.replace(outcome, status="failed", artifact=None, error=why)
        if fetched is None:
            why = f"built on {outcome.built_on or 'another machine'} but not published in {url}"
            return dataclasses.replace(outcome, status="failed", artifact=None, error=why)
        self.display.line(f"↓ {outcome.name}: fetched from {url}")
        return dataclasses.replace(outcome, artifact=artifact.with_updates(path=fetched.path))

    def build(self) -> None:
        valid = [v for v in self.plan.variants if not v.problems]
        for v in self.plan.variants:
            if v.problems:
                self.status[v.name], self.notes[v.name] = "invalid", "; ".join(v.problems)
        search = self.study.search
        budget = search.time_budget_s
        self._deadline = None if budget is None else self.clock() + budget
        self._total, self._done = len(valid), 0
        if not search.sampled:
            self._build_batch(grid_order(valid))
        else:
            # The baseline and the variants the file names come first: the file asked for them,
            # and every provisional figure is paired with the baseline.
            self._build_batch([v for v in valid if v.name == BASELINE or v.explicit])
            base = self.outcomes.get(BASELINE)
            if not self.stopped_by_time and base is not None and base.artifact is not None:
                self._search(valid)
        for v in valid:
            if v.name in self.status:
                continue
            if self.stopped_by_time:
                self.status[v.name] = "not run"
                self.notes[v.name] = f"the time budget of {budget:g} s ran out before it started"
            else:
                self.status[v.name] = "skipped"
                self.notes[v.name] = f"not proposed by the {search.strategy} search (samples = {search.samples})"

    def _build_batch(self, batch: list[Variant]) -> None:
        """Build these variants (reusing what an earlier run finished) until the time budget runs out."""
        pending: list[tuple[Variant, VariantJob]] = []
        for variant in batch:
            job = self._job(variant)
            found = None if self.force else self.state.finished(job)
            if found is not None:
                self._done += 1
                self._take(variant, found, True, self._done, self._total)
            else:
                pending.append((variant, job))
        by_name = {v.name: v for v, _ in pending}
        if pending and not self._over(self._deadline):
            for v, _ in pending:
                self.journal.write("variant_queued", variant=v.name)
            outcomes: Iterator[VariantOutcome] = self.executor.run(
                [j for _, j in pending],
                ExecutorContext(plugins=self.plugins, hardware=self.hardware, show_progress=self.show_progress),
            )
            try:
                for outcome in outcomes:
                    self._done += 1
                    variant = by_name[outcome.name]
                    outcome = self._here(outcome)
                    self.state.record(self._job(variant), outcome)
                    self._take(variant, outcome, False, self._done, self._total)
                    if self._over(self._deadline):
                        break
            finally:
                close = getattr(outcomes, "close", None)
                if close is not None:
                    close()
        for v, _ in pending:
            if v.name not in self.outcomes:
                self.stopped_by_time = True

    def _search(self, valid: list[Variant]) -> None:
        """Ask the Optuna sampler for variants, build each, tell it the provisional figures."""
        spec = self.study.search
        search = OptunaSearch(
            valid,
            spec,
            slots=[[c.label for c in slot] for slot in space_slots(self.study)],
            storage=spec.storage or f"sqlite:///{self.run_dir / 'optuna.db'}",
            name=self.study.name,
        )
        self._total = self._done + search.target
        # What earlier runs built and told is in the final table, and is never asked for again
        # (--force builds it again, with the same figures told).
        again = []
        for name in search.told():
            variant = search.by_name[name]
            if name in self.outcomes or name not in self.state.outcomes:
                continue  # built above, or told by another driver
            found = None if self.force else self.state.finished(self._job(variant))
            if found is not None:
                self._done += 1
                self._take(variant, found, True, self._done, self._total)
            else:
                again.append(variant)
        self._build_batch(again)
        self.journal.write("search_started", strategy=spec.strategy, trials=len(search.study.trials))
        while not search.done():
            if self._over(self._deadline):
                self.stopped_by_time = True
                break
            proposal = search.ask()
            try:
                self._trial(search, proposal)
            except BaseException:
                # Interrupted before its values were told: failed, so this variant is asked again later.
                with contextlib.suppress(Exception):
                    search.fail(proposal, "interrupted")
                raise
        self.journal.write(
            "search_finished", strategy=spec.strategy, trials=len(search.study.trials), pareto=search.pareto()
        )

    def _trial(self, search: OptunaSearch, proposal: Proposal) -> None:
        variant = proposal.variant
        if variant is None:
            search.fail(proposal, "the plan refused this variant")
            return
        if search.repeat(proposal):  # told before, by this run, an earlier one or another driver
            return
        if variant.name not in self.outcomes:
            self._build_batch([variant])
        outcome = self.outcomes.get(variant.name)
        if outcome is None or outcome.artifact is None or outcome.status != "done":
            search.fail(proposal, "not built" if outcome is None else f"the variant {outcome.status}")
            return
        figures = self._provisional(variant, outcome.artifact)
        values, why = search.tell(proposal, figures)
        self.journal.write(
            "trial_told",
            trial=proposal.trial.number,
            variant=variant.name,
            values=values,
            failed=why,
            provisional=figures,  # steer the search only; the report's figures are the final session's
        )

    def _provisional(self, variant: Variant, artifact: Artifact) -> dict[str, Any]:
        """The variant against the baseline in one short paired session, through the same measurers."""
        base = self.outcomes[BASELINE].artifact
        assert base is not None  # _search runs only once the baseline is built
        settings = provisional_settings(self.study.measure)
        key = stable_hash([base.key, artifact.key, settings.model_dump(mode="json"), self.study.search.objective])
        cached = self.state.provisional.get(key)
        if cached is not None:
            return {k: v for k, v in cached.items() if k != "variant"}
        pair = [base.with_updates(label=BASELINE)]
        if artifact.key != base.key:
            pair.append(artifact.with_updates(label=variant.name))
        with self.display.status(f"provisional figures of {variant.name} (paired with the baseline)"):
            found, errors = self.plugins.measure(pair, self._context(base, settings))
        figures = provisional_figures(found.get(base.key, []), found.get(artifact.key, []), self.study.search)
        if errors:
            figures["errors"] = errors
        self.state.provisional[key] = figures | {"variant": variant.name}
        self.state.save()
        return figures

    def _over(self, deadline: float | None) -> bool:
        return deadline is not None and self.clock() >= deadline

    # -- measuring ------------------------------------------------------------------------
    def _artifacts(self) -> list[Artifact]:
        """The baseline first, then each built variant's final artifact, labelled by variant."""
        out: list[Artifact] = []
        seen: set[str] = set()
        for variant in self.plan.variants:
            outcome = self.outcomes.get(variant.name)
            if outcome is None or outcome.artifact is None or outcome.artifact.key in seen:
                continue
            seen.add(outcome.artifact.key)
            artifact = outcome.artifact.with_updates(label=variant.name)
            out.insert(0, artifact) if variant.name == BASELINE else out.append(artifact)
        return out

    def _context(self, baseline: Artifact, settings: Any) -> MeasureContext:
        base_variant = next(v for v in self.plan.variants if v.name == BASELINE)
        pipeline = base_variant.pipeline.model_copy(update={"measure": settings})
        return MeasureContext(
            baseline=baseline,
            pipeline=pipeline,
            settings=settings,
            hardware=self.hardware,
            device=self.plan.plans[BASELINE].device,
            run_dir=self.run_dir,
            progress=self.display.progress,
            plugins=self.plugins,
        )

    def measure(self) -> tuple[list[Artifact], dict[str, list[Metric]], dict[str, str]]:
        artifacts = self._artifacts()
        if not self.study.measure.enabled or not artifacts or artifacts[0].label != BASELINE:
            return artifacts, {}, {}
        keys = [a.key for a in artifacts]
        settings_hash = stable_hash(self.study.measure.model_dump(mode="json"))
        cached = self.state.measurement
        if not self.remeasure and cached.get("keys") == keys and cached.get("settings") == settings_hash:
            self.display.line(f"↺ measurement of {len(artifacts)} model(s) reused from an earlier run")
            metrics = {k: [Metric.model_validate(m) for m in ms] for k, ms in cached["metrics"].items()}
            return artifacts, metrics, dict(cached.get("errors", {}))
        self.journal.write("measure_started", artifacts=[a.label for a in artifacts])
        settings = self.study.measure
        sessions = "one session" if settings.sessions == 1 else f"{settings.sessions} sessions"
        with self.display.status(f"measuring {len(artifacts)} model(s) in {sessions}"):
            metrics, errors = measure_sessions(
                lambda: self.plugins.measure(artifacts, self._context(artifacts[0], settings)),
                settings,
                announce=self.display.line,
            )
        for plugin, error in errors.items():
            self.display.line(f"✗ measurer {plugin!r} failed: {error}")
        self.state.measurement = {
            "keys": keys,
            "settings": settings_hash,
            "metrics": {k: [m.model_dump(mode="json") for m in ms] for k, ms in metrics.items()},
            "errors": errors,
            "host": socket.gethostname(),  # a reused measurement still says where it was taken
        }
        self.state.save()
        self.journal.write("measure_done", errors=errors)
        return artifacts, metrics, errors

    # -- results --------------------------------------------------------------------------
    def _build_seconds(self, outcome: VariantOutcome | None) -> tuple[float | None, int]:
        """Seconds to build the variant from the source (shared steps counted), and steps of unknown time."""
        if outcome is None or outcome.status != "done":
            return None, 0
        total, unknown = 0.0, 0
        for step in outcome.steps:
            seconds = self.state.step_seconds.get(step.get("key") or "")
            if seconds is None:
                unknown += 1
            else:
                total += seconds
        return round(total, 3), unknown

    def results(self, started: float, interrupted: str | None = None) -> StudyResults:
        """results.json's document. An interrupted study records what was built, measures nothing."""
        artifacts, metrics, errors = ([], {}, {}) if interrupted else self.measure()
        entries = measured_artifacts(artifacts, metrics, artifacts[0].key if artifacts else None, self.run_dir)
        baseline = BASELINE if artifacts and artifacts[0].label == BASELINE else None
        variants = [self._variant(v) for v in self.plan.variants]
        ended, reason = _outcome(variants, errors, baseline, interrupted)
        search = self.study.search
        return StudyResults(
            study=self.study.name,
            pipeline=self.study.name,  # so generic readers title it
            finished=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            seconds=round(time.time() - started, 3),
            outcome=ended,
            exit_code=OUTCOME_EXIT_CODES[ended],
            reason=reason,
            device=self.plan.plans[BASELINE].device if BASELINE in self.plan.plans else None,
            hardware=self.hardware,
            libraries=library_versions(),
            model=self.study.model,
            task=self.study.task,
            base=self.study.base,
            measure_settings=self.study.measure,
            executor=self.executor.name,
            measured_on=self._measured_on(metrics, interrupted),
            baseline=baseline,
            search=SearchResult(
                strategy=search.strategy,
                objective=search.objective,
                budget=search.budget,
                time_budget_s=search.time_budget_s,
                stopped_by_time_budget=self.stopped_by_time,
                built=sum(1 for s in self.status.values() if s in ("built", "reused")),
                total=len(self.plan.variants),
            ),
            selection=select(entries, BASELINE, search) if baseline else None,
            variants=variants,
            artifacts=entries,
            measure_errors=errors,
            warnings=self._warnings(entries),
        ).located(self.run_dir)

    def _measured_on(self, metrics: dict[str, list[Metric]], interrupted: str | None) -> str | None:
        """The host of the measurement session (an earlier run's when its measurement was reused)."""
        if interrupted or not metrics:
            return None
        host = self.state.measurement.get("host")
        return host if isinstance(host, str) else socket.gethostname()

    def _variant(self, v: Variant) -> VariantResult:
        outcome = self.outcomes.get(v.name)
        seconds, unknown = self._build_seconds(outcome)
        artifact = outcome.artifact if outcome else None
        return VariantResult.model_validate(
            v.as_dict()
            | {
                "status": self.status.get(v.name, "not run"),
                "note": self.notes.get(v.name),
                "key": artifact.key if artifact else None,
                "format": artifact.format if artifact else None,
                "build_seconds": seconds,
                "steps_of_unknown_time": unknown,
                "step_records": [StepResult.of(s, self.run_dir) for s in outcome.steps] if outcome else [],
                "config": [s for b in v.blocks for s in b.steps],
                "built_on": outcome.built_on if outcome else None,
            }
        )

    def _warnings(self, entries: list[MeasuredArtifact]) -> list[str]:
        seen: dict[str, list[str]] = {}  # warning -> variants it concerns, each said once
        for v in self.plan.variants:
            outcome = self.outcomes.get(v.name)
            for w in [*v.warnings, *(outcome.warnings if outcome else [])]:
                if v.name not in seen.setdefault(w, []):
                    seen[w].append(v.name)
        notes = [w if names == [BASELINE] else f"{w} (in {', '.join(names)})" for w, names in seen.items()]
        for entry in entries[1:]:
            slow = []  # one line per variant, naming each batch-1 shape that gained under 5%
            for m in entry.metrics:
                ratio = m.vs_baseline.get("ratio")
                if m.name.startswith("latency_ms.b1.") and ratio is not None and ratio < 1.05:
                    slow.append(f"{m.name.removeprefix('latency_ms.')} {ratio:.2f}x")
            if slow:
                notes.append(f"{entry.label}: no speed-up at batch 1 on this hardware ({', '.join(slow)} the baseline)")
        if not entries or entries[0].label != BASELINE:
            notes.append("the baseline was not built, so nothing was measured or compared")
        return notes


FAILED = ("failed", "refused")


def _outcome(
    variants: list[VariantResult], errors: dict[str, str], baseline: str | None, interrupted: str | None
) -> tuple[Outcome, str | None]:
    """How the study ended, and why when it did not end as done (the same words as a run's)."""
    if interrupted:
        return "interrupted", interrupted
    why = [f"variant {v.name!r} {v.status}: {v.note}" for v in variants if v.status in FAILED]
    why += [f"measurer {name!r}: {error}" for name, error in errors.items()]
    if baseline is None:
        why.append("the baseline was not built")
    return ("failed", "; ".join(why)) if why else ("done", None)


def run_study(
    study: Study,
    *,
    plugins: Plugins | None = None,
    hardware: Hardware | None = None,
    force: bool = False,
    remeasure: bool = False,
    skip_invalid: bool = False,
    show_progress: bool = False,
    executor: Executor | None = None,
    clock: Callable[[], float] = time.monotonic,
    console: TextIO | None = None,
) -> StudyResult:
    """Plan, build, measure, choose, report. Raises PlanRefused (nothing built) when a variant
    cannot run, unless ``skip_invalid``; the baseline must always be valid."""
    plugins = plugins or build_plugins()
    hardware = hardware or probe(cuda=study.device != "cpu")
    study_plan = plan_study(study, plugins=plugins, hardware=hardware)
    base = next(v for v in study_plan.variants if v.name == BASELINE)
    if base.problems or (study_plan.problems and not skip_invalid):
        _record_refusal(study, study_plan.problems)
        raise PlanRefused(study_plan.problems)
    executor = executor or make_executor(study.executor.name, study.executor.options, plugins)
    display = Display(show_progress, console)
    runner = StudyRunner(
        study_plan,
        plugins,
        hardware,
        executor=executor,
        force=force,
        remeasure=remeasure,
        display=display,
        show_progress=show_progress,
        clock=clock,
    )
    runner.run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(runner.run_dir / "study.json", study.model_dump(mode="json"))
    runner.journal.write("study_started", study=study.name, variants=len(study_plan.variants), force=force)
    _record_running(study, runner.run_dir)
    started = time.time()
    phase = "while building variants"
    try:
        try:
            runner.build()
        finally:
            if callable(close := getattr(executor, "close", None)):
                close()  # every batch is built: the executor releases what it started
        phase = "during measurement"
        data = runner.results(started)
    except KeyboardInterrupt:
        _finish(runner.run_dir, runner.journal, runner.results(started, interrupted=f"interrupted by the user {phase}"))
        raise
    except (Exception, SystemExit) as exc:  # a bug or a library exiting: recorded, never the exit code
        data = _bare_record(study, "failed", f"{error_line(exc)} ({phase})")
        if not isinstance(exc, SystemExit):
            _finish(runner.run_dir, runner.journal, data)
            raise  # a bug keeps its traceback (exit 1)
    _finish(runner.run_dir, runner.journal, data)
    from slimkit.tracking import track

    track(plugins, runner.run_dir, data.located(runner.run_dir), study.tracking, display.line)
    return StudyResult(run_dir=runner.run_dir, results=data)


def _finish(run_dir: Path, journal: Journal, results: StudyResults) -> None:
    """Write results.json, the report and the journal's last line: all three say one outcome."""
    from slimkit.report import publish_results

    publish_results(run_dir, results.located(run_dir), journal, "study_finished", _warn)


def _warn(line: str) -> None:
    import sys

    print(f"! {line}", file=sys.stderr)


def _record_refusal(study: Study, problems: list[str]) -> None:
    """A refused study computes nothing, but its folder must not keep an earlier results.json that
    says otherwise: the refusal is recorded in its place."""
    run_dir = study.run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    data = _bare_record(study, "refused", "the plan was refused: " + "; ".join(problems))
    _finish(run_dir, Journal(run_dir / "journal.jsonl"), data)


def _record_running(study: Study, run_dir: Path) -> None:
    """Until the study ends its record says 'running' with this pid: a study killed outright
    (SIGKILL) never leaves an earlier study's outcome in place."""
    _finish(run_dir, Journal(run_dir / "journal.jsonl"), _bare_record(study, "running", running_reason()))


def _bare_record(study: Study, outcome: Outcome, reason: str) -> StudyResults:
    return StudyResults(
        study=study.name,
        pipeline=study.name,
        finished=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        outcome=outcome,
        exit_code=OUTCOME_EXIT_CODES.get(outcome),
        reason=reason,
    )
