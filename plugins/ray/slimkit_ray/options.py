"""``[executor] options`` of the ray executor, validated (pydantic only: cheap to import)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from slimkit.errors import SlimkitError
from slimkit.validation import error_message, field_path

DOCS = "docs/plugins/ray.md"


class RayOptions(BaseModel):
    """``[executor] name = "ray"`` with ``options = {address = "auto", num_cpus = 2}``."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(
        default=None,
        min_length=1,
        description="The Ray cluster to use: 'auto' (the cluster `ray start` started on this machine), "
        "'host:port' (its GCS address) or 'ray://host:10001' (Ray Client); default: start a local Ray "
        "instance for the study and stop it afterwards.",
    )
    num_cpus: float = Field(default=1, ge=0, description="CPUs each variant's task reserves.")
    num_gpus: float = Field(default=0, ge=0, description="GPUs each variant's task reserves.")
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources each task reserves, e.g. {builder = 1} to build only on the "
        "nodes started with --resources='{\"builder\": 4}'.",
    )
    runtime_env: dict[str, Any] = Field(
        default_factory=dict,
        description="Ray runtime environment of each task (env_vars, py_modules, working_dir, pip, ...); "
        "the driver's SLIMKIT_* variables reach the workers unless given here.",
    )
    max_retries: int = Field(
        default=0,
        ge=0,
        description="How many times a variant whose worker died (crash, killed, node lost) is started again "
        "before it is recorded as failed.",
    )


# One example per field, for the fix of a one-line error.
EXAMPLES = {
    "address": 'address = "auto"',
    "num_cpus": "num_cpus = 2",
    "num_gpus": "num_gpus = 1",
    "resources": "resources = {builder = 1}",
    "runtime_env": 'runtime_env = {env_vars = {HF_HUB_OFFLINE = "1"}}',
    "max_retries": "max_retries = 1",
}


def parse_options(options: Any) -> RayOptions:
    """The options, or a one-line SlimkitError naming ``executor.options.<field>`` and the fix."""
    if not isinstance(options, dict):
        raise SlimkitError(
            f"executor.options: expected a table, got {type(options).__name__}",
            fix='write options = {address = "auto"}',
        )
    try:
        return RayOptions.model_validate(options)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = "executor.options." + field_path(err["loc"])
        name = str(err["loc"][0]) if err["loc"] else ""
        if err["type"] == "extra_forbidden":
            fix = f"the options are {', '.join(RayOptions.model_fields)}; see {DOCS}"
            raise SlimkitError(f"{where}: unknown option", fix=fix) from None
        raise SlimkitError(f"{where}: {error_message(err)}", fix=f"write it as {EXAMPLES.get(name, name)}") from None
