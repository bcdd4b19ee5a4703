"""slimkit-mlflow: record every finished run and study in MLflow (the ``after_run`` hook).

A ``slimkit run`` becomes one MLflow run; a study (``slimkit study``, ``slimkit compress``)
becomes a parent run with one nested run per variant. Each run gets the recipe as parameters,
every measured metric with its spread and its comparison with the baseline, the machine and
library versions as tags, and report.md, report.html, the plots and results.json as artifacts;
with ``log_model = true`` the run's output (a study's chosen variant) is logged as an MLflow
model (ONNX or transformers flavour). Names: docs/plugins/mlflow.md.

Configured by the pipeline's or study's ``[tracking] mlflow = {uri = ..., experiment = ...}``
table (see :class:`slimkit_mlflow.config.MlflowTracking`) or by ``MLFLOW_TRACKING_URI`` (and
``MLFLOW_EXPERIMENT_NAME``); with neither, the plugin records nothing. mlflow itself is imported
only when there is something to record, so that loading the plugin stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import slimkit
from slimkit_mlflow.config import MlflowTracking, resolve_settings

if TYPE_CHECKING:
    from slimkit.results import Results

__all__ = ["MlflowTracking", "after_run"]


@slimkit.hookimpl
def after_run(run_dir: Path, results: Results, tracking: dict[str, dict[str, Any]]) -> str | None:
    settings = resolve_settings(tracking)
    if settings is None:
        return None
    from slimkit_mlflow.record import record

    return record(settings, run_dir, results)
