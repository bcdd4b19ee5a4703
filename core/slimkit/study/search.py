"""Which variants a study builds, and which one it recommends.

- ``grid`` builds every variant: the baseline first, then one block, two blocks, ... so that a
  time budget that runs out still leaves the simplest variants built.
- ``random``, ``tpe`` and ``nsga2`` build the baseline and the explicit variants first, then let an
  Optuna sampler (``RandomSampler``, ``TPESampler``, ``NSGAIISampler``) propose ``samples``
  variants of the search space: one categorical parameter per slot, whose choices are the slot's
  block choices and ``"(none)"``, as :func:`~slimkit.study.spec.expand` picks them. Each proposed
  variant is built, measured against the baseline in a short paired session (*provisional*
  figures, which only steer the search) and its values are told to Optuna: ``tpe`` and ``random``
  minimise the objective relative to the baseline, a variant that loses more than the accuracy
  budget being infeasible (TPE's constraints); ``nsga2`` minimises (accuracy loss, latency, size),
  the last two relative to the baseline.

:func:`select` picks the variant that best meets the accuracy budget for the objective and computes
the Pareto front from the final measurement. Everything but :class:`OptunaSearch` works on plain
data; optuna is imported only when a sampled search starts.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from slimkit.artifacts import stable_hash
from slimkit.errors import SlimkitError, error_line
from slimkit.metrics import Metric
from slimkit.pareto import pareto_front, primary_accuracy, primary_latency
from slimkit.results import MeasuredArtifact, Selection, metric_names
from slimkit.spec import MeasureSpec
from slimkit.study.spec import BASELINE, SearchSpec, Variant

if TYPE_CHECKING:
    import optuna

NONE = "(none)"  # a slot's "no block" choice: no block label can be spelt with parentheses
# Provisional figures: one round, few timed calls, the shape the objective is read from.
PROVISIONAL_REPEATS = 10
PROVISIONAL_WARMUP = 3
# A sampler that keeps proposing variants it has seen is stopped after this many proposals per sample.
ASKS_PER_SAMPLE = 20
BUDGET = "accuracy_budget"  # TPE's constraint: points lost beyond the budget (above zero: infeasible)


def grid_order(variants: Sequence[Variant]) -> list[Variant]:
    """Every variant by level (stable: the baseline, then explicit ones first within a level)."""
    return sorted(variants, key=lambda v: v.level)


# -- Optuna -----------------------------------------------------------------------------------


def provisional_settings(measure: MeasureSpec) -> MeasureSpec:
    """The measurement protocol, shortened for the search: one round of a few timed calls at the
    shape the objective is read from (the smallest batch at the longest padded length)."""
    return measure.model_copy(
        update={
            "batch_sizes": [min(measure.batch_sizes)],
            "sequence_lengths": [max(measure.sequence_lengths)],
            "dynamic_length": False,
            "warmup": min(measure.warmup, PROVISIONAL_WARMUP),
            "repeats": min(measure.repeats, PROVISIONAL_REPEATS),
            "rounds": 1,
        }
    )


def provisional_figures(base: Sequence[Metric], variant: Sequence[Metric], spec: SearchSpec) -> dict[str, Any]:
    """A variant's figures against the baseline measured in the same session: accuracy loss in
    points, and the objective, latency and size as ratios to the baseline (below 1 is better).
    A figure that is missing on either side is None."""
    b = {m.name: m for m in base if m.value is not None}
    v = {m.name: m for m in variant if m.value is not None}
    names = set(b) & set(v)
    acc = accuracy_metric(spec.budget.metric, {n for n in names if b[n].kind == "accuracy"})
    objective = objective_metric(spec.objective, names)
    latency = primary_latency(names)

    def ratio(name: str | None) -> float | None:
        if name is None or name not in names:
            return None
        x, x0 = float(v[name].value or 0.0), float(b[name].value or 0.0)
        num, den = (x0, x) if v[name].better == "higher" else (x, x0)
        return num / den if den > 0 else None

    drop = None if acc is None else (float(b[acc].value or 0.0) - float(v[acc].value or 0.0)) * 100
    return {
        "accuracy": acc,
        "drop_points": drop,
        "objective": ratio(objective),
        "objective_metric": objective,
        "latency": ratio(latency),
        "latency_metric": latency,
        "size": ratio("size_bytes"),
    }


@dataclass
class Proposal:
    """One Optuna trial and the variant its parameters pick (None: a pick the plan refused)."""

    trial: optuna.trial.Trial
    key: tuple[str, ...]
    variant: Variant | None


class OptunaSearch:
    """Asks an Optuna sampler for variants of the search space and tells it their provisional figures.

    The Optuna study lives in ``storage`` under ``name`` and is loaded when it exists, so a rerun
    resumes it and drivers that share one storage share one search. Each trial records the variant
    it picked (user attribute ``variant``); a variant already told is never built again: a trial
    that proposes it is told the same values at once (user attribute ``repeat_of``).
    """

    def __init__(
        self, variants: Sequence[Variant], spec: SearchSpec, *, slots: Sequence[Sequence[str]], storage: str, name: str
    ) -> None:
        import optuna

        self.spec = spec
        self.by_key = {v.block_labels: v for v in variants}
        self.by_name = {v.name: v for v in variants}
        self.distributions: dict[str, optuna.distributions.BaseDistribution] = {}
        for i, labels in enumerate(slots):
            choices = [NONE, *dict.fromkeys(labels)]
            # The choices are in the name: an edited slot is a new parameter, never a clash with old trials.
            self.distributions[f"slot{i}.{stable_hash(choices)[:8]}"] = optuna.distributions.CategoricalDistribution(
                choices
            )
        pool = [v for v in variants if not v.explicit and v.name != BASELINE]
        self.target = min(spec.samples, spec.max_variants, len(pool))
        self.multi = spec.strategy == "nsga2"
        directions: list[Literal["minimize", "maximize"]] = ["minimize"] * (3 if self.multi else 1)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            self.study = optuna.create_study(
                storage=storage, study_name=name, directions=directions, load_if_exists=True
            )
        except Exception as exc:  # a bad URL, a missing database driver, a server that does not answer
            raise SlimkitError(
                f"search.storage: cannot open the Optuna storage: {error_line(exc)}",
                fix="give an RDB URL such as sqlite:///path/optuna.db or postgresql://host/db",
            ) from None
        if len(self.study.directions) != len(directions):
            raise SlimkitError(  # the URL may hold a password: not repeated here
                f"the Optuna study {name!r} in search.storage has {len(self.study.directions)} objective(s), "
                f"strategy {spec.strategy!r} needs {len(directions)}",
                fix="set search.storage to another storage, or delete the old one (optuna.db in the study folder)",
            )
        # A resumed study or a second driver does not replay the first one's proposals.
        seed = spec.seed + len(self.study.trials)
        if spec.strategy == "tpe":
            sampler: optuna.samplers.BaseSampler = optuna.samplers.TPESampler(
                seed=seed,
                multivariate=True,  # blocks interact (a pruning that a later quantization undoes)
                n_startup_trials=min(10, max(2, self.target // 3)),
            )
        elif self.multi:
            sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, self.target)))
        else:
            sampler = optuna.samplers.RandomSampler(seed=seed)
        self.study.sampler = sampler
        self.asked = 0
        self._told: dict[str, optuna.trial.FrozenTrial] | None = None

    # -- what the storage already holds ---------------------------------------------------
    def _ours(self, trial: optuna.trial.FrozenTrial) -> bool:
        return set(self.distributions) <= set(trial.params) and trial.user_attrs.get("variant") in self.by_name

    def told(self) -> dict[str, optuna.trial.FrozenTrial]:
        """The first finished trial of each variant of this space, by variant name (any driver, any
        run), as the storage held it when :meth:`done` was last called (one read per trial)."""
        if self._told is None:
            import optuna

            self._told = {}
            for trial in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
                if self._ours(trial):
                    self._told.setdefault(trial.user_attrs["variant"], trial)
        return self._told

    def tried(self) -> int:
        """Variants of the space (not the baseline, not explicit ones) the search has paid for: told,
        or failed after its build (no figure to tell, the build failed). A trial that was interrupted
        is not counted: its variant is asked again."""
        import optuna

        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
        names = {
            t.user_attrs["variant"]
            for t in self.study.get_trials(deepcopy=False, states=states)
            if self._ours(t) and t.user_attrs.get("failed") != "interrupted"
        }
        return sum(1 for n in names if not self.by_name[n].explicit and n != BASELINE)

    def done(self) -> bool:
        """Whether ``samples`` variants were tried (or the sampler keeps proposing known ones).
        Reads the storage again: other drivers' trials count too."""
        self._told = None
        return self.tried() >= self.target or self.asked >= ASKS_PER_SAMPLE * max(1, self.target)

    # -- one trial ---------------------------------------------------------------------------
    def ask(self) -> Proposal:
        trial = self.study.ask(self.distributions)
        self.asked += 1
        key = tuple(str(trial.params[p]) for p in self.distributions if trial.params[p] != NONE)
        variant = self.by_key.get(key)
        trial.set_user_attr("variant", variant.name if variant else "+".join(key))
        return Proposal(trial=trial, key=key, variant=variant)

    def repeat(self, proposal: Proposal) -> bool:
        """Tell a trial the values of an earlier trial of the same variant; False when there is none."""
        if proposal.variant is None:
            return False
        earlier = self.told().get(proposal.variant.name)
        if earlier is None:
            return False
        proposal.trial.set_user_attr("repeat_of", earlier.number)
        if "provisional" in earlier.user_attrs:
            proposal.trial.set_user_attr("provisional", earlier.user_attrs["provisional"])
        if BUDGET in earlier.constraints:
            proposal.trial.set_constraint(BUDGET, earlier.constraints[BUDGET])
        self.study.tell(proposal.trial, list(earlier.values))
        return True

    def values(self, figures: dict[str, Any]) -> tuple[list[float] | None, str | None]:
        """What Optuna is told for these provisional figures, or why nothing can be told."""
        wanted = ["drop_points", "latency", "size"] if self.multi else ["objective"]
        missing = [w for w in wanted if figures.get(w) is None]
        if missing:
            what = {"drop_points": "accuracy", "objective": f"objective {self.spec.objective}"}
            return None, "no provisional " + ", ".join(what.get(m, m) for m in missing) + " figure"
        return [float(figures[w]) for w in wanted], None

    def tell(self, proposal: Proposal, figures: dict[str, Any]) -> tuple[list[float] | None, str | None]:
        """Tell the trial its provisional figures; a trial without the figures it needs fails."""
        values, why = self.values(figures)
        if values is None:
            self.fail(proposal, why or "no figures")
            return None, why
        drop = figures.get("drop_points")
        if not self.multi:  # nsga2 minimises the loss itself; tpe keeps within the budget by a constraint
            excess = 0.0 if drop is None else float(drop) - self.spec.budget.max_drop_points
            proposal.trial.set_constraint(BUDGET, excess)
        proposal.trial.set_user_attr("provisional", figures)
        self.study.tell(proposal.trial, values)
        return values, None

    def fail(self, proposal: Proposal, why: str) -> None:
        import optuna

        proposal.trial.set_user_attr("failed", why)
        self.study.tell(proposal.trial, state=optuna.trial.TrialState.FAIL)

    def pareto(self) -> list[str]:
        """The variants on Optuna's Pareto front (or its best trial), from provisional figures."""
        return sorted({t.user_attrs["variant"] for t in self.study.best_trials if self._ours(t)})


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
        tied = _tied_with_best(fitting, spec.tie_tolerance)
        best = min(tied, key=lambda r: (r[3], r[1]))  # the most accurate of the tied, then the best objective
        sel.chosen, sel.meets_budget = best[0], True
        gain = ""
        # The recorded ratio: over several sessions, the median of the per-session ratios.
        recorded = next(_values(a, objective)[1].get("ratio") for a in artifacts if a.label == best[0])
        if recorded is not None:
            gain = f" ({recorded:.2f}x the baseline's)"
        elif base_x is not None and best[1] != 0:
            ratio = base_x / best[1] if sign > 0 else best[1] / base_x
            gain = f" ({ratio:.2f}x the baseline's)"
        others = [r[0] for r in tied if r is not best]
        budget = f"among the {len(fitting)} variant(s) that lose at most {_points(limit)} of {accuracy}"
        if others:
            sel.reason = (
                f"{best[0]} ties for the best {objective}{gain} with {', '.join(others)} (within "
                f"{spec.tie_tolerance * 100:g}%, finer than a session resolves) {budget}, and is the most accurate of "
                f"them ({_loss_text(best[3])})"
            )
        else:
            sel.reason = f"{best[0]} has the best {objective}{gain} {budget} ({_loss_text(best[3])})"
        return sel
    closest = min(candidates, key=lambda r: (r[3], r[1]))
    sel.closest = closest[0]
    sel.reason = (
        f"no variant meets the budget of {_points(limit)} of {accuracy}; the closest, {closest[0]}, "
        f"loses {closest[3]:.2f} points. Keep the baseline, or see the Pareto front for the trade-offs"
    )
    return sel


def _tied_with_best(
    rows: list[tuple[str, float, float, float]], tolerance: float
) -> list[tuple[str, float, float, float]]:
    """The rows whose objective (lower is better) is within ``tolerance`` of the best row's, the best included:
    a difference that small is below what one measurement session resolves, so accuracy decides."""
    best = min(r[1] for r in rows)
    return [r for r in rows if r[1] - best <= tolerance * abs(best)]


def _points(value: float) -> str:
    return "1 point" if value == 1 else f"{value:g} points"


def _loss_text(loss: float) -> str:
    return (
        f"it loses {loss:.2f}" if loss > 0.005 else ("it loses nothing" if loss > -0.005 else f"it gains {-loss:.2f}")
    )
