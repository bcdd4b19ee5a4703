"""The ray executor with real Ray (no mocks): a local instance of 2 CPUs, fake techniques that
sleep, crash their worker, or crash it once; and one slow test on a two-node cluster."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from slimkit.errors import SlimkitError
from slimkit.plugins import build_plugins
from slimkit.results import StudyResults
from slimkit.study.executors import ExecutorContext, VariantJob, make_executor
from slimkit.study.runner import plan_study, run_study
from slimkit.study.spec import study_from_dict

RAY = {"name": "ray"}
SLEEPY = Path(__file__).with_name("sleepy.py")


def study_data(tmp_path: Path, *, executor: dict[str, Any] | None = None, **blocks: Any) -> dict[str, Any]:
    """A study of the baseline (no steps) and one variant per block (a grid gives several)."""
    return {
        "name": "ray-study",
        "model": {"source": "sleepy:1,2,3", "format": "toy"},
        "device": "cpu",
        "output_dir": str(tmp_path / "study"),
        "plugins": [str(SLEEPY)],
        "executor": executor or {"name": "local"},
        "blocks": blocks or {"work": {"technique": "sleepy.work", "grid": {"tag": [1, 2, 3, 4]}}},
        "search": {"space": [list(blocks or ["work"])], "budget": {"metric": "score"}},
    }


def run(tmp_path: Path, **kw: Any) -> StudyResults:
    study = study_from_dict(study_data(tmp_path, **kw), base_dir=tmp_path)
    return run_study(study, plugins=build_plugins()).results


def figures(results: StudyResults) -> dict[str, dict[str, float | None]]:
    return {a.label: {m.name: m.value for m in a.metrics} for a in results.artifacts}


def test_options_are_checked_in_one_line() -> None:
    plugins = build_plugins()
    assert plugins.make_executor("local", {}) is None  # not ours: the built-in one answers
    with pytest.raises(SlimkitError) as bad:
        make_executor("ray", {"num_cpus": -1}, plugins)
    assert str(bad.value) == (
        "executor.options.num_cpus: Input should be greater than or equal to 0 (fix: write it as num_cpus = 2)"
    )
    with pytest.raises(SlimkitError, match=r"^executor.options.workers: unknown option \(fix: the options are address"):
        make_executor("ray", {"workers": 2}, plugins)
    with pytest.raises(SlimkitError, match=r"^executor.options.resources.gpu: Input should be a valid number"):
        make_executor("ray", {"resources": {"gpu": "many"}}, plugins)
    executor = make_executor("ray", {"address": "auto", "max_retries": 2}, plugins)
    assert executor.name == "ray"
    refused = make_executor("ray", {"resources": {"CPU": 2}}, plugins)  # valid to pydantic, not to Ray
    job = VariantJob("v", {}, str(Path.cwd()))
    with pytest.raises(SlimkitError, match=r"^executor.options: Ray refused them: ValueError: Use the 'num_cpus'"):
        next(iter(refused.run([job], ExecutorContext(plugins=plugins, hardware=plan_hardware()))))


def test_loading_the_plugin_imports_no_ray() -> None:
    import subprocess
    import sys

    code = "import slimkit_ray, sys; slimkit_ray.make_executor('ray', {}); print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_executor_starts_and_stops_its_own_ray(tmp_path: Path) -> None:
    import ray

    if ray.is_initialized():  # another test's instance: this one must start its own
        ray.shutdown()
    results = run(tmp_path, executor=RAY, work={"technique": "sleepy.work", "config": {"seconds": 0}})
    assert results.outcome == "done", results.reason
    assert not ray.is_initialized()  # shut down at the end: it was ours


def test_a_study_on_ray_ends_as_the_local_one(tmp_path: Path, local_ray: Any) -> None:
    local = run(tmp_path / "local")
    remote = run(tmp_path / "ray", executor=RAY)
    assert remote.outcome == local.outcome == "done", remote.reason
    assert remote.executor == "ray" and local.executor == "local"
    assert [(v.name, v.status, v.key) for v in remote.variants] == [(v.name, v.status, v.key) for v in local.variants]
    assert figures(remote) == figures(local) and remote.selection == local.selection
    assert {v.built_on for v in local.variants} == {remote.measured_on}
    assert all(v.built_on and v.built_on.startswith(f"{remote.measured_on} [node ") for v in remote.variants)
    assert local_ray.is_initialized()  # an instance the executor did not start is left alone
    report = (tmp_path / "ray" / "study" / "report.md").read_text(encoding="utf-8")
    assert f"Built on: {remote.variants[0].built_on} (5); measured on {remote.measured_on} in one session." in report


def test_outcomes_stream_back_as_variants_finish(tmp_path: Path, local_ray: Any) -> None:
    blocks = {
        "slow": {"technique": "sleepy.work", "config": {"seconds": 5, "tag": 1}},
        "fast": {"technique": "sleepy.work", "config": {"seconds": 0.2, "tag": 2}},
    }
    study = study_from_dict(study_data(tmp_path, executor=RAY, **blocks), base_dir=tmp_path)
    plugins = build_plugins()
    plan = plan_study(study, plugins=plugins)
    jobs = [
        VariantJob(v.name, v.pipeline.model_dump(mode="json", exclude_unset=True), str(v.pipeline.base_dir))
        for v in plan.variants
        if v.name != "baseline"
    ]
    executor = make_executor("ray", {}, plugins)
    start = time.monotonic()
    arrived = [
        (o.name, o.status, time.monotonic() - start)
        for o in executor.run(jobs, ExecutorContext(plugins=plugins, hardware=plan_hardware()))
    ]
    assert [(name, status) for name, status, _ in arrived] == [("fast", "done"), ("slow", "done")]
    assert arrived[1][2] - arrived[0][2] > 2  # the fast one was handed over while the slow one ran


def plan_hardware() -> Any:
    from slimkit.hardware import probe

    return probe(cuda=False)


def test_time_budget_cancels_queued_and_running_variants(tmp_path: Path, local_ray: Any) -> None:
    log = tmp_path / "log"
    log.mkdir()
    # 2 CPUs: the baseline (no step) and 'quick' start; 'long[tag=1]' takes the baseline's CPU and
    # is half-way when 'quick' comes back after the budget; the other 'long' ones are still queued.
    blocks = {
        "quick": {"technique": "sleepy.work", "config": {"seconds": 2.5, "log": str(log)}},
        "long": {"technique": "sleepy.work", "grid": {"tag": [1, 2, 3, 4]}, "config": {"seconds": 5, "log": str(log)}},
    }
    data = study_data(tmp_path, executor=RAY, **blocks)
    data["search"]["time_budget_s"] = 2
    started = time.monotonic()
    results = run_study(study_from_dict(data, base_dir=tmp_path), plugins=build_plugins()).results
    took = time.monotonic() - started
    assert results.search is not None and results.search.stopped_by_time_budget
    status = {v.name: v.status for v in results.variants}
    # Which came back in time depends on how fast Ray starts its workers; the first one back, at
    # least the baseline, is always kept, and the rest did not run.
    assert status["baseline"] == "built" and set(status.values()) == {"built", "not run"}
    assert took < 10  # four variants of 5 s more on 2 CPUs would take 10 s
    time.sleep(max(0.0, 11 - took))  # a variant left to run would have finished by now
    stem = {"quick": "quick-0", **{f"long[tag={t}]": f"long-{t}" for t in (1, 2, 3, 4)}}
    ended = {p.stem for p in log.glob("*.end")}
    begun = {p.stem for p in log.glob("*.start")}
    assert ended == {stem[n] for n, s in status.items() if s == "built" and n != "baseline"}
    assert begun - ended  # one was killed half-way: force-cancelled, not left to run


def test_a_dead_worker_fails_its_variant_and_the_study_goes_on(tmp_path: Path, local_ray: Any) -> None:
    blocks = {
        "work": {"technique": "sleepy.work", "grid": {"tag": [1, 2]}, "config": {"seconds": 0.5}},
        "boom": {"technique": "sleepy.work", "config": {"crash": "always"}},
    }
    results = run(tmp_path, executor=RAY, **blocks)
    status = {v.name: (v.status, v.note) for v in results.variants}
    assert results.outcome == "failed" and results.exit_code == 1
    assert [n for n, (s, _) in status.items() if s == "built"] == ["baseline", "work[tag=1]", "work[tag=2]"]
    state, note = status["boom"]
    assert state == "failed" and note is not None
    assert note.startswith("the Ray worker building it died: WorkerCrashedError"), note
    assert sorted(figures(results)) == ["baseline", "work[tag=1]", "work[tag=2]"]  # measured all the same


def test_max_retries_builds_a_flaky_variant_again(tmp_path: Path, local_ray: Any) -> None:
    marker = tmp_path / "crashed-once"
    blocks = {"flaky": {"technique": "sleepy.work", "config": {"crash": "once", "marker": str(marker), "tag": 5}}}
    results = run(tmp_path, executor={"name": "ray", "options": {"max_retries": 1}}, **blocks)
    assert results.outcome == "done", results.reason
    assert marker.exists()  # it did crash the first time
    assert {v.name: v.status for v in results.variants} == {"baseline": "built", "flaky": "built"}


@pytest.mark.slow
def test_a_study_across_two_nodes_of_a_cluster(tmp_path: Path, two_nodes: str) -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
    blocks = {"work": {"technique": "sleepy.work", "grid": {"tag": [1, 2, 3, 4]}, "config": {"seconds": 1.5}}}
    results = run(tmp_path, executor={"name": "ray", "options": {"address": two_nodes}}, **blocks)
    assert results.outcome == "done", results.reason
    nodes = {v.built_on for v in results.variants if v.name != "baseline"}
    assert len(nodes) == 2, nodes  # one CPU each: the four variants were shared between both nodes
    assert not ray.is_initialized()  # disconnected; the cluster itself is the fixture's to stop
