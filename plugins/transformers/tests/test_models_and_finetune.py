"""Sources, fine-tuning and measurement on tiny BERT and Llama models (random weights)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import slimkit
from slimkit import Technique
from slimkit.spec import Pipeline, pipeline_from_dict
from slimkit_transformers.models import load_classifier, resolve_source


def _pipeline(model_dir: Path, task: dict[str, Any], tmp_path: Path) -> Pipeline:
    return pipeline_from_dict({"name": "t", "model": str(model_dir), "task": task}, base_dir=tmp_path)


def _snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("family", ["tiny_bert", "tiny_llama"])
def test_source_becomes_a_classifier_folder(
    family: str, request: pytest.FixtureRequest, tiny_task: dict[str, Any], tmp_path: Path
) -> None:
    from slimkit_transformers.tasks import load_task

    model_dir: Path = request.getfixturevalue(family)
    before = _snapshot(model_dir)
    pipeline = _pipeline(model_dir, tiny_task, tmp_path)
    task = load_task(pipeline.task, pipeline.resolve_path)  # type: ignore[arg-type]
    artifact = resolve_source(pipeline.model, pipeline, tmp_path / "cache", task)
    assert artifact is not None and artifact.format == "transformers"
    assert artifact.metadata["head"] == "initialised"
    assert artifact.metadata["decoder"] is (family == "tiny_llama")
    again = resolve_source(pipeline.model, pipeline, tmp_path / "cache", task)
    assert again is not None and again.key == artifact.key  # converted once, then reused
    config = json.loads((artifact.path / "config.json").read_text())
    assert config["id2label"] == {"0": "pos", "1": "neg"}
    model, tokenizer = load_classifier(artifact.path)
    assert tokenizer.pad_token is not None and model.config.pad_token_id == tokenizer.pad_token_id
    batch = tokenizer(["i love this", "i hate this so much today"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**batch).logits
    assert logits.shape == (2, 2)
    assert _snapshot(model_dir) == before  # the source is never modified


def test_a_damaged_cached_source_is_built_again(tiny_bert: Path, tiny_task: dict[str, Any], tmp_path: Path) -> None:
    from slimkit_transformers.tasks import load_task

    pipeline = _pipeline(tiny_bert, tiny_task, tmp_path)
    task = load_task(pipeline.task, pipeline.resolve_path)  # type: ignore[arg-type]
    artifact = resolve_source(pipeline.model, pipeline, tmp_path / "cache", task)
    assert artifact is not None and "warnings" not in artifact.metadata
    weights = artifact.path / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])  # a disk that filled up, a copy cut short
    again = resolve_source(pipeline.model, pipeline, tmp_path / "cache", task)
    assert again is not None and weights.read_bytes() == good
    assert again.metadata["warnings"] == [
        f"cached folder {artifact.path.name} was damaged (model.safetensors has {len(good) // 2} bytes, "
        f"not {len(good)}); built again"
    ]


def test_head_initialisation_follows_the_seed(tiny_bert: Path, tiny_task: dict[str, Any], tmp_path: Path) -> None:
    from slimkit_transformers.tasks import load_task

    heads = []
    for seed in (0, 0, 1):
        pipeline = pipeline_from_dict({"model": str(tiny_bert), "task": tiny_task, "seed": seed}, base_dir=tmp_path)
        task = load_task(pipeline.task, pipeline.resolve_path)  # type: ignore[arg-type]
        artifact = resolve_source(pipeline.model, pipeline, tmp_path / f"cache{len(heads)}", task)
        assert artifact is not None
        heads.append(load_classifier(artifact.path)[0].classifier.weight.detach().clone())
    assert torch.equal(heads[0], heads[1]) and not torch.equal(heads[0], heads[2])


@pytest.mark.parametrize("family", ["tiny_bert", "tiny_llama"])
def test_finetune_then_measure(
    family: str,
    request: pytest.FixtureRequest,
    plugins: Any,
    run_pipeline: Any,
    tiny_pipeline: Any,
    tiny_task: dict[str, Any],
) -> None:
    model_dir: Path = request.getfixturevalue(family)
    steps = [{"name": "finetune", "technique": "transformers.finetune",
              "config": {"epochs": 2, "batch_size": 16, "learning_rate": 1e-3, "max_length": 16}}]  # fmt: skip
    result = run_pipeline(tiny_pipeline(model_dir, tiny_task, steps, baseline="finetune"))
    assert result.exit_code == 0, [s.error for s in result.steps]
    finetuned = result.steps[0].artifact
    assert finetuned.metadata["train_seconds"] > 0 and finetuned.metadata["optimizer_steps"] > 0
    data = json.loads(result.results_path.read_text())
    names = {m["name"] for m in data["artifacts"][1]["metrics"]}
    expected = {"accuracy", "macro_f1", "agreement", "params", "nonzero_params", "size_bytes", "peak_rss_bytes",
                "latency_ms.b1.s16", "latency_ms.b4.s16", "latency_ms.b1.dyn", "latency_ms.b4.dyn",
                "throughput.b1.s16"}  # fmt: skip
    assert expected <= names
    latency = next(m for m in data["artifacts"][1]["metrics"] if m["name"] == "latency_ms.b1.s16")
    assert latency["details"]["timed_calls"] == 6 and latency["details"]["threads"] == 1
    # One median per round's block, in round order: what per-round ratios pair with the baseline's.
    blocks = latency["details"]["block_medians_ms"]
    assert len(blocks) == latency["details"]["rounds"] and all(b > 0 for b in blocks)
    assert {"p90", "p99"} <= set(latency["spread"])
    rss = next(m for m in data["artifacts"][1]["metrics"] if m["name"] == "peak_rss_bytes")
    assert rss["value"] > rss["details"]["rss_after_imports_bytes"] > 0  # probed in a fresh process
    agreement = next(m for m in data["artifacts"][1]["metrics"] if m["name"] == "agreement")
    assert agreement["value"] == 1.0  # the baseline agrees with itself
    assert data["baseline"] == "finetune"
    report = (result.run_dir / "report.md").read_text()
    for plot in ("accuracy-vs-latency.png", "accuracy-vs-size.png"):
        assert (result.run_dir / plot).stat().st_size > 1000
        assert f"]({plot})" in report


def test_an_already_fine_tuned_classifier_is_the_baseline_as_it_is(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_task: dict[str, Any]
) -> None:
    """A classifier fine-tuned elsewhere (here: by a first run) is a source like any other: no
    finetune step, its trained head kept, and it measures as it did when it was trained."""
    steps = [{"name": "finetune", "technique": "transformers.finetune",
              "config": {"epochs": 2, "batch_size": 16, "learning_rate": 1e-3, "max_length": 16}}]  # fmt: skip
    first = run_pipeline(tiny_pipeline(tiny_bert, tiny_task, steps, baseline="finetune", name="train"))
    assert first.exit_code == 0
    trained = first.steps[0].artifact.path
    again = run_pipeline(tiny_pipeline(trained, tiny_task, name="as-is"))
    assert again.exit_code == 0 and again.steps == []
    source = json.loads(again.results_path.read_text())["artifacts"][0]
    assert source["label"] == "source" and source["metadata"]["head"] == "kept"
    assert not source["metadata"].get("warnings")
    assert not any("newly initialised" in w for w in json.loads(again.results_path.read_text())["warnings"])
    untrained = run_pipeline(tiny_pipeline(tiny_bert, tiny_task, name="untrained"))
    assert any(
        w.startswith("model: its classification head is newly initialised (random)")
        for w in json.loads(untrained.results_path.read_text())["warnings"]
    )

    def accuracy(result: Any, label: str) -> float:
        found = next(a for a in json.loads(result.results_path.read_text())["artifacts"] if a["label"] == label)
        return float(next(m["value"] for m in found["metrics"] if m["name"] == "accuracy"))

    assert accuracy(again, "source") == accuracy(first, "finetune")


def test_partial_finetune_trains_only_head_and_last_layers(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_task: dict[str, Any]
) -> None:
    steps = [{"name": "head-only", "technique": "transformers.finetune",
              "config": {"epochs": 1, "batch_size": 16, "learning_rate": 1e-2, "train_layers": 0}}]  # fmt: skip
    result = run_pipeline(tiny_pipeline(tiny_bert, tiny_task, steps, measure={"enabled": False}))
    assert result.exit_code == 0
    before, _ = load_classifier(result.source.path)
    after, _ = load_classifier(result.steps[0].artifact.path)
    changed = {
        n
        for (n, a), (_, b) in zip(before.named_parameters(), after.named_parameters(), strict=True)
        if not torch.equal(a, b)
    }
    assert changed and all(n.startswith(("classifier", "bert.pooler")) for n in changed)
    assert result.steps[0].artifact.metadata["trainable_params"] < sum(p.numel() for p in before.parameters())


def test_finetune_is_seeded(
    plugins: Any,
    run_pipeline: Any,
    tiny_pipeline: Any,
    tiny_bert: Path,
    tiny_multilabel_task: dict[str, Any],
    tmp_path: Path,
) -> None:
    weights = []
    for i in range(2):
        steps = [{"name": "finetune", "technique": "transformers.finetune", "config": {"epochs": 1, "batch_size": 16}}]
        pipe = tiny_pipeline(tiny_bert, tiny_multilabel_task, steps, name=f"run{i}", measure={"enabled": False},
                             output_dir=str(tmp_path / f"run{i}"))  # fmt: skip
        result = run_pipeline(pipe)
        assert result.exit_code == 0
        weights.append(load_classifier(result.steps[0].artifact.path)[0].classifier.weight.detach())
    assert torch.equal(weights[0], weights[1])


def test_finetune_without_task_is_refused_before_any_compute(plugins: Any, run_pipeline: Any, tiny_bert: Path) -> None:
    from slimkit.errors import PlanRefused

    pipe = {"name": "no-task", "model": str(tiny_bert), "steps": [{"technique": "transformers.finetune"}],
            "measure": {"enabled": False}}  # fmt: skip
    with pytest.raises(PlanRefused, match=r"transformers\.finetune reads the pipeline's task, and this pipeline"):
        run_pipeline(pipe)


def test_finetune_is_a_declared_function(plugins: Any, slimkit_plugins: Any) -> None:
    from slimkit_transformers.finetune import finetune

    technique = slimkit_plugins.techniques.get("transformers.finetune")
    assert technique.load_implementation() is finetune and technique.needs_task
    assert "train" not in slimkit_plugins.records["transformers"].hooks


def test_measuring_without_a_task_keeps_sizes_and_says_why(plugins: Any, run_pipeline: Any, tiny_bert: Path) -> None:
    result = run_pipeline({"name": "sizes", "model": str(tiny_bert), "measure": {"latency": False}})
    assert result.exit_code == 0
    names = {m.name: m for m in result.metrics[result.source.key]}
    assert {"params", "size_bytes", "measurement_scope"} <= set(names)
    assert "no task" in names["measurement_scope"].details["warning"]


# -- A model folder whose config.json is broken: one line naming the file -----------------------

RESTORE = "(fix: restore the config.json that save_pretrained wrote with the weights)"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1) "
                      f"{RESTORE}"),
        ("[1, 2]", f"holds a JSON list, not an object {RESTORE}"),
        ('{"hidden_size": 8}', "no 'model_type', so transformers cannot tell the architecture "
                               f'(fix: add it (e.g. "model_type": "bert"), or {RESTORE[6:]}'),
    ],
)  # fmt: skip
def test_a_broken_config_json_is_one_line(tmp_path: Path, content: str, problem: str) -> None:
    from slimkit.errors import SlimkitError
    from slimkit_transformers.models import read_config_json

    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(SlimkitError) as caught:
        read_config_json(path)
    assert str(caught.value) == f"model.source: {path}: {problem}"


def _broken_copy(tiny_bert: Path, folder: Path, config: str) -> Path:
    import shutil

    shutil.copytree(tiny_bert, folder)
    (folder / "config.json").write_text(config)
    return folder


def test_run_with_a_broken_config_json_is_refused_naming_the_file(
    tiny_bert: Path, tiny_task: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The planner reads every local source's config.json (its family decides which techniques fit),
    so a broken one is found before any compute, even without steps: exit 3, one line."""
    from click.testing import CliRunner

    from slimkit.cli import cli

    model = _broken_copy(tiny_bert, tmp_path / "model", "garbage")
    pipeline = tmp_path / "p.json"
    pipeline.write_text(
        json.dumps({"model": str(model), "task": tiny_task, "device": "cpu", "measure": {"enabled": False}})
    )
    monkeypatch.setenv("SLIMKIT_LOAD_PLUGINS", "transformers")
    result = CliRunner().invoke(cli, ["run", str(pipeline), "-q"], prog_name="slimkit")
    assert result.exit_code == 3
    assert result.stderr == (
        "Error: the pipeline cannot run: 1 problem(s)\n"
        f"problem: model.source: {model / 'config.json'}: not valid JSON: Expecting value: line 1 column 1 (char 0) "
        f"{RESTORE}\n"
    )


def test_an_unknown_model_type_is_one_line(tiny_bert: Path, tiny_task: dict[str, Any], tmp_path: Path) -> None:
    from slimkit.errors import SlimkitError

    config = json.loads((tiny_bert / "config.json").read_text()) | {"model_type": "no-such-architecture"}
    model = _broken_copy(tiny_bert, tmp_path / "model", json.dumps(config))
    pipeline = _pipeline(model, tiny_task, tmp_path)
    with pytest.raises(SlimkitError) as caught:
        resolve_source(pipeline.model, pipeline, tmp_path / "cache", None)
    line = str(caught.value)
    assert line.startswith(f"model.source: {model / 'config.json'}: transformers cannot read it: ValueError: ")
    assert line.endswith(RESTORE) and "\n" not in line


class _ShapeCheck:
    """A technique that checks the source's config at plan time, as slimkit-gptq's does."""

    @slimkit.hookimpl
    def register_techniques(self, register):  # type: ignore[no-untyped-def]
        register(Technique(name="shape.check", stage="quantize", summary="Checks shapes.", consumes=["transformers"],
                           check_model=lambda config, model: None))  # fmt: skip


def test_plan_reports_a_broken_config_json_naming_the_file(
    tiny_bert: Path, tmp_path: Path, plugins: Any, register_plugin: Any, slimkit_plugins: Any
) -> None:
    from slimkit.planner import plan_pipeline

    register_plugin(_ShapeCheck(), name="shape")
    model = _broken_copy(tiny_bert, tmp_path / "model", '{"hidden_size": 8}')
    pipeline = pipeline_from_dict({"model": str(model), "device": "cpu", "steps": [{"technique": "shape.check"}]})
    plan = plan_pipeline(pipeline, plugins=slimkit_plugins)
    assert plan.problems == [
        f"model.source: {model / 'config.json'}: no 'model_type', so transformers cannot tell the architecture "
        f'(fix: add it (e.g. "model_type": "bert"), or {RESTORE[6:]}'
    ]
