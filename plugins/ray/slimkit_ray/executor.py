"""The ray executor: one Ray task per variant, outcomes streamed back as tasks finish."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from typing import Any

from slimkit.errors import SlimkitError, error_line
from slimkit.study.executors import ExecutorContext, VariantJob, VariantOutcome
from slimkit_ray.options import DOCS, RayOptions

FORWARDED_PREFIX = "SLIMKIT_"  # the driver's settings the workers must share (plugins, cache, trust)


class RayExecutor:
    """Sends every job of a batch to Ray at once; Ray queues what the cluster cannot run yet."""

    name = "ray"

    def __init__(self, options: RayOptions) -> None:
        self.options = options
        self._started = False  # whether we started (or joined) Ray, and so must shut it down in close()

    def close(self) -> None:
        """The study is built: stop the local instance we started (only disconnect from a cluster).
        A search hands over one batch per trial, so Ray is started once, not once per batch."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def run(self, jobs: Sequence[VariantJob], context: ExecutorContext) -> Iterator[VariantOutcome]:
        if not jobs:
            return
        import ray

        from slimkit_ray.worker import build_variant

        try:  # Ray checks what pydantic cannot (e.g. CPU given in resources) before anything starts
            task = ray.remote(build_variant).options(**self.task_options())
        except (TypeError, ValueError) as exc:
            raise SlimkitError(f"executor.options: Ray refused them: {error_line(exc)}", fix=f"see {DOCS}") from None
        self._started = self._connect(ray) or self._started
        settings = worker_settings(context, self.options)
        refs: dict[Any, VariantJob] = {}
        waiting: list[Any] = []  # submitted, not yet handed over
        try:
            for job in jobs:
                ref = task.remote(dataclasses.asdict(job), settings)
                refs[ref] = job
                waiting.append(ref)
            while waiting:
                ready, waiting = ray.wait(waiting, num_returns=1)
                for ref in ready:
                    yield self._outcome(ray, ref, refs[ref])
        finally:
            # The study closed us (time budget, Ctrl-C, a bug): nothing of ours may keep building.
            for ref in waiting:
                ray.cancel(ref, force=True)

    def task_options(self) -> dict[str, Any]:
        o = self.options
        options: dict[str, Any] = {
            "num_cpus": o.num_cpus,
            "num_gpus": o.num_gpus,
            "resources": dict(o.resources),
            "max_retries": o.max_retries,
            "retry_exceptions": False,  # run_job turns the variant's own errors into outcomes
        }
        # Only the user's runtime_env: any runtime_env makes Ray start workers of their own for it
        # instead of the ones it keeps warm (the driver's SLIMKIT_* settings travel with the job).
        if o.runtime_env:
            options["runtime_env"] = dict(o.runtime_env)
        return options

    def _connect(self, ray: Any) -> bool:
        """Use the Ray this process already joined, else join ``address`` or start a local one.
        Returns whether we did (and so must shut it down)."""
        if ray.is_initialized():
            return False
        address = self.options.address
        try:
            if address:
                ray.init(address=address)
            else:
                ray.init(address="local", include_dashboard=False)  # never a cluster found by chance
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"at {address!r}" if address else "on this machine"
            raise SlimkitError(
                f"executor.options.address: cannot start or reach Ray {where}: {error_line(exc)}",
                fix="start the cluster with `ray start --head` and give its address (or 'auto'), "
                "or leave address out to start a local instance",
            ) from None
        return True

    def _outcome(self, ray: Any, ref: Any, job: VariantJob) -> VariantOutcome:
        """The worker's outcome, or a failed one saying why Ray could not deliver it."""
        from ray import exceptions as rx

        try:
            return VariantOutcome.from_dict(ray.get(ref))
        except rx.RuntimeEnvSetupError as exc:
            why = f"Ray could not set up executor.options.runtime_env: {_first_line(exc)}"
        except rx.RayTaskError as exc:  # the task itself raised: a bug in the plugin or the worker's slimkit
            cause = getattr(exc, "cause", None)
            why = f"the Ray task raised {error_line(cause) if cause is not None else _first_line(exc)}"
        except rx.RayError as exc:  # the worker or its node died (crash, OOM kill, node lost)
            tries = self.options.max_retries
            again = f" (after {tries} retr{'y' if tries == 1 else 'ies'})" if tries else ""
            why = f"the Ray worker building it died{again}: {error_line(exc)}"
        return VariantOutcome(name=job.name, status="failed", error=why)


def worker_settings(context: ExecutorContext, options: RayOptions) -> dict[str, Any]:
    """What a worker needs to build its plugins and probe its hardware as the driver did: the
    driver's SLIMKIT_* settings (plugins, cache, trust) but those the user's runtime_env sets."""
    plugins = context.plugins
    loaded = plugins.loaded() if plugins is not None else []
    theirs = options.runtime_env.get("env_vars") or {}
    return {
        "env": {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_PREFIX) and k not in theirs},
        "trust_local": bool(getattr(plugins, "trust_local", False)),
        "cuda": bool(options.num_gpus) or bool(context.hardware.cuda),
        # Installed plugins only: one registered in the driver's process cannot travel.
        "plugins": {r.name: r.version for r in loaded if r.origin == "entry-point"},
    }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
