"""Runs and studies of a tiny BERT recorded in a real MLflow server, read back through MlflowClient."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from slimkit.errors import SlimkitError
from slimkit.hardware import probe
from slimkit.results import MeasuredArtifact, RunResults, StudyResults, load_results
from slimkit.study import study_from_dict
from slimkit.study.runner import run_study
from slimkit_mlflow import after_run
from slimkit_mlflow.config import resolve_settings
from slimkit_transformers.testing import FAST_MEASURE

# The runs need sources, tasks and the measurement (transformers) and techniques (torch, onnx).
pytestmark = pytest.mark.slimkit_plugins("transformers", "torch", "onnx", "mlflow")

# One batch size, one length: latency (with its spread), accuracy, size and memory, in seconds.
MEASURE = {"batch_sizes": [1], "dynamic_length": False}


def expected_metrics(artifact: MeasuredArtifact, prefix: str = "") -> dict[str, float]:
    """What results.json says of ``artifact``, under the names docs/plugins/mlflow.md gives."""
    head = f"{prefix}/" if prefix else ""
    out: dict[str, float] = {}
    for m in artifact.metrics:
        if m.value is not None:
            out[head + m.name] = m.value
        out |= {f"{head}{m.name}.spread.{k}": v for k, v in m.spread.items()}
        out |= {f"{head}{m.name}.vs_baseline.{k}": v for k, v in m.vs_baseline.items()}
    return out


def said(console: io.StringIO, start: str = "MLflow: run ") -> str:
    """The console line that begins with ``start``, unwrapped (Rich wraps a StringIO at 80 columns)."""
    text = " ".join(console.getvalue().split())
    at = text.index(start)
    return text[at : text.find(" ! ", at) if " ! " in text[at:] else None]


def artifact_paths(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    found: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        found |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def test_a_study_is_a_parent_run_with_one_nested_run_per_variant(
    plugins: Any, slimkit_plugins: Any, tiny_bert: Path, tiny_task: dict[str, Any], tmp_path: Path, mlflow_server: str
) -> None:
    data = {
        "name": "tiny-study",
        "model": {"source": str(tiny_bert)},
        "task": tiny_task,
        "device": "cpu",
        "output_dir": str(tmp_path / "study"),
        "base": [],
        "blocks": {
            "half": {"technique": "torch.half"},
            "prune": {"technique": "torch.magnitude-prune", "config": {"sparsity": 0.5}},
        },
        "variants": [{"blocks": ["half"]}, {"blocks": ["prune"]}],
        # A random tiny model: any accuracy will do, and the smallest variant is chosen.
        "search": {"objective": "size", "budget": {"max_drop_points": 100}},
        "measure": FAST_MEASURE | {"latency": False},  # the run's test covers latency and its spread
        "tracking": {"mlflow": {"uri": mlflow_server, "experiment": "studies", "tags": {"team": "search"}}},
    }
    console = io.StringIO()
    study = study_from_dict(data, base_dir=tmp_path)
    outcome = run_study(study, plugins=slimkit_plugins, hardware=probe(), show_progress=True, console=console)
    assert outcome.exit_code == 0
    results = load_results(tmp_path / "study")
    assert isinstance(results, StudyResults) and results.selection is not None
    assert results.selection.chosen == "half"
    line = said(console)
    assert f"in experiment 'studies' at {mlflow_server}" in line and "parent of 3 variant run(s)" in line

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("studies")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.run_id in line and parent.info.status == "FINISHED"
    assert parent.info.run_name == "tiny-study"
    tags = parent.data.tags
    assert tags["slimkit.kind"] == "study" and tags["team"] == "search"
    assert tags["slimkit.chosen"] == str(results.selection.chosen) and tags["slimkit.outcome"] == "done"
    assert results.hardware is not None and tags["hardware.arch"] == results.hardware.arch
    assert tags["library.torch"] == results.libraries["torch"] and tags["slimkit.threads"] == "1"
    assert parent.data.params["study"] == "tiny-study" and parent.data.params["measure.latency"] == "false"
    files = artifact_paths(client, parent.info.run_id)
    assert {"results.json", "report.md", "report.html", "study.json"} <= files
    assert {f"plots/{p.name}" for p in (tmp_path / "study").glob("*.png")} <= files
    copy = client.download_artifacts(parent.info.run_id, "results.json", str(tmp_path))
    assert json.loads(Path(copy).read_text()) == results.document()

    # One nested run per variant (the baseline is one), with its recipe and every figure of results.json.
    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert sorted(children) == sorted(v.name for v in results.variants) == ["baseline", "half", "prune"]
    by_label = {a.label: a for a in results.artifacts}
    for variant in results.variants:
        child = children[variant.name]
        assert child.info.status == "FINISHED" and child.data.tags["slimkit.kind"] == "variant"
        assert child.data.tags["slimkit.chosen"] == str(variant.name == results.selection.chosen).lower()
        expected = expected_metrics(by_label[variant.name])
        assert {"accuracy", "size_bytes", "size_bytes.vs_baseline.ratio", "accuracy.vs_baseline.delta_points"} <= set(
            expected
        )
        logged = {k: v for k, v in child.data.metrics.items() if not k.startswith("slimkit.")}
        assert logged == pytest.approx(expected)
        steps = [s.technique for s in variant.step_records]
        assert [child.data.params[f"step.{n}.technique"] for n in range(1, len(steps) + 1)] == steps
    assert children["half"].data.params["step.1.config.dtype"] == "bfloat16"
    # The parent carries the chosen variant's figures, so that studies compare in the runs table.
    parent_figures = {k: v for k, v in parent.data.metrics.items() if not k.startswith(("slimkit.", "search."))}
    assert parent_figures == pytest.approx(expected_metrics(by_label[str(results.selection.chosen)]))
    assert parent.data.metrics["search.built"] == 3


def test_a_run_is_one_mlflow_run_with_its_onnx_model(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_task: dict[str, Any], mlflow_server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    tracking = {"mlflow": {"uri": mlflow_server, "experiment": "runs", "run_name": "tiny-onnx", "log_model": True}}
    steps = [{"name": "export", "technique": "onnx.export"}]
    pipe = tiny_pipeline(tiny_bert, tiny_task, steps, measure=MEASURE, tracking=tracking)
    console = io.StringIO()
    result = run_pipeline(pipe, show_progress=True, console=console)
    assert result.exit_code == 0, [s.error for s in result.steps]
    results = load_results(result.run_dir)
    assert isinstance(results, RunResults)
    assert "MLflow: run " in console.getvalue() and "tracker 'mlflow' failed" not in console.getvalue()

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("runs")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id], "attributes.run_name = 'tiny-onnx'")
    assert run.info.status == "FINISHED" and run.info.run_id in console.getvalue()
    params, tags = run.data.params, run.data.tags
    assert (params["step.1.name"], params["step.1.technique"], params["step.1.stage"]) == (
        "export",
        "onnx.export",
        "export",
    )
    assert params["step.1.config.exporter"] == "torchscript" and params["step.1.plugin"].startswith("onnx")
    assert params["pipeline"] == "tiny" and params["baseline"] == "source"
    assert tags["slimkit.kind"] == "run" and tags["slimkit.output"] == "export" and tags["step.1.status"] == "done"
    assert tags["library.onnxruntime"] == results.libraries["onnxruntime"]
    # Every artifact's figures under its label, the output's also without one.
    expected: dict[str, float] = {}
    for artifact in results.artifacts:
        expected |= expected_metrics(artifact, prefix=artifact.label)
    expected |= expected_metrics(results.artifacts[-1])
    assert {"latency_ms.b1.s16", "latency_ms.b1.s16.spread.p90", "source/size_bytes"} <= set(expected)
    logged = {k: v for k, v in run.data.metrics.items() if not k.startswith(("slimkit.", "step."))}
    assert logged == pytest.approx(expected)
    assert run.data.metrics["step.1.seconds"] >= 0 and run.data.metrics["slimkit.seconds"] > 0
    assert {"results.json", "report.md", "report.html", "pipeline.json"} <= artifact_paths(client, run.info.run_id)
    # The output model, in MLflow's ONNX flavour.
    assert tags["slimkit.model"] == "model: export (onnx)"
    (model,) = client.search_logged_models([experiment.experiment_id])
    assert model.source_run_id == run.info.run_id and model.name == "model"
    # The logged model's own description (MLmodel) names its flavours. The URI goes through the
    # environment, which monkeypatch restores: mlflow.set_tracking_uri would leave it set for
    # every later test (and their subprocesses) in this process.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    import mlflow

    assert "onnx" in mlflow.models.get_model_info(f"models:/{model.model_id}").flavors


def test_nothing_configured_records_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    results = RunResults(pipeline="p")
    assert after_run(run_dir=tmp_path, results=results, tracking={}) is None
    assert after_run(run_dir=tmp_path, results=results, tracking={"wandb": {"project": "x"}}) is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    assert after_run(run_dir=tmp_path, results=results, tracking={"mlflow": {"enabled": False}}) is None
    settings = resolve_settings({})
    assert settings is not None and settings.uri == "http://127.0.0.1:1" and settings.experiment is None
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "from-env")
    settings = resolve_settings({"mlflow": {"uri": "sqlite:///x.db"}})
    assert settings is not None and (settings.uri, settings.experiment) == ("sqlite:///x.db", "from-env")


@pytest.mark.parametrize(
    ("table", "line"),
    [
        ({"uri": "http://x", "experimnt": "e"}, "tracking.mlflow.experimnt: unknown field (fix: the fields are uri,"),
        ({"uri": "http://x", "log_model": "often"}, "tracking.mlflow.log_model: Input should be a valid boolean"),
        ({"uri": ""}, "tracking.mlflow.uri: String should have at least 1 character (fix: write it as uri = "),
        ({"uri": "http://x", "tags": {"team": 3}}, "tracking.mlflow.tags.team: Input should be a valid string"),
        ({"experiment": "e"}, "tracking.mlflow.uri: no tracking server given, and MLFLOW_TRACKING_URI is not set"),
        ("http://x", "tracking.mlflow: expected a table, got str"),
    ],
)
def test_a_bad_table_is_one_line_naming_the_field(table: Any, line: str, tmp_path: Path) -> None:
    with pytest.raises(SlimkitError) as caught:
        after_run(run_dir=tmp_path, results=RunResults(pipeline="p"), tracking={"mlflow": table})
    assert str(caught.value).startswith(line) and "\n" not in str(caught.value)


def test_an_unreachable_server_is_a_warning_and_the_run_still_succeeds(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_task: dict[str, Any], nowhere: str
) -> None:
    uri = nowhere
    pipe = tiny_pipeline(tiny_bert, tiny_task, measure={"enabled": False}, tracking={"mlflow": {"uri": uri}})
    console = io.StringIO()
    result = run_pipeline(pipe, show_progress=True, console=console)
    assert result.exit_code == 0
    warning = said(console, "! tracker 'mlflow' failed")
    assert f"the MLflow tracking server at {uri} is not reachable" in warning
    assert load_results(result.run_dir).outcome == "done"
