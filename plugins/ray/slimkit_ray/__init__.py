"""slimkit-ray: build a study's variants as Ray tasks (the ``make_executor`` hook).

``[executor] name = "ray"`` in a study file sends each variant to a Ray worker, on this machine
(a local Ray instance started for the study) or on an existing cluster (``address``). Each worker
builds its plugins itself and runs :func:`slimkit.study.executors.run_job`; the study measures
every variant in one session on the driver, as with the local executor. Options:
:class:`slimkit_ray.options.RayOptions`; docs/plugins/ray.md. Ray is imported only when a study
runs on it, so that loading the plugin stays cheap.
"""

from __future__ import annotations

from typing import Any

import slimkit
from slimkit_ray.options import RayOptions, parse_options

__all__ = ["RayOptions", "make_executor"]

NAME = "ray"


@slimkit.hookimpl
def make_executor(name: str, options: dict[str, Any]) -> Any | None:
    if name != NAME:
        return None
    from slimkit_ray.executor import RayExecutor

    return RayExecutor(parse_options(options))
