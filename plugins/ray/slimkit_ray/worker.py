"""What runs on a Ray worker: build one variant with plugins and hardware of the worker's own.

Only plain data crosses the wire: the job (a dict of :class:`~slimkit.study.executors.VariantJob`)
and the outcome (:meth:`~slimkit.study.executors.VariantOutcome.as_dict`). The worker builds its
plugin manager as the driver did (entry points, chosen by the forwarded SLIMKIT_LOAD_PLUGINS; the
pipeline's local plugin files, when the driver trusts them), so a plugin that the driver has and the
worker lacks fails the variant with a line that says so, instead of an 'unknown technique'.
"""

from __future__ import annotations

import functools
import os
import socket
from typing import Any

from slimkit.study.executors import ExecutorContext, VariantJob, VariantOutcome, run_job


def where() -> str:
    """This machine, and the Ray node when inside one: two nodes may share a hostname."""
    host = socket.gethostname()
    try:
        import ray

        node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:  # outside a worker, or an older Ray: the hostname alone
        node = None
    return f"{host} [node {node[:8]}]" if node else host


def build_variant(job: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """The Ray task: build ``job`` and return its outcome as a dict. Never raises for the variant's
    own failures (run_job records them); a dying worker is the executor's to report."""
    here = where()
    env: dict[str, str] = settings.get("env") or {}
    os.environ.update(env)  # the driver's SLIMKIT_* settings, before plugins load
    trust_local, cuda = bool(settings.get("trust_local")), bool(settings.get("cuda"))
    plugins, hardware = worker_state(trust_local, cuda, tuple(sorted(env.items())))
    theirs = {r.name: r.version for r in plugins.loaded()}
    ours: dict[str, str | None] = settings.get("plugins") or {}
    missing = sorted(name for name in ours if name not in theirs)
    if missing:
        return VariantOutcome(
            name=job["name"],
            status="failed",
            error=f"plugin(s) {', '.join(missing)} loaded on the driver are not installed on the Ray worker "
            f"on {here} (install them on every node, or give them in executor.options.runtime_env)",
            built_on=here,
        ).as_dict()
    outcome = run_job(VariantJob(**job), ExecutorContext(plugins=plugins, hardware=hardware))
    outcome.built_on = here
    outcome.warnings += [
        f"plugin {name} is {theirs[name]} on {here} but {version} on the driver"
        for name, version in sorted(ours.items())
        if theirs.get(name) != version
    ]
    return outcome.as_dict()


@functools.cache
def worker_state(trust_local: bool, cuda: bool, env: tuple[tuple[str, str], ...]) -> tuple[Any, Any]:
    """The plugin manager and hardware of this worker process, built by its first task: Ray reuses
    a worker for the tasks that follow, which share them as the local executor's variants do
    (``env``, the SLIMKIT_* settings they were built under, is part of the key)."""
    from slimkit.hardware import probe
    from slimkit.plugins import build_plugins

    return build_plugins(trust_local=trust_local), probe(cuda=cuda)
