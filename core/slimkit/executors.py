"""Where executors lived before the study subpackage; plugins that provide an executor import from here.

New code imports :mod:`slimkit.study.executors`.
"""

from __future__ import annotations

from slimkit.study.executors import (
    Executor,
    ExecutorContext,
    LocalExecutor,
    VariantJob,
    VariantOutcome,
    make_executor,
    run_job,
)

__all__ = ["Executor", "ExecutorContext", "LocalExecutor", "VariantJob", "VariantOutcome", "make_executor", "run_job"]
