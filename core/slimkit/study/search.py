"""Which variants a study builds, and which one it recommends.

Strategies decide the order (and, for 'random' and 'levelwise', the subset) of variants to build;
:func:`select` picks the variant that best meets the accuracy budget for the objective and computes
the Pareto front. Both work on plain data so they can be tested without building anything.

- ``grid``: every variant, the baseline first, then one block, two blocks, ... so that a time
  budget that runs out still leaves the simplest variants built.
- ``random``: the baseline, every explicit variant, and a seeded sample of the search space.
- ``levelwise``: level by level (one block, then two, ...). Between levels the new variants are
  screened (accuracy only, which is deterministic and cheap next to timing) and a combination is
  not built when a combination it contains already lost more than the budget: compressing more
  seldom wins accuracy back. Recovery steps belong inside a block (prune + finetune) for this reason.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence

from slimkit.pareto import pareto_front, primary_accuracy, primary_latency
from slimkit.results import MeasuredArtifact, Selection, metric_names
from slimkit.study.spec import SearchSpec, Variant


class Search:
    """Proposes batches of variants; ``observe`` feeds back each built variant's accuracy loss."""

    def __init__(self, variants: Sequence[Variant], spec: SearchSpec) -> None:
        self.spec = spec
        self.variants = list(variants)
        self.skipped: dict[str, str] = {}  # variant name -> why it was not built
        self.losses: dict[str, float | None] = {}  # variant name -> points lost (None: unknown)
        self._started = False
        chosen = self._chosen()
        self._pending = sorted(chosen, key=lambda v: v.level)  # stable: explicit ones first within a level

    @property
    def screens(self) -> bool:
        """Whether the study must screen accuracy after each batch (only 'levelwise' uses it)."""
        return self.spec.strategy == "levelwise"

    def _chosen(self) -> list[Variant]:
        if self.spec.strategy != "random":
            return self.variants
        fixed = [v for v in self.variants if v.explicit]
        pool = [v for v in self.variants if not v.explicit]
        rng = random.Random(self.spec.seed)
        drawn = {v.name for v in rng.sample(pool, min(self.spec.samples, len(pool)))}
        for v in pool:
            if v.name not in drawn:
                self.skipped[v.name] = f"not drawn by the random search (samples = {self.spec.samples})"
        keep = drawn | {v.name for v in fixed}
        return [v for v in self.variants if v.name in keep]

    def observe(self, name: str, loss_points: float | None) -> None:
        self.losses[name] = loss_points

    def next_batch(self) -> list[Variant]:
        """The next variants to build; empty when the search is over."""
        if not self.screens:
            if self._started:
                return []
            self._started = True
            return list(self._pending)
        if not self._pending:
            return []
        level = self._pending[0].level
        batch = [v for v in self._pending if v.level == level]
        self._pending = [v for v in self._pending if v.level != level]
        kept = []
        for variant in batch:
            # A variant the study file names is always built: the user asked for its figures.
            culprit = None if variant.explicit else self._broken_subset(variant)
            if culprit is None:
                kept.append(variant)
            else:
                loss = self.losses[culprit]
                self.skipped[variant.name] = (
                    f"not built: {culprit} already lost {loss:.2f} points, more than the budget "
                    f"of {self.spec.budget.max_drop_points:g}"
                )
        return kept or self.next_batch()

    def _broken_subset(self, variant: Variant) -> str | None:
        mine = set(variant.block_labels)
        limit = self.spec.budget.max_drop_points
        for other in self.variants:
            loss = self.losses.get(other.name)
            theirs = set(other.block_labels)
            if loss is not None and loss > limit and theirs and theirs < mine:
                return other.name
        return None


# -- Choosing -------------------------------------------------------------------------------


def objective_metric(objective: str, names: Collection[str]) -> str | None:
    """The metric name an objective stands for among the names of the measured metrics."""
    if objective == "latency":
        return primary_latency(names)
    if objective == "size":
        return "size_bytes"
    return objective


def accuracy_metric(requested: str | None, accuracy_names: Collection[str]) -> str | None:
    """The accuracy metric the budget is about, among the names of the accuracy metrics measured."""
    if requested is not None:
        return requested if requested in accuracy_names else None
    return primary_accuracy(accuracy_names)


def _values(artifact: MeasuredArtifact, name: str) -> tuple[float | None, dict[str, float]]:
    metric = artifact.metric(name)
    return (None, {}) if metric is None else (metric.value, metric.vs_baseline)


def select(artifacts: Sequence[MeasuredArtifact], baseline: str, spec: SearchSpec) -> Selection:
    """The best variant within the accuracy budget for the objective, and the Pareto front.

    Without an accuracy metric or objective figure nothing can be chosen; the reason says which.
    When no compressed variant meets the budget, ``chosen`` is None and ``closest`` names the one
    that lost least.
    """
    objective = objective_metric(spec.objective, metric_names(artifacts))
    accuracy = accuracy_metric(spec.budget.metric, metric_names(artifacts, "accuracy"))
    limit = spec.budget.max_drop_points
    sel = Selection(objective=objective, accuracy=accuracy, budget_points=limit)
    if objective is None or accuracy is None:
        missing = "objective " + spec.objective if objective is None else "accuracy " + (spec.budget.metric or "")
        sel.reason = f"nothing to choose from: no variant has a measured {missing.strip()}"
        return sel
    better = next((m.better for a in artifacts for m in a.metrics if m.name == objective), "lower")
    sign = -1.0 if better == "higher" else 1.0
    rows: list[tuple[str, float, float, float]] = []  # label, objective (lower is better), accuracy, loss
    for a in artifacts:
        x, _ = _values(a, objective)
        y, vs = _values(a, accuracy)
        if x is None or y is None:
            continue
        loss = 0.0 if a.label == baseline else -float(vs.get("delta_points", 0.0))
        rows.append((a.label, sign * float(x), float(y), loss))
    sel.pareto_front = [label for label, _, _ in pareto_front([(r[0], r[1], r[2]) for r in rows])]
    candidates = [r for r in rows if r[0] != baseline]
    sel.within_budget = [r[0] for r in candidates if r[3] <= limit + 1e-9]
    if not candidates:
        sel.reason = "no compressed variant was measured"
        return sel
    base_x = next((r[1] for r in rows if r[0] == baseline), None)
    fitting = [r for r in candidates if r[3] <= limit + 1e-9]
    if fitting:
        best = min(fitting, key=lambda r: (r[1], r[3]))
        sel.chosen, sel.meets_budget = best[0], True
        gain = ""
        if base_x is not None and best[1] != 0:
            ratio = base_x / best[1] if sign > 0 else best[1] / base_x
            gain = f" ({ratio:.2f}x the baseline's)"
        sel.reason = (
            f"{best[0]} has the best {objective}{gain} among the {len(fitting)} variant(s) that lose at most "
            f"{_points(limit)} of {accuracy} ({_loss_text(best[3])})"
        )
        return sel
    closest = min(candidates, key=lambda r: (r[3], r[1]))
    sel.closest = closest[0]
    sel.reason = (
        f"no variant meets the budget of {_points(limit)} of {accuracy}; the closest, {closest[0]}, "
        f"loses {closest[3]:.2f} points. Keep the baseline, or see the Pareto front for the trade-offs"
    )
    return sel


def _points(value: float) -> str:
    return "1 point" if value == 1 else f"{value:g} points"


def _loss_text(loss: float) -> str:
    return (
        f"it loses {loss:.2f}" if loss > 0.005 else ("it loses nothing" if loss > -0.005 else f"it gains {-loss:.2f}")
    )
