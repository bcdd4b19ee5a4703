"""Sampled searches on Optuna (random, tpe, nsga2): the Pareto front, budgets, resuming, removed names.

The toy plugin and the fake latency of test_study give every variant known figures: accuracy
(nonzero_share), latency (1 ms per nonzero weight, halved for 'toyx') and size (the built-in
size on disk), so the true Pareto front can be computed from the final measurement and compared
with Optuna's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna
import pytest
from click.testing import CliRunner
from test_study import FakeLatency, study_data

from slimkit import Metric
from slimkit.cli import cli
from slimkit.errors import SpecError
from slimkit.hardware import Hardware
from slimkit.spec import MeasureSpec
from slimkit.study import load_study, study_from_dict
from slimkit.study.executors import ExecutorContext, LocalExecutor, VariantJob, VariantOutcome
from slimkit.study.runner import run_study
from slimkit.study.search import provisional_figures, provisional_settings
from toy_plugin import ToyPlugin

SPACE_VARIANTS = 11  # the toy space: 3 prune choices x 2 round x 2 export, less the empty pick


@pytest.fixture
def fake(register_plugin: Any, toy: ToyPlugin) -> ToyPlugin:
    register_plugin(FakeLatency(toy.executed), name="fake")
    return toy


class Counting:
    """An executor that records every job it builds, across calls, and can be interrupted."""

    name = "counting"

    def __init__(self, stop_after: int | None = None) -> None:
        self.jobs: list[str] = []
        self.stop_after = stop_after

    def run(self, jobs: Sequence[VariantJob], context: ExecutorContext) -> Iterator[VariantOutcome]:
        for outcome in LocalExecutor().run(jobs, context):
            self.jobs.append(outcome.name)
            yield outcome
            if self.stop_after is not None and len(self.jobs) >= self.stop_after:
                raise KeyboardInterrupt


def run(tmp_path: Path, plugins: Any, hw: Hardware, executor: Any = None, **search: Any) -> dict[str, Any]:
    study = study_from_dict(study_data(tmp_path, search=search), base_dir=tmp_path)
    return run_study(study, plugins=plugins, hardware=hw, executor=executor).results.document()


def trials(tmp_path: Path) -> list[optuna.trial.FrozenTrial]:
    storage = f"sqlite:///{tmp_path / 'study' / 'optuna.db'}"
    return optuna.load_study(study_name="toy-study", storage=storage).trials


def told(all_trials: list[optuna.trial.FrozenTrial]) -> dict[str, optuna.trial.FrozenTrial]:
    """The first finished trial of each variant (repeats of a told variant left out)."""
    out: dict[str, optuna.trial.FrozenTrial] = {}
    for t in all_trials:
        if t.state == optuna.trial.TrialState.COMPLETE and "repeat_of" not in t.user_attrs:
            assert t.user_attrs["variant"] not in out, "a variant was told twice"
            out[t.user_attrs["variant"]] = t
    return out


def figures(results: dict[str, Any]) -> dict[str, tuple[float, float, float]]:
    """(accuracy loss in points, latency ratio, size ratio) of every variant, from the final session."""
    values = {a["label"]: {m["name"]: m["value"] for m in a["metrics"]} for a in results["artifacts"]}
    base = values["baseline"]
    return {
        label: (
            round((base["nonzero_share"] - v["nonzero_share"]) * 100, 6),
            v["latency_ms.b1.s8"] / base["latency_ms.b1.s8"],
            v["size_bytes"] / base["size_bytes"],
        )
        for label, v in values.items()
    }


def front(points: dict[str, tuple[float, ...]]) -> set[str]:
    def beats(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
        return all(x <= y for x, y in zip(a, b, strict=True)) and a != b

    return {n for n, p in points.items() if not any(beats(q, p) for q in points.values())}


def test_nsga2_finds_the_true_pareto_front(tmp_path: Path, fake: ToyPlugin, slimkit_plugins: Any, hw: Hardware) -> None:
    results = run(tmp_path, slimkit_plugins, hw, strategy="nsga2", samples=SPACE_VARIANTS, seed=3)
    assert {v["status"] for v in results["variants"]} == {"built"}
    everything = figures(results)
    got = told(trials(tmp_path))
    assert set(got) - {"baseline"} == set(everything) - {"baseline"}  # the whole small space was tried
    # Provisional values are the final figures here (the fake metrics are exact) ...
    for name, trial in got.items():
        assert trial.values == pytest.approx(everything[name])
        assert trial.user_attrs["provisional"]["accuracy"] == "nonzero_share"
    # ... so Optuna's Pareto front is the true one over every variant it was told.
    truth = front({n: everything[n] for n in got})
    pareto = {t.user_attrs["variant"] for t in optuna.load_study(
        study_name="toy-study", storage=f"sqlite:///{tmp_path / 'study' / 'optuna.db'}").best_trials}  # fmt: skip
    assert pareto == truth and "export" in truth and len(truth) > 1
    journal = [json.loads(line) for line in (tmp_path / "study" / "journal.jsonl").read_text().splitlines()]
    assert set(next(e for e in journal if e["event"] == "search_finished")["pareto"]) == truth
    told_events = [e for e in journal if e["event"] == "trial_told"]
    assert told_events and all("provisional" in e for e in told_events)
    # Provisional sessions pair one variant with the baseline; the table comes from one final session.
    sessions = [c.split(":", 1)[1].split(",") for c in fake.calls if c.startswith("measure:")]
    assert all(s[0] == "baseline" and len(s) <= 2 for s in sessions[:-1])
    assert len(sessions[-1]) == 1 + SPACE_VARIANTS


def test_trials_without_figures_still_count_toward_samples(
    tmp_path: Path, fake: ToyPlugin, slimkit_plugins: Any, hw: Hardware
) -> None:
    # No measurer reports the objective: every trial fails, and the search stops after `samples`
    # variants instead of building the whole space.
    results = run(tmp_path, slimkit_plugins, hw, strategy="tpe", samples=2, seed=1, objective="nosuch")
    built = [v["name"] for v in results["variants"] if v["status"] == "built"]
    assert built[0] == "baseline" and len(built) == 1 + 2
    failed = [t for t in trials(tmp_path) if t.state == optuna.trial.TrialState.FAIL]
    assert failed and all(t.user_attrs["failed"] == "no provisional objective nosuch figure" for t in failed)


@pytest.mark.parametrize("strategy", ["tpe", "random"])
def test_tpe_and_random_build_samples_variants_and_respect_the_time_budget(
    tmp_path: Path, fake: ToyPlugin, slimkit_plugins: Any, hw: Hardware, strategy: str
) -> None:
    results = run(tmp_path, slimkit_plugins, hw, strategy=strategy, samples=4, seed=1)
    status = {v["name"]: v for v in results["variants"]}
    built = [n for n, v in status.items() if v["status"] == "built"]
    assert built[0] == "baseline" and len(built) == 1 + 4
    skipped = [v for v in status.values() if v["status"] == "skipped"]
    assert len(skipped) == SPACE_VARIANTS - 4
    assert skipped[0]["note"] == f"not proposed by the {strategy} search (samples = 4)"
    assert results["search"]["strategy"] == strategy and results["selection"]["chosen"] in [*built, None]
    got = told(trials(tmp_path))
    assert set(got) - {"baseline"} == set(built) - {"baseline"}
    if strategy == "tpe":  # a variant over the accuracy budget (10 points) is infeasible
        for trial in got.values():
            loss = trial.user_attrs["provisional"]["drop_points"]
            assert trial.constraints["accuracy_budget"] == pytest.approx(loss - 10)
    # A clock that moves 10 s per reading: the 25 s budget stops the search before its samples.
    ticks = iter(range(0, 10_000, 10))
    search = {"strategy": strategy, "samples": 8, "time_budget_s": 25}
    study = study_from_dict(study_data(tmp_path / "t", search=search))
    data = run_study(study, plugins=slimkit_plugins, hardware=hw, clock=lambda: float(next(ticks))).results.document()
    assert data["search"]["stopped_by_time_budget"] is True
    states = [v["status"] for v in data["variants"]]
    assert 1 <= states.count("built") < 1 + 8 and states.count("built") + states.count("not run") == 12


def test_resume_from_the_sqlite_storage_never_repeats_a_finished_trial(
    tmp_path: Path, fake: ToyPlugin, slimkit_plugins: Any, hw: Hardware
) -> None:
    first = Counting()
    run(tmp_path, slimkit_plugins, hw, first, strategy="tpe", samples=3)
    before = trials(tmp_path)
    assert len(told(before)) == 3 and len(first.jobs) == 1 + 3
    # Interrupted while building its second new variant ...
    second = Counting(stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, slimkit_plugins, hw, second, strategy="tpe", samples=6)
    # ... and resumed: the trial count grows only by new trials, and no variant is built twice.
    third = Counting()
    results = run(tmp_path, slimkit_plugins, hw, third, strategy="tpe", samples=6)
    after = trials(tmp_path)
    assert [(t.number, t.values, t.params) for t in after[: len(before)]] == [
        (t.number, t.values, t.params) for t in before
    ]
    assert len(told(after)) == 6
    jobs = first.jobs + second.jobs + third.jobs
    assert len(jobs) == len(set(jobs)) == 1 + 6
    interrupted = [t for t in after if t.state == optuna.trial.TrialState.FAIL]
    assert [t.user_attrs["failed"] for t in interrupted] == ["interrupted"]
    status = {v["name"]: v["status"] for v in results["variants"]}
    assert sorted(n for n, s in status.items() if s in ("built", "reused")) == sorted(jobs)
    # A finished search asks nothing more.
    fourth = Counting()
    run(tmp_path, slimkit_plugins, hw, fourth, strategy="tpe", samples=6)
    assert fourth.jobs == [] and len(trials(tmp_path)) == len(after)


def test_a_removed_strategy_is_one_line_naming_the_field_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        'name = "t"\nmodel = "toy:1"\n[blocks.r]\ntechnique = "toy.round"\n'
        '[search]\nspace = [["r"]]\nstrategy = "levelwise"\n'
    )
    with pytest.raises(SpecError) as info:
        load_study(path)
    assert info.value.problems == [
        "search.strategy: 'levelwise' was removed (fix: use strategy = 'tpe', which steers the search by each "
        "variant's provisional accuracy loss, or 'nsga2' for the accuracy/latency/size trade-off)"
    ]
    shown = CliRunner().invoke(cli, ["study", "--plan", str(path)])
    assert shown.exit_code == 2 and "search.strategy: 'levelwise' was removed" in shown.output


def test_provisional_figures_are_ratios_to_the_baseline_of_the_same_session() -> None:
    def metrics(share: float, ms: float, size: float) -> list[Metric]:
        return [
            Metric(name="micro_f1", value=share, kind="accuracy", better="higher"),
            Metric(name="latency_ms.b1.s128", value=ms, kind="speed", better="lower"),
            Metric(name="size_bytes", value=size, kind="size", better="lower"),
        ]

    spec = study_from_dict(study_data(Path("."), search={"budget": {"max_drop_points": 1}})).search
    got = provisional_figures(metrics(0.80, 20, 400), metrics(0.79, 5, 100), spec)
    assert got["drop_points"] == pytest.approx(1.0) and got["accuracy"] == "micro_f1"
    assert (got["objective"], got["latency"], got["size"]) == (0.25, 0.25, 0.25)
    assert provisional_figures(metrics(0.8, 20, 400), [], spec)["objective"] is None
    short = provisional_settings(MeasureSpec(batch_sizes=[32, 1], sequence_lengths=[64, 128], repeats=30))
    assert (short.batch_sizes, short.sequence_lengths, short.rounds, short.repeats) == ([1], [128], 1, 10)


def test_the_core_does_not_import_optuna_at_import_time() -> None:
    code = "import sys, slimkit.cli, slimkit.study.runner; print('optuna' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
