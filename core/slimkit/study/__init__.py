"""Studies: many variants of one pipeline, built through an executor and measured in one session.

- :mod:`slimkit.study.spec`: study files, validation and expansion into variants (re-exported here)
- :mod:`slimkit.study.search`: which variants to build, and which one to recommend
- :mod:`slimkit.study.executors`: what builds the variants (the built-in ``local`` one, plugins' own)
- :mod:`slimkit.study.runner`: ``plan_study`` and ``run_study``

Only the spec is imported here, so that reading a study file imports neither the planner nor the
runner.
"""

from __future__ import annotations

from slimkit.study.spec import (
    BASELINE,
    EXPANSION_MARGIN,
    BlockChoice,
    BlockStep,
    BudgetSpec,
    ExecutorSpec,
    SearchSpec,
    Study,
    Variant,
    VariantSpec,
    block_choices,
    expand,
    load_study,
    study_from_dict,
    study_problems,
    variant_pipeline,
)

__all__ = [
    "BASELINE",
    "EXPANSION_MARGIN",
    "BlockChoice",
    "BlockStep",
    "BudgetSpec",
    "ExecutorSpec",
    "SearchSpec",
    "Study",
    "Variant",
    "VariantSpec",
    "block_choices",
    "expand",
    "load_study",
    "study_from_dict",
    "study_problems",
    "variant_pipeline",
]
