"""Studies: file validation, expansion, search and choice, executors, resuming, and the report.

Everything runs on the toy plugin (pure Python, instant steps) plus a fake measurer whose latency
depends on the weights, so that choices and Pareto fronts are exact.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, ConfigDict, Field

from slimkit import Metric, Technique, hookimpl
from slimkit.cli import cli
from slimkit.errors import PlanRefused, SlimkitError, SpecError
from slimkit.hardware import Hardware
from slimkit.report import render_markdown
from slimkit.results import MeasuredArtifact, StudyResults, load_results, parse_results
from slimkit.study import Study, expand, load_study, study_from_dict
from slimkit.study.executors import ExecutorContext, LocalExecutor, VariantJob, VariantOutcome
from slimkit.study.runner import plan_study, run_study
from slimkit.study.search import select
from toy_plugin import ToyPlugin, read, write

# After the base step (x2): [0.02, 0.04, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8]
SOURCE = "toy:0.01,0.02,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9"


class ScaleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    factor: float = Field(default=2.0, description="Every weight is multiplied by it.")


class FakeLatency:
    """A base step that toy.prune may follow (it must come before training), and a
    latency of 1 ms + 1 ms per nonzero weight, halved for the exported 'toyx' format."""

    def __init__(self, executed: list[str]) -> None:
        self.executed = executed

    @hookimpl
    def register_techniques(self, register: Any) -> None:
        register(Technique(name="fake.scale", stage="distill", summary="Scale.", consumes=["toy"], config=ScaleConfig))

    @hookimpl
    def distill(self, step: Any) -> Any:
        if not step.owns("fake.scale"):
            return None
        self.executed.append(step.name)
        write(step.output_dir, [w * step.config.factor for w in read(step.input.path)])
        return step.artifact()

    @hookimpl
    def measure(self, artifacts: Sequence[Any], context: Any) -> dict[str, list[Metric]]:
        out = {}
        for a in artifacts:
            weights = read(a.path / ("weights.toyx" if a.format == "toyx" else "weights.json"))
            ms = 1.0 + sum(1 for w in weights if w != 0)
            if a.format == "toyx":
                ms /= 2
            out[a.key] = [Metric(name="latency_ms.b1.s8", value=ms, unit="ms", kind="speed", better="lower")]
        return out


def study_data(tmp_path: Path, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "toy-study",
        "model": {"source": SOURCE, "format": "toy"},
        "device": "cpu",
        "output_dir": str(tmp_path / "study"),
        "base": [{"name": "finetune", "technique": "fake.scale", "config": {"factor": 2.0}}],
        "blocks": {
            "prune": {"technique": "toy.prune", "grid": {"threshold": [0.05, 0.5]}},
            "round": {"technique": "toy.round", "config": {"decimals": 0}},
            "export": [{"technique": "toy.export"}],
        },
        "search": {
            "space": [["prune"], ["round"], ["export"]],
            "budget": {"metric": "nonzero_share", "max_drop_points": 10},
        },
    }
    for key, value in fields.items():
        data[key] = data[key] | value if isinstance(data.get(key), dict) else value
    return data


@pytest.fixture
def fake(register_plugin: Any, toy: ToyPlugin) -> ToyPlugin:
    register_plugin(FakeLatency(toy.executed), name="fake")
    return toy


def run(tmp_path: Path, plugins: Any, hw: Hardware, **fields: Any) -> dict[str, Any]:
    study = study_from_dict(study_data(tmp_path, **fields), base_dir=tmp_path)
    return run_study(study, plugins=plugins, hardware=hw).results.document()


def as_results(document: dict[str, Any]) -> StudyResults:
    results = parse_results(document, Path("results.json"))
    assert isinstance(results, StudyResults)
    return results


def by_name(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in results["variants"]}


# -- Validation and expansion ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "line"),
    [
        ({"blocks": {"prune": {"tehnique": "toy.prune"}}}, "blocks.prune.0.tehnique: unknown field"),
        ({"blocks": {"prune": {"config": {}}}}, "blocks.prune.0: a step needs 'technique'"),
        ({"variants": [{"blocks": ["nope"]}]}, "variants.0.blocks: unknown block 'nope'"),
        ({"search": {"space": [["prune", "nope"]]}}, "search.space.0: unknown block 'nope'"),
        (
            {"blocks": {"p": {"technique": "toy.prune", "grid": {"threshold": []}}}},
            "blocks.p.0.grid: option(s) threshold need at least one value",
        ),
        ({"search": {"strategy": "bayes"}}, "search.strategy: Input should be 'grid', 'random', 'tpe' or 'nsga2'"),
        ({"search": {"strategy": "levelwise"}}, "search.strategy: 'levelwise' was removed (fix: use strategy = 'tpe'"),
        ({"search": {"space": []}}, "variants: the study has no variants"),
        ({"name": "a b"}, "name: String should match pattern"),
    ],
)
def test_study_file_errors_are_one_line_naming_the_field(tmp_path: Path, change: dict[str, Any], line: str) -> None:
    data = study_data(tmp_path)
    for key, value in change.items():
        data[key] = data[key] | value if key == "search" else value
    with pytest.raises(SpecError) as info:
        study_from_dict(data, source="s.toml")
    assert any(p.startswith(line) for p in info.value.problems), info.value.problems
    assert all("\n" not in p for p in info.value.problems)


def test_expansion_of_blocks_grids_variants_and_space(tmp_path: Path) -> None:
    data = study_data(tmp_path, variants=[{"name": "best-guess", "blocks": ["round", "export"]}])
    variants = expand(study_from_dict(data, base_dir=tmp_path))
    names = [v.name for v in variants]
    # baseline, the explicit variant, then the space (its round+export duplicate dropped).
    assert names == [
        "baseline",
        "best-guess",
        "export",
        "round",
        "prune[threshold=0.05]",
        "prune[threshold=0.05]+export",
        "prune[threshold=0.05]+round",
        "prune[threshold=0.05]+round+export",
        "prune[threshold=0.5]",
        "prune[threshold=0.5]+export",
        "prune[threshold=0.5]+round",
        "prune[threshold=0.5]+round+export",
    ]
    v = variants[-1]
    assert [s.label for s in v.pipeline.steps] == ["finetune", "prune", "round", "export"]
    assert v.pipeline.steps[1].config == {"threshold": 0.5}
    assert v.pipeline.store_dir == tmp_path / "study" / "steps"  # one store for every variant
    assert v.pipeline.measure.enabled is False  # the study measures all variants at once


def test_too_many_variants_is_refused(tmp_path: Path) -> None:
    study = study_from_dict(study_data(tmp_path, search={"max_variants": 5}))
    with pytest.raises(SpecError, match="expands to 12 variants, more than 5"):
        expand(study)


def test_plan_names_missing_plugins_and_bad_configs_per_variant(
    tmp_path: Path, fake: ToyPlugin, slimkit_plugins: Any, hw: Hardware
) -> None:
    data = study_data(tmp_path)
    data["blocks"]["gptq"] = {"technique": "gptq.quantize"}
    data["blocks"]["round"] = {"technique": "toy.round", "config": {"decimals": 99}}
    data["search"]["space"] = [["gptq", "round"]]
    study = study_from_dict(data, base_dir=tmp_path)
    plan = plan_study(study, plugins=slimkit_plugins, hardware=hw)
    assert not plan.ok
    assert plan.problems == [
        "variant gptq: step 2 (gptq): unknown technique 'gptq.quantize' (installed: fake.scale, toy.export, "
        "toy.fail, toy.finetune, toy.prune, toy.round; see `slimkit techniques`)",
        "variant round: step 2 (round): config.decimals: Input should be less than or equal to 6",
    ]
    with pytest.raises(PlanRefused):
        run_study(study, plugins=slimkit_plugins, hardware=hw)
    assert not (tmp_path / "study" / "steps").exists()  # nothing built


def test_load_study_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        'name = "t"\nmodel = "toy:1"\n[blocks.r]\ntechnique = "toy.round"\n[[variants]]\nblocks = ["r"]\n'
        "[search]\nbudget = { max_drop_points = 0.5 }\n"
    )
    study = load_study(path)
    assert study.base_dir == tmp_path and study.search.budget.max_drop_points == 0.5
    with pytest.raises(SpecError, match="no such file"):
        load_study(tmp_path / "absent.toml")


def test_example_study_files_validate() -> None:
    examples = Path(__file__).resolve().parents[1] / "examples"
    minilm = expand(load_study(examples / "minilm-semeval-study.toml"))
    assert len(minilm) == 14 and minilm[0].pipeline.steps[0].label == "finetune"
    assert {"full", "full-int4", "onnx-fp32", "prune", "vocab+distill+onnx-int8"} <= {v.name for v in minilm}
    smol = expand(load_study(examples / "smollm2-ekman-study.toml"))
    assert [v.name for v in smol] == [
        "baseline", "bf16", "onnx-int8", "ov-int8", "ov-bf16-w8", "prune", "prune+nf4", "prune+onnx-int8",
        "prune+ov-int8", "prune+ov-bf16-w8", "prune+vocab+ov-bf16-w8", "prune+vocab+ov-int8", "prune+gptq",
        "prune+awq",
    ]  # fmt: skip


# -- Running, choosing, resuming --------------------------------------------------------------


def test_grid_study_builds_shares_steps_and_measures_once(
    tmp_path: Path, fake: ToyPlugin, slimkit_plugins: Any, hw: Hardware
) -> None:
    results = run(tmp_path, slimkit_plugins, hw)
    variants = by_name(results)
    assert len(variants) == 12 and all(v["status"] == "built" for v in variants.values())
    # Shared prefixes ran once: 1 finetune, 2 prunes, 3 rounds (after finetune and each prune), 6 exports.
    assert sorted(fake.executed) == sorted(["finetune"] + ["prune"] * 2 + ["round"] * 3 + ["export"] * 6)
    measures = [c for c in fake.calls if c.startswith("measure:")]
    assert len(measures) == 1  # one session for every variant, the baseline first
    assert measures[0].split(":", 1)[1].split(",")[0] == "baseline"
    assert [a["label"] for a in results["artifacts"]] == list(variants)
    sel = results["selection"]
    assert sel["chosen"] == "export" and sel["meets_budget"] is True
    assert sel["objective"] == "latency_ms.b1.s8" and sel["accuracy"] == "nonzero_share"
    assert sel["within_budget"] == ["export"]
    assert "export has the best latency_ms.b1.s8 (2.00x the baseline's)" in sel["reason"]
    # (latency, nonzero share): export (5.5, 1.0); prune 0.05 + export (4.5, 0.8); three at (4.0, 0.7).
    assert sorted(sel["pareto_front"]) == sorted(
        ["export", "prune[threshold=0.05]+export", "prune[threshold=0.5]+export", "round+export",
         "prune[threshold=0.05]+round+export", "prune[threshold=0.5]+round+export"]
    )  # fmt: skip
    assert results["exit_code"] == 0
    if importlib.util.find_spec("matplotlib") is not None:
        assert sorted(p.name for p in (tmp_path / "study").glob("*.png")) == [
            "nonzero_share-vs-latency.png",
            "nonzero_share-vs-size.png",
        ]
    report = (tmp_path / "study" / "report.md").read_text()
    assert "**export**: export has the best" in report
    assert all(f"| {name}" in report for name in variants)


def test_nothing_meets_the_budget_still_reports_best_so_far(
    tmp_path: Path, fake: ToyPlugin, slimkit_plugins: Any, hw: Hardware
) -> None:
    results = run(tmp_path, slimkit_plugins, hw, search={"space": [["prune"], ["round"]]})
    sel = results["selection"]
    assert sel["chosen"] is None and sel["meets_budget"] is False
    assert sel["closest"] == "prune[threshold=0.05]"
    assert sel["reason"].startswith("no variant meets the budget of 10 points of nonzero_share; the closest")
    # (latency, share): baseline (11, 1.0), prune 0.05 (9, 0.8), and four variants tied at (8, 0.7).
    assert sorted(sel["pareto_front"]) == sorted(
        ["baseline", "prune[threshold=0.05]", "round", "prune[threshold=0.05]+round", "prune[threshold=0.5]",
         "prune[threshold=0.5]+round"]
    )  # fmt: skip
    assert "No variant chosen" in render_markdown(as_results(results))


def test_a_variant_without_speed_up_is_warned_about_once_naming_the_shape(
    tmp_path: Path, fake: ToyPlugin, slimkit_plugins: Any, hw: Hardware
) -> None:
    # Rounding to 2 decimals leaves every weight (and so the fake latency) as it was.
    blocks = {"round": {"technique": "toy.round", "config": {"decimals": 2}}}
    results = run(tmp_path, slimkit_plugins, hw, blocks=blocks, search={"space": [["round"]]})
    slow = [w for w in results["warnings"] if "no speed-up" in w]
    assert slow == ["round: no speed-up at batch 1 on this hardware (b1.s8 1.00x the baseline)"]


def test_a_rerun_reports_the_plan_warnings_of_now_not_of_the_first_build(
    tmp_path: Path, fake: ToyPlugin, slimkit_plugins: Any, hw: Hardware, monkeypatch: pytest.MonkeyPatch
) -> None:
    import slimkit.planner

    def note(text: str) -> None:
        no_speedup = slimkit.planner.Note(slimkit.planner.NO_SPEEDUP, f"gives no speed-up on cpu: {text}")
        monkeypatch.setattr(slimkit.planner, "hardware_fit", lambda *a: ([], [no_speedup]))

    note("old wording")
    run(tmp_path, slimkit_plugins, hw, search={"space": [["round"]]})
    note("new wording")  # the plugin's note changed; the variants are reused, not rebuilt
    warnings = run(tmp_path, slimkit_plugins, hw, search={"space": [["round"]]})["warnings"]
    assert any("new wording" in w for w in warnings)
    assert not any("old wording" in w for w in warnings)


def test_random_search_and_time_budget(tmp_path: Path, fake: ToyPlugin, slimkit_plugins: Any, hw: Hardware) -> None:
    results = run(tmp_path, slimkit_plugins, hw, search={"strategy": "random", "samples": 3, "seed": 1})
    built = [n for n, v in by_name(results).items() if v["status"] == "built"]
    assert len(built) == 4 and built[0] == "baseline"
    # A clock that moves 10 s per reading: the 25 s budget stops the study after a few variants.
    ticks = iter(range(0, 10_000, 10))
    study = study_from_dict(study_data(tmp_path / "t", search={"time_budget_s": 25}), base_dir=tmp_path)
    data = run_study(study, plugins=slimkit_plugins, hardware=hw, clock=lambda: float(next(ticks))).results.document()
    assert data["search"]["stopped_by_time_budget"] is True
    states = [v["status"] for v in data["variants"]]
    assert 0 < states.count("built") < 12 and states.count("built") + states.count("not run") == 12
    assert data["selection"]["chosen"] is None or data["selection"]["chosen"] in {
        v["name"] for v in data["variants"] if v["status"] == "built"
    }


class Spy:
    """An executor (as a plugin would provide one) that records jobs and can be interrupted."""

    name = "spy"

    def __init__(self, stop_after: int | None = None) -> None:
        self.jobs: list[str] = []
        self.stop_after = stop_after

    def run(self, jobs: Sequence[VariantJob], context: ExecutorContext) -> Iterator[VariantOutcome]:
        for n, outcome in enumerate(LocalExecutor().run(jobs, context)):
            self.jobs.append(outcome.name)
            yield outcome
            if self.stop_after is not None and n + 1 >= self.stop_after:
                raise KeyboardInterrupt


class Broken(Spy):
    """An executor that fails after two variants: by a bug, or by calling sys.exit."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(stop_after=None)
        self.error = error

    def run(self, jobs: Sequence[VariantJob], context: ExecutorContext) -> Iterator[VariantOutcome]:
        for n, outcome in enumerate(super().run(jobs, context)):
            yield outcome
            if n == 1:
                raise self.error


@pytest.mark.parametrize("error", [RuntimeError("executor bug"), SystemExit(0)])
def test_a_study_that_breaks_records_it_over_an_earlier_success(
    tmp_path: Path, fake: ToyPlugin, slimkit_plugins: Any, hw: Hardware, error: BaseException
) -> None:
    study = study_from_dict(study_data(tmp_path), base_dir=tmp_path)
    assert run_study(study, plugins=slimkit_plugins, hardware=hw).exit_code == 0
    if isinstance(error, SystemExit):  # never the process's exit code: the study failed (1)
        assert run_study(study, plugins=slimkit_plugins, hardware=hw, executor=Broken(error), force=True).exit_code == 1
    else:
        with pytest.raises(RuntimeError, match="executor bug"):
            run_study(study, plugins=slimkit_plugins, hardware=hw, executor=Broken(error), force=True)
    results = json.loads((tmp_path / "study" / "results.json").read_text())
    assert (results["outcome"], results["exit_code"]) == ("failed", 1)
    assert results["reason"].endswith("(while building variants)")
    last = json.loads((tmp_path / "study" / "journal.jsonl").read_text().splitlines()[-1])
    assert (last["event"], last["outcome"]) == ("study_finished", "failed")


def test_interrupted_study_resumes_without_rebuilding_finished_variants(
    tmp_path: Path, fake: ToyPlugin, slimkit_plugins: Any, hw: Hardware
) -> None:
    study = study_from_dict(study_data(tmp_path), base_dir=tmp_path)
    first = Spy(stop_after=4)
    with pytest.raises(KeyboardInterrupt):
        run_study(study, plugins=slimkit_plugins, hardware=hw, executor=first)
    interrupted = json.loads((tmp_path / "study" / "results.json").read_text())
    assert (interrupted["outcome"], interrupted["exit_code"]) == ("interrupted", 130)
    assert interrupted["reason"] == "interrupted by the user while building variants"
    steps_before = list(fake.executed)
    fake.executed.clear()
    second = Spy()
    results = run_study(study, plugins=slimkit_plugins, hardware=hw, executor=second).results.document()
    assert set(second.jobs).isdisjoint(first.jobs) and len(second.jobs) == 12 - 4
    assert "finetune" in steps_before and "finetune" not in fake.executed  # the baseline is never redone
    status = {v["name"]: v["status"] for v in results["variants"]}
    assert [status[n] for n in first.jobs] == ["reused"] * 4
    # A third run builds and measures nothing.
    fake.executed.clear()
    third = Spy()
    calls = len(fake.calls)
    again = run_study(study, plugins=slimkit_plugins, hardware=hw, executor=third).results.document()
    assert third.jobs == [] and fake.executed == []
    assert not any(c.startswith("measure:") for c in fake.calls[calls:])
    assert again["artifacts"] == results["artifacts"]


def test_executor_comes_from_a_plugin_hook(
    tmp_path: Path, fake: ToyPlugin, slimkit_plugins: Any, register_plugin: Any, hw: Hardware
) -> None:
    spy = Spy()

    class Provider:
        @hookimpl
        def make_executor(self, name: str, options: dict[str, Any]) -> Any:
            return spy if name == "spy" and options == {"workers": 2} else None

    register_plugin(Provider(), name="provider")
    results = run(tmp_path, slimkit_plugins, hw, executor={"name": "spy", "options": {"workers": 2}})
    assert len(spy.jobs) == 12 and results["executor"] == "spy"
    with pytest.raises(SlimkitError, match="no installed plugin provides an executor named 'ray'"):
        run(tmp_path / "x", slimkit_plugins, hw, executor={"name": "ray"})


def test_a_job_carries_only_what_the_study_file_set(
    tmp_path: Path, fake: ToyPlugin, slimkit_plugins: Any, register_plugin: Any, hw: Hardware
) -> None:
    # A default written into the job would read back as the user's choice: an empty data_files
    # would override a task preset's own files (and send the task to the hub).
    seen: list[dict[str, Any]] = []

    class Capture:
        name = "capture"

        def run(self, jobs: Sequence[VariantJob], context: ExecutorContext) -> Iterator[VariantOutcome]:
            seen.extend(job.pipeline for job in jobs)
            yield from LocalExecutor().run(jobs, context)

    class Provider:
        @hookimpl
        def make_executor(self, name: str, options: dict[str, Any]) -> Any:
            return Capture() if name == "capture" else None

    register_plugin(Provider(), name="provider")
    task = {"preset": "some-task", "max_train_examples": 10}
    run(tmp_path, slimkit_plugins, hw, executor={"name": "capture"}, task=task)
    assert seen and all(job["task"] == task for job in seen)
    assert all("data_files" not in job["task"] for job in seen)


def test_failed_variant_is_reported_and_the_others_measured(
    tmp_path: Path, fake: ToyPlugin, slimkit_plugins: Any, hw: Hardware
) -> None:
    data = study_data(tmp_path, search={"space": [["round", "fail"]]})
    data["blocks"]["fail"] = {"technique": "toy.fail"}
    results = run_study(study_from_dict(data, base_dir=tmp_path), plugins=slimkit_plugins, hardware=hw).results
    assert results.folder == tmp_path / "study"
    results = results.document()
    fail = by_name(results)["fail"]
    assert fail["status"] == "failed" and "toy.fail always fails" in fail["note"]
    assert results["exit_code"] == 1
    assert [a["label"] for a in results["artifacts"]] == ["baseline", "round"]
    assert "| fail | fail | failed |" in render_markdown(as_results(results))


# -- Search on plain data ---------------------------------------------------------------------


def entry(label: str, ms: float, f1: float, base_f1: float = 0.80) -> MeasuredArtifact:
    return MeasuredArtifact.model_validate(
        {
            "label": label,
            "key": label,
            "format": "toy",
            "path": f"steps/{label}/model",
            "metrics": [
                {"name": "latency_ms.b1.s128", "value": ms, "kind": "speed", "better": "lower", "vs_baseline": {}},
                {"name": "size_bytes", "value": ms * 1e6, "kind": "size", "better": "lower", "vs_baseline": {}},
                {
                    "name": "micro_f1",
                    "value": f1,
                    "kind": "accuracy",
                    "vs_baseline": {"delta_points": round((f1 - base_f1) * 100, 4)},
                },
            ],
        }
    )


def test_select_best_within_budget_and_pareto_front() -> None:
    entries = [entry("baseline", 20, 0.80), entry("a", 10, 0.795), entry("b", 5, 0.78), entry("c", 12, 0.79)]
    spec = Study.model_validate({"model": "m", "variants": [{"blocks": ["x"]}], "blocks": {"x": {"technique": "t"}}})
    sel = select(entries, "baseline", spec.search)
    assert (sel.chosen, sel.meets_budget, sel.within_budget) == ("a", True, ["a", "c"])
    assert sel.pareto_front == ["b", "a", "baseline"]  # c is beaten by a on both axes
    size = spec.search.model_copy(update={"objective": "size"})
    assert select(entries, "baseline", size).objective == "size_bytes"
    strict = spec.search.model_copy(update={"budget": spec.search.budget.model_copy(update={"max_drop_points": 0.1})})
    sel = select(entries, "baseline", strict)
    assert sel.chosen is None and sel.closest == "a" and sel.pareto_front == ["b", "a", "baseline"]
    assert select([entry("baseline", 20, 0.8)], "baseline", spec.search).reason == "no compressed variant was measured"


def test_a_tie_on_the_objective_goes_to_the_more_accurate_variant() -> None:
    # a is 1 % faster than b (within the default 2 %), b loses less: b is chosen, and the reason says why.
    entries = [entry("baseline", 20, 0.80), entry("a", 2.00, 0.795), entry("b", 2.02, 0.805), entry("c", 2.2, 0.81)]
    spec = Study.model_validate({"model": "m", "variants": [{"blocks": ["x"]}], "blocks": {"x": {"technique": "t"}}})
    sel = select(entries, "baseline", spec.search)
    assert sel.chosen == "b"
    assert sel.reason == (
        "b ties for the best latency_ms.b1.s128 (9.90x the baseline's) with a (within 2%, finer than a session "
        "resolves) among the 3 variant(s) that lose at most 1 point of micro_f1, and is the most accurate of them "
        "(it gains 0.50)"
    )
    exact = spec.search.model_copy(update={"tie_tolerance": 0.0})
    assert select(entries, "baseline", exact).chosen == "a"  # c (10 % slower) is never tied


def test_a_tie_on_a_higher_is_better_objective() -> None:
    def with_throughput(label: str, per_s: float, f1: float) -> MeasuredArtifact:
        data = entry(label, 1.0, f1).model_dump()
        speed = {"name": "texts_per_s", "value": per_s, "kind": "speed", "better": "higher", "vs_baseline": {}}
        return MeasuredArtifact.model_validate(data | {"metrics": [*data["metrics"], speed]})

    entries = [with_throughput("baseline", 10, 0.80), with_throughput("a", 100, 0.795)]
    entries += [with_throughput("b", 99, 0.80), with_throughput("c", 90, 0.81)]
    spec = Study.model_validate({"model": "m", "variants": [{"blocks": ["x"]}], "blocks": {"x": {"technique": "t"}}})
    search = spec.search.model_copy(update={"objective": "texts_per_s", "tie_tolerance": 0.015})
    sel = select(entries, "baseline", search)
    assert sel.chosen == "b" and "(within 1.5%, finer" in sel.reason  # c is 10 % slower: not tied


# -- The report from a fixed results.json -----------------------------------------------------

FIXED = Path(__file__).resolve().parent / "data" / "study-results.json"


def test_report_from_a_fixed_results_file_lists_every_variant(tmp_path: Path) -> None:
    results = json.loads(FIXED.read_text())
    text = render_markdown(load_results(FIXED))
    for variant in results["variants"]:
        assert variant["name"] in text
    assert "# slimkit study: minilm-fixed" in text
    assert "**prune+onnx-int8**: prune+onnx-int8 has the best latency" in text
    assert "| prune+onnx-int8 ★ | prune → onnx-int8 | onnx |" in text
    assert "12.40 ms (p90 13.00) · 2.02x" in text  # latency with p90 and speed-up
    assert "81.20 · -0.60" in text  # accuracy with its delta in points
    assert "| distill | distill | skipped | not built: distill already lost" in text
    assert "vocab: no speed-up at batch 1 on this hardware (b1.s128 1.01x the baseline)" in text
    assert "onnxruntime 1.22.0" in text and "Test CPU" in text
    assert "Pareto front (objective vs accuracy): prune+onnx-int8, baseline." in text
    from slimkit.report import write_report

    path = write_report(tmp_path, load_results(FIXED))
    assert path.read_text(encoding="utf-8").startswith("# slimkit study: minilm-fixed")


def test_cli_plan_and_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_cli import TOY_LOCAL  # the project-local toy plugin file of the CLI tests

    monkeypatch.setenv("SLIMKIT_TRUST_LOCAL_PLUGINS", "1")

    (tmp_path / "toy_local.py").write_text(TOY_LOCAL)
    data = study_data(tmp_path, plugins=["toy_local.py"], search={"space": [["round", "gptq"]]})
    data["base"] = [{"name": "finetune", "technique": "toy.finetune"}]
    data["blocks"]["gptq"] = {"technique": "gptq.quantize"}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(data))
    runner = CliRunner()
    planned = runner.invoke(cli, ["study", "--plan", str(path)])
    assert planned.exit_code == 3
    assert "problem: variant gptq: step 2 (gptq): unknown technique 'gptq.quantize'" in planned.output
    refused = runner.invoke(cli, ["study", str(path)])
    assert refused.exit_code == 3 and "Error: the study cannot run: 1 problem(s)" in refused.output
    done = runner.invoke(cli, ["study", "--skip-invalid", "--json", str(path)])
    assert done.exit_code == 0, done.output
    results = json.loads(done.output)
    assert [(v["name"], v["status"]) for v in results["variants"]] == [
        ("baseline", "built"),
        ("round", "built"),
        ("gptq", "invalid"),
    ]
    shown = runner.invoke(cli, ["report", str(tmp_path / "study")])
    assert shown.exit_code == 0 and "# slimkit study: toy-study" in shown.output
    hurried = runner.invoke(
        cli, ["study", "--skip-invalid", "--json", "--time-budget", "1e-9", "-o", str(tmp_path / "hurried"), str(path)]
    )
    stopped = json.loads(hurried.output)  # out of time before the first variant: nothing built, exit 1
    assert hurried.exit_code == 1 and stopped["search"]["stopped_by_time_budget"] is True
    assert [v["status"] for v in stopped["variants"]] == ["not run", "not run", "invalid"]
