"""Record a finished run (one MLflow run) or study (a parent run, one nested run per variant).

Imported only when a run is to be recorded: this is where mlflow is imported.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from slimkit.errors import SlimkitError
from slimkit.results import RESULTS_FILE, MeasuredArtifact, Results, RunResults, StudyResults, resolve_path
from slimkit_mlflow import names
from slimkit_mlflow.config import DOCS, Settings

MODEL_NAME = "model"
SUPPRESS_URL_ENV = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"
# The files of a run or study folder logged as artifacts (beside its plots, *.png).
FILES = (RESULTS_FILE, "report.md", "report.html", "pipeline.json", "study.json")
STATUS = {"done": "FINISHED", "interrupted": "KILLED", "running": "RUNNING"}
VARIANT_STATUS = {"built": "FINISHED", "reused": "FINISHED", "skipped": "KILLED", "not run": "KILLED"}


def record(settings: Settings, run_dir: Path, results: Results) -> str:
    """Log ``results`` (written in ``run_dir``) to MLflow; return the console line naming the run."""
    check_reachable(settings.uri)
    from mlflow import MlflowClient

    with _quiet():
        client = MlflowClient(tracking_uri=settings.uri)
        experiment = settings.experiment or results.title
        experiment_id = _experiment(client, experiment, settings.uri)
        recorder = _Recorder(client, experiment_id, settings, run_dir, results)
        if isinstance(results, StudyResults):
            run_id = recorder.study(results)
            extra = f" (parent of {len(results.variants)} variant run(s))"
        else:
            assert isinstance(results, RunResults)
            run_id = recorder.run(results)
            extra = ""
    where = f"MLflow: run {run_id}{extra} in experiment {experiment!r} at {settings.uri}"
    if urlsplit(settings.uri).scheme in ("http", "https"):
        where += f" ({settings.uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id})"
    return where


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail in seconds when an http(s) server does not answer at all: MLflow's client retries a
    refused connection for minutes (MLFLOW_HTTP_REQUEST_MAX_RETRIES) before it gives up. Left to
    the client when a proxy stands between."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    if urllib.request.getproxies().get(parts.scheme) and not urllib.request.proxy_bypass(parts.hostname):
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as exc:
        raise SlimkitError(
            f"the MLflow tracking server at {uri} is not reachable ({exc.strerror or exc})",
            fix="start it (mlflow server --host 127.0.0.1 --port 5000) or correct tracking.mlflow.uri",
        ) from None


@contextmanager
def _quiet() -> Iterator[None]:
    """MLflow's own lines stay out of slimkit's console: its info logs, and the two "View run" lines
    it writes to standard output for every run it ends (the hook returns one line instead)."""
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    previous = os.environ.get(SUPPRESS_URL_ENV)
    os.environ[SUPPRESS_URL_ENV] = "true"
    try:
        yield
    finally:
        logger.setLevel(level)
        if previous is None:
            os.environ.pop(SUPPRESS_URL_ENV, None)
        else:
            os.environ[SUPPRESS_URL_ENV] = previous


def _experiment(client: Any, name: str, uri: str) -> str:
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return str(client.create_experiment(name))
        except MlflowException:  # created meanwhile by another process
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    if found.lifecycle_stage == "deleted":
        raise SlimkitError(
            f"MLflow experiment {name!r} at {uri} is deleted",
            fix=f"restore it (mlflow experiments restore --experiment-id {found.experiment_id}) "
            "or name another one in tracking.mlflow.experiment",
        )
    return str(found.experiment_id)


def _millis(results: Results) -> tuple[int, int]:
    """(start, end) of the run in epoch milliseconds, from results.json's finish time and length."""
    end = time.time()
    if results.finished:
        with suppress(ValueError):
            end = dt.datetime.fromisoformat(results.finished).timestamp()
    return int((end - (results.seconds or 0)) * 1000), int(end * 1000)


class _Recorder:
    def __init__(self, client: Any, experiment_id: str, settings: Settings, run_dir: Path, results: Results) -> None:
        self.client = client
        self.experiment_id = experiment_id
        self.settings = settings
        self.run_dir = run_dir
        self.start, self.end = _millis(results)

    # -- one MLflow run ----------------------------------------------------------------------
    @contextmanager
    def _run(self, name: str, tags: Mapping[str, Any], parent: str | None = None) -> Iterator[str]:
        """Create a run and yield its id; end it FAILED if logging breaks half-way."""
        all_tags = names.tags(tags) | ({"mlflow.parentRunId": parent} if parent else {})
        run = self.client.create_run(self.experiment_id, start_time=self.start, tags=all_tags, run_name=name)
        run_id = str(run.info.run_id)
        try:
            yield run_id
        except BaseException:
            with suppress(Exception):  # the server went away: the first error is the one to report
                self.client.set_terminated(run_id, "FAILED", end_time=self.end)
            raise

    def _log(self, run_id: str, params: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric, Param

        self.client.log_batch(
            run_id,
            metrics=[Metric(k, v, self.end, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in names.params(params).items()],
        )

    def _files(self, run_id: str) -> None:
        for name in FILES:
            if (self.run_dir / name).is_file():
                self.client.log_artifact(run_id, str(self.run_dir / name))
        for plot in sorted(self.run_dir.glob("*.png")):
            self.client.log_artifact(run_id, str(plot), "plots")

    # -- a run -------------------------------------------------------------------------------
    def run(self, results: RunResults) -> str:
        output = results.artifacts[-1] if results.artifacts else None
        tags = names.context_tags(results, "run") | self.settings.tags
        tags |= {
            "slimkit.output": output.label if output else None,
            "slimkit.baseline": results.baseline,
            "slimkit.run_dir": str(self.run_dir.resolve()),
            "mlflow.note.content": results.reason or results.error,
        }
        tags |= {f"step.{n}.status": s.status for n, s in enumerate(results.steps, start=1)}
        if missing := names.unmeasured(results.artifacts):
            tags["slimkit.unmeasured"] = ", ".join(missing)
        with self._run(self.settings.run_name or results.pipeline, tags) as run_id:
            metrics: dict[str, float] = {}
            for artifact in results.artifacts:
                metrics |= names.figures(artifact, prefix=artifact.label)
            if output is not None:
                metrics |= names.figures(output)
            metrics |= {
                f"step.{n}.seconds": s.seconds for n, s in enumerate(results.steps, start=1) if s.seconds is not None
            }
            if results.seconds is not None:
                metrics["slimkit.seconds"] = results.seconds
            self._log(run_id, names.run_params(results), metrics)
            self._files(run_id)
            if self.settings.log_model and output is not None:
                self._model(run_id, output)
            self.client.set_terminated(run_id, STATUS.get(results.outcome or "done", "FAILED"), end_time=self.end)
        return run_id

    # -- a study -----------------------------------------------------------------------------
    def study(self, results: StudyResults) -> str:
        selection = results.selection
        chosen = selection.chosen if selection else None
        by_label = {a.label: a for a in results.artifacts}
        tags = names.context_tags(results, "study") | self.settings.tags
        tags |= {
            "slimkit.chosen": chosen or "(none)",
            "slimkit.meets_budget": selection.meets_budget if selection else None,
            "slimkit.run_dir": str(self.run_dir.resolve()),
            "mlflow.note.content": (selection.reason if selection else None) or results.reason,
        }
        with self._run(self.settings.run_name or results.study, tags) as parent:
            metrics = names.figures(by_label[chosen]) if chosen in by_label else {}
            if results.seconds is not None:
                metrics["slimkit.seconds"] = results.seconds
            if results.search is not None:
                metrics |= {"search.built": float(results.search.built), "search.total": float(results.search.total)}
            self._log(parent, names.study_params(results), metrics)
            for variant in results.variants:
                self._variant(results, variant, by_label.get(variant.name), parent)
            self._files(parent)
            if self.settings.log_model and chosen in by_label:
                self._model(parent, by_label[chosen])
            self.client.set_terminated(parent, STATUS.get(results.outcome or "done", "FAILED"), end_time=self.end)
        return parent

    def _variant(self, results: StudyResults, variant: Any, artifact: MeasuredArtifact | None, parent: str) -> None:
        selection = results.selection
        tags = names.context_tags(results, "variant") | {
            "slimkit.variant": variant.name,
            "slimkit.variant.status": variant.status,
            "slimkit.variant.blocks": "+".join(variant.blocks) or "(none)",
            "slimkit.format": variant.format,
            "slimkit.chosen": bool(selection and selection.chosen == variant.name),
            "slimkit.pareto_front": bool(selection and variant.name in selection.pareto_front),
            "slimkit.within_budget": bool(selection and variant.name in selection.within_budget),
            "mlflow.note.content": "; ".join(filter(None, [variant.note, *variant.problems])) or None,
        }
        if artifact is not None and (missing := names.unmeasured([artifact])):
            tags["slimkit.unmeasured"] = ", ".join(missing)
        with self._run(variant.name, tags, parent=parent) as run_id:
            metrics = names.figures(artifact) if artifact is not None else {}
            if variant.build_seconds is not None:
                metrics["slimkit.build_seconds"] = variant.build_seconds
            self._log(run_id, names.variant_params(results, variant), metrics)
            self.client.set_terminated(run_id, VARIANT_STATUS.get(variant.status, "FAILED"), end_time=self.end)

    # -- the model ---------------------------------------------------------------------------
    def _model(self, run_id: str, artifact: MeasuredArtifact) -> None:
        """Log ``artifact`` as an MLflow model named ``model`` in the run, through the flavour of its
        format; any other format is left out, and a tag says why."""
        import mlflow

        path = resolve_path(artifact.path, self.run_dir)
        if artifact.format not in ("onnx", "transformers"):
            why = f"not logged: slimkit-mlflow logs onnx and transformers models, not {artifact.format!r}"
            self.client.set_tag(run_id, "slimkit.model", why)
            return
        if not path.exists():
            raise SlimkitError(
                f"tracking.mlflow.log_model: the model {artifact.label!r} is no longer at {path}",
                fix=f"rerun to rebuild it, or set log_model = false (see {DOCS})",
            )
        with _tracking_uri(self.settings.uri), mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None):
            where = _name_argument()
            if artifact.format == "onnx":
                import onnx

                model = onnx.load(str(path / "model.onnx" if path.is_dir() else path))
                mlflow.onnx.log_model(model, **where, pip_requirements=_requirements("onnx", "onnxruntime"))
            else:
                from transformers import pipeline

                # A pipeline object, not the folder's path: MLflow's reading of a local checkpoint
                # fails with transformers 5 (its task registry holds class names there).
                classifier = pipeline("text-classification", model=str(path), tokenizer=str(path), device="cpu")
                mlflow.transformers.log_model(
                    transformers_model=classifier,
                    **where,
                    pip_requirements=_requirements("transformers", "torch", "tokenizers"),
                )
        self.client.set_tag(run_id, "slimkit.model", f"{MODEL_NAME}: {artifact.label} ({artifact.format})")


def _name_argument() -> dict[str, str]:
    """mlflow 3 names a logged model with ``name``; 2.x with ``artifact_path``."""
    import mlflow

    return {"name" if int(mlflow.__version__.split(".")[0]) >= 3 else "artifact_path": MODEL_NAME}


def _requirements(*dists: str) -> list[str]:
    """Pinned to what this machine has, so that MLflow does not infer them (a slow, noisy subprocess)."""
    import importlib.metadata as md

    pins = []
    for dist in dists:
        try:
            pins.append(f"{dist}=={md.version(dist)}")
        except md.PackageNotFoundError:
            continue
    return pins


@contextmanager
def _tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (which logs models) at ``uri`` for the block, then back."""
    import mlflow
    from mlflow.tracking._tracking_service import utils

    if hasattr(utils, "_use_tracking_uri"):  # mlflow's own, which restores an unset URI too
        with utils._use_tracking_uri(uri):
            yield
        return
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)
