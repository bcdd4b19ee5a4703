"""Executors build a study's variants. The study hands them jobs and reads outcomes; nothing else.

The interface is one method::

    run(jobs, context) -> iterator of VariantOutcome (in any order, as variants finish)

and, optionally, ``close()``, which the study calls once every batch is built (a search hands over
one batch per trial): the place to release what ``run`` started, such as a local cluster.

A job is plain data (the variant's pipeline as JSON and the folder its relative paths resolve
against), so an executor can ship it to another process or machine; the outcome is plain data too
(the final artifact, the steps' records, the machine that built it). The study closes the iterator
when its time budget runs out: an executor stops starting jobs then (a ``finally`` block is the place
to cancel queued ones).
Artifacts must end up where the study can read them for the one measurement session, for example
in a step store on a shared file system.

A plugin provides an executor through the ``make_executor(name, options)`` hook; the study file
chooses it with ``[executor] name = "..."``. The built-in ``local`` executor builds variants one
after another in this process with :func:`slimkit.runner.run_pipeline`.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from slimkit.artifacts import Artifact
from slimkit.errors import PlanRefused, SlimkitError, error_line
from slimkit.hardware import Hardware


@dataclass(frozen=True)
class VariantJob:
    """Build one variant: run its pipeline (measurement off) and report its final artifact."""

    name: str
    pipeline: dict[str, Any]  # Pipeline.model_dump(mode="json", exclude_unset=True)
    base_dir: str  # folder the pipeline's relative paths resolve against
    force: bool = False  # recompute steps instead of reusing the store's


@dataclass
class VariantOutcome:
    name: str
    status: str  # done | failed | refused
    artifact: Artifact | None = None
    source: Artifact | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)  # the runner's step records
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    built_on: str | None = None  # the machine that built it (hostname; an executor may add its node)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "artifact": self.artifact.model_dump(mode="json") if self.artifact else None,
            "source": self.source.model_dump(mode="json") if self.source else None,
            "steps": self.steps,
            "error": self.error,
            "warnings": self.warnings,
            "built_on": self.built_on,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VariantOutcome:
        return cls(
            name=data["name"],
            status=data["status"],
            artifact=Artifact.model_validate(data["artifact"]) if data.get("artifact") else None,
            source=Artifact.model_validate(data["source"]) if data.get("source") else None,
            steps=list(data.get("steps") or []),
            error=data.get("error"),
            warnings=list(data.get("warnings") or []),
            built_on=data.get("built_on"),
        )


@dataclass
class ExecutorContext:
    """What the study lends an executor running in its process (a remote one may ignore it)."""

    plugins: Any  # the slimkit.plugins.Plugins facade of the study
    hardware: Hardware
    show_progress: bool = False


@runtime_checkable
class Executor(Protocol):
    name: str

    def run(self, jobs: Sequence[VariantJob], context: ExecutorContext) -> Iterator[VariantOutcome]: ...


class LocalExecutor:
    """Builds variants one after another in this process, sharing the study's plugins."""

    name = "local"

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        if options:
            raise SlimkitError(
                f"executor.options: the local executor takes no options, got {sorted(options)}",
                fix="remove [executor] options",
            )

    def run(self, jobs: Sequence[VariantJob], context: ExecutorContext) -> Iterator[VariantOutcome]:
        for job in jobs:
            yield run_job(job, context)


def run_job(job: VariantJob, context: ExecutorContext) -> VariantOutcome:
    """Build one variant with the runner. A refused plan or a failed step is an outcome, not an error."""
    from slimkit.runner import run_pipeline
    from slimkit.spec import pipeline_from_dict

    pipeline = pipeline_from_dict(job.pipeline, base_dir=Path(job.base_dir))
    host = socket.gethostname()
    try:
        result = run_pipeline(
            pipeline,
            plugins=context.plugins,
            hardware=context.hardware,
            force=job.force,
            show_progress=context.show_progress,
            track=False,  # the study records itself once it is measured
        )
    except PlanRefused as exc:
        return VariantOutcome(name=job.name, status="refused", error="; ".join(exc.problems), built_on=host)
    except (Exception, SystemExit) as exc:  # no plugin can load the model, or a bug: in the variant's own results
        return VariantOutcome(name=job.name, status="failed", error=error_line(exc), built_on=host)
    steps = [s.as_dict() for s in result.steps]
    final = result.steps[-1].artifact if result.steps else result.source
    ok = result.outcome == "done" and final is not None
    return VariantOutcome(
        name=job.name,
        status="done" if ok else "failed",
        artifact=final if ok else None,
        source=result.source,
        steps=steps,
        error=None if ok else result.reason or "the variant built no model",
        # Only what the run itself warned about: the study plans every variant afresh each time it
        # runs, so a plan warning stored here would repeat a plugin's old wording after it changed.
        warnings=[w for w in result.warnings if w not in result.plan.warnings],
        built_on=host,
    )


def make_executor(name: str, options: dict[str, Any], plugins: Any) -> Executor:
    """The executor a study file names: a plugin's (``make_executor`` hook) or the built-in local one."""
    found = plugins.make_executor(name, options) if plugins is not None else None
    if found is not None:
        if not isinstance(found, Executor):
            raise SlimkitError(f"the executor {name!r} that a plugin returned has no run(jobs, context) method")
        return found
    if name == "local":
        return LocalExecutor(options)
    raise SlimkitError(
        f"executor.name: no installed plugin provides an executor named {name!r}",
        fix="install the plugin that provides it, or use name = 'local'",
    )
