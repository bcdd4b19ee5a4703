"""The runner: what a run writes, the order of hook calls, resuming, and how failures are contained."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slimkit import Artifact, Metric, StepContext, hookimpl
from slimkit.artifacts import MANIFEST
from slimkit.errors import PlanRefused, SlimkitError
from slimkit.hardware import Hardware
from slimkit.results import resolve_path
from slimkit.runner import RunResult
from slimkit.spec import Pipeline, TaskSpec, pipeline_from_dict
from toy_plugin import ToyPlugin

SOURCE = "toy:0.1,0.5,-0.3,0.04"
# What every run writes in its folder, whatever its outcome.
RECORDS = ["journal.jsonl", "pipeline.json", "report.html", "report.md", "results.json"]


def toy_data(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "model": {"source": SOURCE, "format": "toy"}, "device": "cpu"} | fields


def toy_pipeline(name: str = "run", source: str = SOURCE) -> Pipeline:
    return Pipeline(name=name, model={"source": source, "format": "toy"}, device="cpu")


def four_steps(name: str = "run") -> Pipeline:
    return toy_pipeline(name).prune("toy.prune").train("toy.finetune").quantize(goal="size").export("toy.export")


@pytest.fixture
def run(run_pipeline: Callable[..., RunResult], hw: Hardware) -> Callable[..., RunResult]:
    def go(pipeline: Pipeline, **kw: Any) -> RunResult:
        return run_pipeline(pipeline, hardware=hw, **kw)

    return go


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def journal(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]


def weights(artifact: dict[str, Any], run_dir: Path) -> list[float]:
    path = resolve_path(artifact["path"], run_dir)  # results.json's paths are relative to its folder
    return json.loads((path / ("weights.toyx" if artifact["format"] == "toyx" else "weights.json")).read_text())


def test_full_run_writes_every_record(run: Any, toy: ToyPlugin, tmp_path: Path) -> None:
    result = run(four_steps())
    run_dir = tmp_path / "runs" / "run"
    assert result.run_dir == run_dir
    assert result.exit_code == 0
    assert sorted(p.name for p in run_dir.iterdir()) == [*RECORDS, "steps"]
    # No scratch folders are left behind; one folder per step, holding the model and its manifest.
    step_dirs = sorted(run_dir.joinpath("steps").iterdir())
    assert len(step_dirs) == 4
    assert not any(p.name.startswith(".tmp-") for p in step_dirs)
    for folder in step_dirs:
        assert sorted(p.name for p in folder.iterdir()) == [".slimkit-verified.json", "model", MANIFEST]

    assert read_json(run_dir / "pipeline.json")["steps"][2] == {
        "name": None,
        "technique": None,
        "stage": "quantize",
        "goal": "size",
        "config": {},
    }

    results = read_json(run_dir / "results.json")
    assert results["schema"] == "slimkit.results/2"
    assert results["pipeline"] == "run"
    assert results["exit_code"] == 0
    assert results["device"] == "cpu"
    assert results["baseline"] == "source"
    assert results["hardware"]["cpu_model"] == "Test CPU"
    assert results["libraries"]["slimkit"]
    assert results["plan"]["ok"] is True
    assert results["measure_errors"] == {} and results["warnings"] == []
    assert [(s["index"], s["name"], s["technique"], s["status"], s["error"]) for s in results["steps"]] == [
        (1, "toy.prune", "toy.prune", "done", None),
        (2, "toy.finetune", "toy.finetune", "done", None),
        (3, "quantize", "toy.round", "done", None),
        (4, "toy.export", "toy.export", "done", None),
    ]
    artifacts = results["artifacts"]
    assert [(a["label"], a["produced_by"], a["format"]) for a in artifacts] == [
        ("source", None, "toy"),
        ("toy.prune", "toy.prune", "toy"),
        ("toy.finetune", "toy.finetune", "toy"),
        ("quantize", "toy.round", "toy"),
        ("toy.export", "toy.export", "toyx"),
    ]
    assert [weights(a, run_dir) for a in artifacts] == [
        [0.1, 0.5, -0.3, 0.04],
        [0.0, 0.5, -0.3, 0.0],
        [0.0, 1.0, -0.6, 0.0],
        [0.0, 1.0, -0.6, 0.0],
        [0.0, 1.0, -0.6, 0.0],
    ]
    # Every artifact is measured by both measurers, and compared with the baseline.
    for a in artifacts:
        assert [(m["name"], m["source"]) for m in a["metrics"]] == [("size_bytes", "disk"), ("nonzero_share", "toy")]
    nonzero = [a["metrics"][1] for a in artifacts]
    assert [m["value"] for m in nonzero] == [1.0, 0.5, 0.5, 0.5, 0.5]
    assert [m["vs_baseline"] for m in nonzero] == [{"delta_points": 0.0}] + [{"delta_points": -50.0}] * 4
    assert artifacts[0]["metrics"][0]["vs_baseline"] == {"ratio": 1.0}
    # The step records point at the artifacts in their final folders, relative to the run directory;
    # the source model in the cache is written with the cache's variable, never an absolute path.
    assert artifacts[0]["path"].startswith("$SLIMKIT_CACHE/toy-")
    for step, artifact in zip(results["steps"], artifacts[1:], strict=True):
        assert step["artifact"]["path"] == artifact["path"]
        assert Path(artifact["path"]).parent.parent == Path("steps")
        assert step["key"] == artifact["key"]

    report = (run_dir / "report.md").read_text()
    assert report.startswith("# slimkit run: run\n")
    assert "| model | technique | format | size_bytes |" in report
    assert "| model | technique | format | nonzero_share |" in report
    assert "| toy.export | toy.export | toyx | " in report
    assert "| 3 | quantize | toy.round | toy | done | " in report

    assert [e["event"] for e in journal(run_dir)] == [
        "run_started",
        "source_resolved",
        *["step_started", "step_done"] * 4,
        "measure_started",
        "measure_done",
        "run_finished",
    ]
    assert journal(run_dir)[-1]["exit_code"] == 0
    assert journal(run_dir)[-3]["artifacts"] == ["source", "toy.prune", "toy.finetune", "quantize", "toy.export"]


def test_hook_call_order(run: Any, toy: ToyPlugin) -> None:
    run(toy_pipeline().prune("toy.prune").quantize("toy.round", name="q").export("toy.export"))
    assert toy.calls == [
        "resolve_model",
        "before_step:toy.prune",
        "prune:toy.prune",
        "after_step:toy.prune",
        "before_step:q",
        "quantize:q",
        "after_step:q",
        "before_step:toy.export",
        "export:toy.export",
        "after_step:toy.export",
        "measure:source,toy.prune,q,toy.export",
    ]


def failing_pipeline() -> Pipeline:
    return toy_pipeline().prune("toy.prune").train("toy.finetune").quantize("toy.fail", name="q").export("toy.export")


def fixed_pipeline() -> Pipeline:
    return toy_pipeline().prune("toy.prune").train("toy.finetune").quantize("toy.round", name="q").export("toy.export")


def test_failed_step_keeps_earlier_results_and_resumes(run: Any, toy: ToyPlugin, tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "run"
    result = run(failing_pipeline())
    assert result.exit_code == 1
    assert toy.executed == ["toy.prune", "toy.finetune"]
    assert toy.calls[-3:] == ["quantize:q", "on_step_error:q:RuntimeError", "measure:source,toy.prune,toy.finetune"]
    results = read_json(run_dir / "results.json")
    assert results["exit_code"] == 1
    assert [(s["name"], s["status"], s["error"]) for s in results["steps"]] == [
        ("toy.prune", "done", None),
        ("toy.finetune", "done", None),
        ("q", "failed", "RuntimeError: toy.fail always fails"),
        ("toy.export", "skipped", "step 3 (q) failed"),
    ]
    # The finished steps are usable: measured, on disk, and in the report.
    assert [(a["label"], [m["name"] for m in a["metrics"]]) for a in results["artifacts"]] == [
        ("source", ["size_bytes", "nonzero_share"]),
        ("toy.prune", ["size_bytes", "nonzero_share"]),
        ("toy.finetune", ["size_bytes", "nonzero_share"]),
    ]
    assert weights(results["artifacts"][2], run_dir) == [0.0, 1.0, -0.6, 0.0]
    report = (run_dir / "report.md").read_text()
    assert "| 3 | q | toy.fail | toy | failed |" in report
    assert "RuntimeError: toy.fail always fails |" in report
    assert "| 4 | toy.export | toy.export | toy | skipped | - | step 3 (q) failed |" in report
    events = [e["event"] for e in journal(run_dir)]
    assert events[-5:] == ["step_started", "step_failed", "measure_started", "measure_done", "run_finished"]
    # The failed step left no folder, finished or scratch.
    assert len(list((run_dir / "steps").iterdir())) == 2

    # Fixed: the first two steps are reused, not recomputed.
    toy.calls.clear()
    toy.executed.clear()
    result = run(fixed_pipeline())
    assert result.exit_code == 0
    assert [s.status for s in result.steps] == ["reused", "reused", "done", "done"]
    assert toy.executed == ["q", "toy.export"]
    assert toy.calls[:6] == [
        "resolve_model",
        "before_step:toy.prune:cached",
        "after_step:toy.prune",
        "before_step:toy.finetune:cached",
        "after_step:toy.finetune",
        "before_step:q",
    ]
    results = read_json(run_dir / "results.json")
    assert [s["status"] for s in results["steps"]] == ["reused", "reused", "done", "done"]
    assert [s["seconds"] for s in results["steps"][:2]] == [0.0, 0.0]
    assert weights(results["artifacts"][-1], run_dir) == [0.0, 1.0, -0.6, 0.0]
    assert "step_reused" in [e["event"] for e in journal(run_dir)]

    # --force recomputes everything.
    toy.executed.clear()
    result = run(fixed_pipeline(), force=True)
    assert [s.status for s in result.steps] == ["done"] * 4
    assert toy.executed == ["toy.prune", "toy.finetune", "q", "toy.export"]
    assert len(list((run_dir / "steps").iterdir())) == 4


def test_a_moved_run_folder_is_still_reused(run: Any, toy: ToyPlugin, tmp_path: Path) -> None:
    pipeline = toy_pipeline().prune("toy.prune").quantize("toy.round")
    first = run(pipeline.model_copy(update={"output_dir": tmp_path / "old"}))
    (tmp_path / "old").rename(tmp_path / "new")
    toy.executed.clear()
    result = run(pipeline.model_copy(update={"output_dir": tmp_path / "new"}))
    assert [s.status for s in result.steps] == ["reused", "reused"]
    assert toy.executed == []
    assert [s.key for s in result.steps] == [s.key for s in first.steps]
    for step in result.steps:
        assert step.artifact is not None and step.artifact.path.is_relative_to(tmp_path / "new")
        assert (step.artifact.path / "weights.json").is_file()


def test_a_finished_step_whose_model_is_gone_is_computed_again(run: Any, toy: ToyPlugin) -> None:
    import shutil

    pipeline = toy_pipeline().prune("toy.prune")
    first = run(pipeline)
    shutil.rmtree(first.steps[0].artifact.path)  # type: ignore[union-attr]
    assert [s.status for s in run(pipeline).steps] == ["done"]


def test_changing_a_config_recomputes_that_step_and_later_ones(run: Any, toy: ToyPlugin) -> None:
    run(fixed_pipeline())
    toy.executed.clear()
    changed = toy_pipeline().prune("toy.prune").train("toy.finetune", factor=3.0)
    changed = changed.quantize("toy.round", name="q").export("toy.export")
    result = run(changed)
    assert [s.status for s in result.steps] == ["reused", "done", "done", "done"]
    assert toy.executed == ["toy.finetune", "q", "toy.export"]


def test_pipelines_sharing_a_store_reuse_each_others_steps(run: Any, toy: ToyPlugin, tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = toy_pipeline("first").prune("toy.prune", name="p").train("toy.finetune", name="tune")
    run(first.model_copy(update={"store_dir": store}))
    toy.executed.clear()
    second = toy_pipeline("second").prune("toy.prune", name="prune-again").quantize("toy.round")
    result = run(second.model_copy(update={"store_dir": store}))
    assert [s.status for s in result.steps] == ["reused", "done"]
    assert toy.executed == ["toy.round"]
    assert result.steps[0].artifact is not None and result.steps[0].artifact.label == "prune-again"
    assert not (result.run_dir / "steps").exists()  # finished steps live in the store only


def test_a_step_on_other_data_or_seed_is_not_reused(run: Any, toy: ToyPlugin, tmp_path: Path) -> None:
    # Same source, technique and config, but a training step reads the task's data and the seed.
    store = tmp_path / "store"
    base = toy_pipeline("a").train("toy.finetune", name="tune").model_copy(update={"store_dir": store})
    run(base)
    other_seed = base.model_copy(update={"name": "b", "seed": 1})
    other_task = base.model_copy(update={"name": "c", "task": TaskSpec(preset="some-task", max_train_examples=10)})
    for pipeline in (other_seed, other_task):
        toy.executed.clear()
        result = run(pipeline)
        assert [s.status for s in result.steps] == ["done"], pipeline.name
        assert toy.executed == ["tune"]
    toy.executed.clear()
    assert [s.status for s in run(base.model_copy(update={"name": "d"})).steps] == ["reused"]


def test_scoring_fewer_eval_rows_reuses_the_steps(run: Any, toy: ToyPlugin, tmp_path: Path) -> None:
    # max_eval_examples chooses which dev rows are scored; the trained model is the same.
    store = tmp_path / "store"
    task = TaskSpec(preset="some-task", max_train_examples=10)
    base = toy_pipeline("a").train("toy.finetune", name="tune").model_copy(update={"store_dir": store, "task": task})
    run(base)
    toy.executed.clear()
    capped = base.model_copy(update={"name": "b", "task": task.model_copy(update={"max_eval_examples": 5})})
    assert [s.status for s in run(capped).steps] == ["reused"]
    assert toy.executed == []


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_inputs_are_never_modified(run: Any, toy: ToyPlugin, tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.json").write_text("[0.1, 0.9, -0.2]")
    before = snapshot(model)
    pipeline = Pipeline(name="local", model={"source": str(model), "format": "toy"}, device="cpu")
    result = run(pipeline.prune("toy.prune").quantize("toy.round").export("toy.export"))
    assert result.exit_code == 0
    assert result.source is not None and result.source.path == model
    assert snapshot(model) == before
    assert [s.artifact.path.is_relative_to(result.run_dir) for s in result.steps] == [True, True, True]  # type: ignore[union-attr]


class Custom:
    """A plugin with one prune technique whose behaviour each test supplies."""

    def __init__(self, prune: Callable[[StepContext], Artifact | None]) -> None:
        self._prune = prune
        self.errors: list[str] = []

    @hookimpl
    def register_techniques(self, register):  # type: ignore[no-untyped-def]
        register({"name": "custom.prune", "stage": "prune", "summary": "s", "consumes": ["toy"]})

    @hookimpl
    def prune(self, step):  # type: ignore[no-untyped-def]
        return self._prune(step) if step.owns("custom.prune") else None

    @hookimpl
    def on_step_error(self, step, error):  # type: ignore[no-untyped-def]
        self.errors.append(f"{step.name}: {error}")


def test_artifact_outside_the_output_folder_is_a_failure(
    run: Any, toy: ToyPlugin, register_plugin: Any, tmp_path: Path
) -> None:
    custom = Custom(lambda step: step.input)  # hands back its input instead of writing a model
    register_plugin(custom, name="custom")
    result = run(toy_pipeline().prune("custom.prune", name="leaky").quantize("toy.round"))
    assert result.exit_code == 1
    source_path = result.source.path  # type: ignore[union-attr]
    error = (
        f"PluginError: step 'leaky' returned an artifact outside its output folder: {source_path} "
        "(fix: write into step.output_dir and return step.artifact())"
    )
    assert [(s.status, s.error) for s in result.steps] == [("failed", error), ("skipped", "step 1 (leaky) failed")]
    assert custom.errors == [f"leaky: {error.removeprefix('PluginError: ')}"]
    assert not (result.run_dir / "steps").exists() or list((result.run_dir / "steps").iterdir()) == []


def test_step_returning_none_is_a_failure(run: Any, toy: ToyPlugin, register_plugin: Any) -> None:
    register_plugin(Custom(lambda step: None), name="custom")
    result = run(toy_pipeline().prune("custom.prune"))
    assert [s.error for s in result.steps] == [
        "PluginError: step 'custom.prune': plugin 'custom' declares 'custom.prune' but nothing performed it: the "
        "declaration names no implementation and no 'prune' hook returned an artifact (fix: declare "
        "implementation='package.module:function' for 'custom.prune')"
    ]


def test_scratch_never_becomes_a_finished_step(run: Any, toy: ToyPlugin, register_plugin: Any) -> None:
    attempts: list[Path] = []

    def half_written(step: StepContext) -> Artifact:
        attempts.append(step.output_dir)
        (step.output_dir / "weights.json").write_text("[0.5]")
        if len(attempts) == 1:
            raise OSError("disk full")
        return step.artifact()

    register_plugin(Custom(half_written), name="custom")
    pipeline = toy_pipeline().prune("custom.prune", name="half")
    result = run(pipeline)
    assert result.steps[0].status == "failed"
    assert result.steps[0].error == "OSError: disk full"
    steps_dir = result.run_dir / "steps"
    assert list(steps_dir.iterdir()) == []  # the scratch folder is gone, and nothing looks finished
    assert not attempts[0].exists()
    # The next run computes the step again instead of reusing a half-written one.
    result = run(pipeline)
    assert [s.status for s in result.steps] == ["done"]
    assert len(attempts) == 2
    (folder,) = steps_dir.iterdir()
    assert folder.name == f"half-{result.steps[0].key}"
    assert (folder / MANIFEST).is_file()


def test_stale_scratch_of_a_killed_run_is_removed(run: Any, toy: ToyPlugin) -> None:
    pipeline = toy_pipeline().prune("toy.prune")
    result = run(pipeline, force=True)
    final = result.steps[0].artifact.path.parent  # type: ignore[union-attr]
    stale = final.parent / f".tmp-{final.name}-deadbeef"
    (stale / "model").mkdir(parents=True)
    run(pipeline, force=True)
    assert not stale.exists()


def test_the_runner_owns_key_and_label(run: Any, toy: ToyPlugin, register_plugin: Any) -> None:
    def impostor(step: StepContext) -> Artifact:
        (step.output_dir / "weights.json").write_text("[1.0]")
        return Artifact(key=step.input.key, path=step.output_dir, format="toy", label="source")

    register_plugin(Custom(impostor), name="custom")
    result = run(toy_pipeline().prune("custom.prune", name="mine"))
    artifact = result.steps[0].artifact
    assert artifact is not None
    assert (artifact.key, artifact.label) == (result.steps[0].key, "mine")
    assert artifact.key != result.source.key  # type: ignore[union-attr]
    assert [len(result.metrics[a.key]) for a in result.artifacts()] == [2, 2]


class Measurer:
    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour

    @hookimpl
    def measure(self, artifacts, context):  # type: ignore[no-untyped-def]
        if self.behaviour == "raise":
            raise ValueError("cannot load toy models\ntraceback-ish detail")
        if self.behaviour == "clash":
            return {a.key: [Metric(name="nonzero_share", value=0.0)] for a in artifacts}
        if self.behaviour == "malformed":
            return {a.key: [{"name": "x", "value": "not a number"}] for a in artifacts}
        return {a.key: [{"name": "params", "value": 4.0, "kind": "size", "better": "lower"}] for a in artifacts}


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        ("raise", "ValueError: cannot load toy models"),
        ("clash", "PluginError: metric 'nonzero_share' is reported by both 'toy' and 'extra'"),
        ("malformed", "ValidationError: 1 validation error for Metric"),
    ],
)
def test_a_broken_measurer_is_named_and_the_others_count(
    run: Any, toy: ToyPlugin, register_plugin: Any, tmp_path: Path, behaviour: str, error: str
) -> None:
    register_plugin(Measurer(behaviour), name="extra")
    result = run(toy_pipeline().prune("toy.prune"))
    assert result.exit_code == 1
    assert [s.status for s in result.steps] == ["done"]
    assert result.measure_errors == {"extra": error}
    results = read_json(result.results_path)
    assert results["measure_errors"] == {"extra": error}
    assert results["exit_code"] == 1
    for artifact in results["artifacts"]:
        assert [(m["name"], m["source"]) for m in artifact["metrics"]] == [
            ("size_bytes", "disk"),
            ("nonzero_share", "toy"),
        ]
    assert f"- measurer 'extra' failed: {error}" in (result.run_dir / "report.md").read_text()


def test_a_working_extra_measurer_adds_its_metrics(run: Any, toy: ToyPlugin, register_plugin: Any) -> None:
    register_plugin(Measurer("ok"), name="extra")
    result = run(toy_pipeline().prune("toy.prune"))
    assert result.exit_code == 0
    names = {(m.name, m.source) for m in result.metrics[result.source.key]}  # type: ignore[union-attr]
    assert names == {("size_bytes", "disk"), ("nonzero_share", "toy"), ("params", "extra")}


def test_baseline_step(run: Any, toy: ToyPlugin) -> None:
    steps = [{"technique": "toy.finetune", "name": "tune"}, {"technique": "toy.round", "config": {"decimals": 0}}]
    result = run(pipeline_from_dict(toy_data("based", baseline="tune", steps=steps)))
    results = read_json(result.results_path)
    assert results["baseline"] == "tune"
    assert toy.calls[-1] == "measure:tune,source,toy.round"  # the baseline is measured first
    by_label = {a["label"]: a for a in results["artifacts"]}
    # Relative to the fine-tuned model [0.2, 1.0, -0.6, 0.08]; rounding zeroes two of four weights.
    assert weights(by_label["toy.round"], result.run_dir) == [0.0, 1.0, -1.0, 0.0]
    assert by_label["tune"]["metrics"][1]["vs_baseline"] == {"delta_points": 0.0}
    assert by_label["toy.round"]["metrics"][1]["vs_baseline"] == {"delta_points": -50.0}


def test_unfinished_baseline_step_falls_back_to_the_source(run: Any, toy: ToyPlugin) -> None:
    steps = [{"technique": "toy.prune"}, {"technique": "toy.fail", "name": "boom"}]
    result = run(pipeline_from_dict(toy_data("nb", baseline="boom", steps=steps)))
    assert result.baseline is not None and result.baseline.label == "source"
    assert result.warnings == ["baseline step 'boom' did not finish; figures are relative to the source model"]


def test_measurement_can_be_disabled(run: Any, toy: ToyPlugin) -> None:
    pipeline = Pipeline(name="nm", model={"source": SOURCE, "format": "toy"}, device="cpu", measure={"enabled": False})
    result = run(pipeline.prune("toy.prune"))
    assert result.exit_code == 0
    assert not any(c.startswith("measure") for c in toy.calls)
    results = read_json(result.results_path)
    assert results["baseline"] is None
    assert [a["metrics"] for a in results["artifacts"]] == [[], []]


def test_a_refused_plan_computes_nothing(run: Any, toy: ToyPlugin, tmp_path: Path) -> None:
    with pytest.raises(PlanRefused) as info:
        run(toy_pipeline().quantize("toy.round").train("toy.finetune"))
    assert len(info.value.problems) == 1
    assert toy.calls == []
    run_dir = tmp_path / "runs" / "run"
    assert sorted(p.name for p in run_dir.iterdir()) == RECORDS
    results = read_json(run_dir / "results.json")
    assert (results["outcome"], results["exit_code"]) == ("refused", 3)
    assert journal(run_dir)[-1]["outcome"] == "refused"


def test_a_source_no_plugin_can_load(run: Any, toy: ToyPlugin, tmp_path: Path) -> None:
    pipeline = Pipeline(name="nosrc", model={"source": "nowhere/model", "format": "toy"}, device="cpu")
    with pytest.raises(SlimkitError, match=r"^model: no installed plugin can load 'nowhere/model'"):
        run(pipeline.prune("toy.prune"))
    # The failure is on record, not only on the terminal.
    run_dir = tmp_path / "runs" / "nosrc"
    results = read_json(run_dir / "results.json")
    assert results["exit_code"] == 2 and results["error"].startswith("model: no installed plugin can load")
    assert [e["event"] for e in journal(run_dir)][-2:] == ["source_failed", "run_finished"]
    assert "the run stopped: model: no installed plugin" in (run_dir / "report.md").read_text()
    assert toy.calls == []


def test_after_step_sees_the_final_folder(run: Any, toy: ToyPlugin, register_plugin: Any) -> None:
    seen: list[tuple[Path, Path]] = []

    class Observer:
        @hookimpl
        def after_step(self, step, artifact):  # type: ignore[no-untyped-def]
            seen.append((step.output_dir, artifact.path))

    register_plugin(Observer(), name="observer")
    result = run(toy_pipeline().prune("toy.prune"))
    final = result.steps[0].artifact.path  # type: ignore[union-attr]
    assert seen == [(final, final)]
    assert final.name == "model"
    assert (final / "weights.json").is_file()


def test_interrupted_step_is_recorded_and_reraised(
    run: Any, toy: ToyPlugin, register_plugin: Any, tmp_path: Path
) -> None:
    def interrupted(step: StepContext) -> Artifact:
        raise KeyboardInterrupt

    register_plugin(Custom(interrupted), name="custom")
    with pytest.raises(KeyboardInterrupt):
        run(toy_pipeline(name="intr").prune("toy.prune").prune("custom.prune", name="slow"))
    results = read_json(tmp_path / "runs" / "intr" / "results.json")
    assert [(s["status"], s["error"]) for s in results["steps"]] == [
        ("done", None),
        ("interrupted", "interrupted by the user"),
    ]
    # The record says what the process's exit code says: interrupted, 130, and where.
    assert (results["outcome"], results["exit_code"]) == ("interrupted", 130)
    assert results["reason"] == "interrupted by the user during step 2 (slow)"
    events = journal(tmp_path / "runs" / "intr")
    assert [e["event"] for e in events][-2:] == ["step_interrupted", "run_finished"]
    assert (events[-1]["outcome"], events[-1]["exit_code"]) == ("interrupted", 130)
    report = (tmp_path / "runs" / "intr" / "report.md").read_text()
    assert "**Outcome: interrupted** (exit code 130): interrupted by the user during step 2 (slow)" in report


def test_trackers_get_the_finished_results_and_a_broken_one_changes_nothing(
    run: Any, toy: ToyPlugin, register_plugin: Any, tmp_path: Path
) -> None:
    seen: list[tuple[Path, str, dict[str, Any]]] = []

    class Recorder:
        @hookimpl
        def after_run(self, run_dir: Path, results: Any, tracking: dict[str, Any]) -> str:
            seen.append((run_dir, results.outcome, tracking))
            return f"recorded {results.pipeline}"

    class Broken:
        @hookimpl
        def after_run(self, run_dir: Path, results: Any, tracking: dict[str, Any]) -> str:
            raise ConnectionError("tracker down")

    register_plugin(Recorder(), name="recorder")
    register_plugin(Broken(), name="broken")
    lines: list[str] = []
    pipeline = four_steps().model_copy(update={"tracking": {"recorder": {"uri": "x"}}})
    result = run(pipeline, console=_Lines(lines), show_progress=True)
    assert result.exit_code == 0 and result.outcome == "done"
    assert seen == [(result.run_dir, "done", {"recorder": {"uri": "x"}})]
    assert read_json(result.results_path)["outcome"] == "done"  # written before the trackers ran
    assert "recorded run" in lines
    shown = "".join(lines)  # the display wraps long lines
    assert "! tracker 'broken' failed, the results are still in " in shown and "ConnectionError: tracker down" in shown


class _Lines:
    """A console that keeps each line written to it."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def write(self, text: str) -> int:
        self.lines.extend(line for line in text.splitlines() if line)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False
