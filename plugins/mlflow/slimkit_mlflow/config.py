"""The ``[tracking] mlflow`` table, validated, and where to record (pydantic only: cheap to import)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from slimkit.errors import SlimkitError
from slimkit.validation import error_message, field_path

URI_ENV = "MLFLOW_TRACKING_URI"
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
DOCS = "docs/plugins/mlflow.md"


class MlflowTracking(BaseModel):
    """``[tracking] mlflow = {uri = "http://127.0.0.1:5000", experiment = "minilm"}``."""

    model_config = ConfigDict(extra="forbid")

    uri: str | None = Field(
        default=None,
        min_length=1,
        description="Tracking URI: an MLflow server (http://host:port), or sqlite:///file.db, file:./mlruns, "
        "databricks; default: the MLFLOW_TRACKING_URI environment variable.",
    )
    experiment: str | None = Field(
        default=None,
        min_length=1,
        description="Experiment name, created when absent; default: MLFLOW_EXPERIMENT_NAME, else the "
        "pipeline's or study's name.",
    )
    run_name: str | None = Field(
        default=None, min_length=1, description="Name of the MLflow run; default: the pipeline's or study's name."
    )
    tags: dict[str, str] = Field(default_factory=dict, description="More tags set on the run (a study's parent run).")
    log_model: bool = Field(
        default=False,
        description="Also log the run's output model (a study's chosen variant) as an MLflow model: the ONNX "
        "flavour for an onnx artifact, the transformers flavour for a transformers folder.",
    )
    enabled: bool = Field(default=True, description="false records nothing, even when MLFLOW_TRACKING_URI is set.")


# One example per field, for the fix of a one-line error.
EXAMPLES = {
    "uri": 'uri = "http://127.0.0.1:5000"',
    "experiment": 'experiment = "minilm"',
    "run_name": 'run_name = "minilm-int8"',
    "tags": 'tags = {team = "search"}',
    "log_model": "log_model = true",
    "enabled": "enabled = false",
}


@dataclass(frozen=True)
class Settings:
    """Where and what to record, the table and the environment resolved."""

    uri: str
    experiment: str | None
    run_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    log_model: bool = False


def _error(exc: ValidationError) -> SlimkitError:
    err = exc.errors()[0]
    where = "tracking.mlflow." + field_path(err["loc"])
    name = str(err["loc"][0]) if err["loc"] else ""
    if err["type"] == "extra_forbidden":
        fix = f"the fields are {', '.join(MlflowTracking.model_fields)}; see {DOCS}"
        return SlimkitError(f"{where}: unknown field", fix=fix)
    return SlimkitError(f"{where}: {error_message(err)}", fix=f"write it as {EXAMPLES.get(name, name)}")


def resolve_settings(tracking: dict[str, Any] | None) -> Settings | None:
    """The settings to record with, or None when neither the table nor MLFLOW_TRACKING_URI asks for
    MLflow. A bad table raises a one-line SlimkitError naming ``tracking.mlflow.<field>``."""
    table = (tracking or {}).get("mlflow")
    env_uri = os.environ.get(URI_ENV) or None
    if table is None and env_uri is None:
        return None
    if not isinstance(table, dict | None):
        raise SlimkitError(
            f"tracking.mlflow: expected a table, got {type(table).__name__}",
            fix='write [tracking] mlflow = {uri = "http://127.0.0.1:5000", experiment = "minilm"}',
        )
    try:
        config = MlflowTracking.model_validate(table or {})
    except ValidationError as exc:
        raise _error(exc) from None
    if not config.enabled:
        return None
    uri = config.uri or env_uri
    if uri is None:
        raise SlimkitError(
            f"tracking.mlflow.uri: no tracking server given, and {URI_ENV} is not set",
            fix=f"write it as {EXAMPLES['uri']}, or set {URI_ENV}",
        )
    return Settings(
        uri=uri,
        experiment=config.experiment or os.environ.get(EXPERIMENT_ENV) or None,
        run_name=config.run_name,
        tags=config.tags,
        log_model=config.log_model,
    )
