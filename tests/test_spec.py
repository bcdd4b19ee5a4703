"""The pipeline spec: files, paths, one line per problem, and the Python builder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slimkit.errors import SpecError
from slimkit.spec import Pipeline, StepSpec, load_pipeline, pipeline_from_dict, pipeline_json_schema
from slimkit.techniques import Goal, Stage

TOML = """
name = "demo"
model = { source = "models/tiny", format = "toy" }
output_dir = "out/demo"
plugins = ["plugins/local.py"]
baseline = "tune"

[task]
data_files = { train = "data/train.csv" }

[[steps]]
name = "tune"
technique = "toy.finetune"
config = { factor = 3.0 }

[[steps]]
stage = "quantize"
goal = "speed"

[measure]
repeats = 5
"""

YAML = """
name: demo
model: {source: models/tiny, format: toy}
output_dir: out/demo
plugins: [plugins/local.py]
baseline: tune
task:
  data_files: {train: data/train.csv}
steps:
  - name: tune
    technique: toy.finetune
    config: {factor: 3.0}
  - stage: quantize
    goal: speed
measure:
  repeats: 5
"""

UNKNOWN_FIELD = "unknown field (check the spelling; `slimkit schema` lists the fields)"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def check_demo(pipeline: Pipeline, folder: Path) -> None:
    assert pipeline.name == "demo"
    assert pipeline.model.source == "models/tiny"
    assert pipeline.model.format == "toy"
    assert [(s.name, s.technique, s.stage, s.goal, s.config) for s in pipeline.steps] == [
        ("tune", "toy.finetune", None, None, {"factor": 3.0}),
        (None, None, Stage.QUANTIZE, Goal.SPEED, {}),
    ]
    assert [s.label for s in pipeline.steps] == ["tune", "quantize"]
    assert pipeline.baseline == "tune"
    assert pipeline.measure.repeats == 5
    assert pipeline.measure.rounds == 3  # defaults stay
    # Relative paths resolve against the file's folder, not the current one.
    assert pipeline.base_dir == folder.resolve()
    assert pipeline.run_dir == folder.resolve() / "out" / "demo"
    assert pipeline.resolve_path(pipeline.model.source) == folder.resolve() / "models" / "tiny"
    assert pipeline.resolve_path(pipeline.plugins[0]) == folder.resolve() / "plugins" / "local.py"
    assert pipeline.task is not None
    assert pipeline.resolve_path(pipeline.task.data_files["train"]) == folder.resolve() / "data" / "train.csv"
    assert pipeline.resolve_path("/abs/file") == Path("/abs/file")


@pytest.mark.parametrize(("filename", "text"), [("p.toml", TOML), ("p.yaml", YAML), ("p.yml", YAML)])
def test_files_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, filename: str, text: str) -> None:
    folder = tmp_path / "project"
    write(folder, filename, text)
    monkeypatch.chdir(tmp_path)  # elsewhere: paths must still resolve against the file's folder
    check_demo(load_pipeline(Path("project") / filename), folder)


def test_json_file_loads(tmp_path: Path) -> None:
    import tomllib

    path = write(tmp_path, "p.json", json.dumps(tomllib.loads(TOML)))
    check_demo(load_pipeline(path), tmp_path)


def test_default_run_dir_is_under_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    pipeline = Pipeline(name="x", model="toy:1")
    assert pipeline.run_dir == tmp_path / "runs" / "x"


def test_model_shorthand() -> None:
    pipeline = Pipeline.model_validate({"model": "some/hub-id"})
    assert pipeline.model.source == "some/hub-id"
    assert pipeline.model.format is None
    assert pipeline.name == "pipeline"


def problems(tmp_path: Path, text: str, name: str = "p.toml") -> list[str]:
    path = write(tmp_path, name, text)
    with pytest.raises(SpecError) as info:
        load_pipeline(path)
    assert info.value.exit_code == 2
    return info.value.lines()


def test_unknown_field_in_a_step(tmp_path: Path) -> None:
    text = """
model = "toy:1"
[[steps]]
technique = "toy.prune"
[[steps]]
name = "round it"
technique = "toy.round"
confg = { decimals = 2 }
"""
    assert problems(tmp_path, text) == [f"{tmp_path / 'p.toml'}: step 2 (round it): confg: {UNKNOWN_FIELD}"]


def test_step_without_technique_or_stage(tmp_path: Path) -> None:
    text = """
model = "toy:1"
[[steps]]
technique = "toy.prune"
[[steps]]
goal = "speed"
"""
    assert problems(tmp_path, text) == [
        f"{tmp_path / 'p.toml'}: step 2: a step needs 'technique' (e.g. 'onnx.export') or 'stage' (e.g. 'quantize')"
    ]


def test_duplicate_step_names(tmp_path: Path) -> None:
    text = """
model = "toy:1"
[[steps]]
technique = "toy.prune"
[[steps]]
technique = "toy.round"
[[steps]]
technique = "toy.prune"
"""
    assert problems(tmp_path, text) == [
        f"{tmp_path / 'p.toml'}: step 3 (toy.prune): name: step 1 has the same name; give each step a unique 'name'"
    ]


def test_bad_baseline(tmp_path: Path) -> None:
    text = """
model = "toy:1"
baseline = "tuned"
[[steps]]
technique = "toy.prune"
"""
    assert problems(tmp_path, text) == [
        f"{tmp_path / 'p.toml'}: baseline: 'tuned' is not a step name; use 'source' or one of ['toy.prune']"
    ]


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    text = """
name = "bad name!"
model = { source = "toy:1", revison = "main" }
device = "tpu"
[[steps]]
technique = "toy.prune"
colour = "red"
[[steps]]
stage = "shrink"
[measure]
repeats = 0
"""
    path = tmp_path / "p.toml"
    assert problems(tmp_path, text) == [
        f"{path}: name: String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.-]*$'",
        f"{path}: model.revison: {UNKNOWN_FIELD}",
        f"{path}: step 1 (toy.prune): colour: {UNKNOWN_FIELD}",
        f"{path}: step 2 (shrink): stage: Input should be 'train', 'prune', 'distill', 'quantize' or 'export'",
        f"{path}: measure.repeats: Input should be greater than or equal to 1",
        f"{path}: device: Input should be 'auto', 'cpu', 'cuda' or 'mps'",
    ]


def test_yaml_problems_are_located_the_same_way(tmp_path: Path) -> None:
    text = "model: toy:1\nsteps:\n  - technique: toy.prune\n    conf: {}\n"
    assert problems(tmp_path, text, "p.yaml") == [f"{tmp_path / 'p.yaml'}: step 1 (toy.prune): conf: {UNKNOWN_FIELD}"]


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_pipeline(tmp_path / "absent.toml")
    assert info.value.lines() == [f"no such file: {tmp_path / 'absent.toml'}"]

    assert problems(tmp_path, "model: x\n", "p.txt") == [
        f"{tmp_path / 'p.txt'}: unknown file type '.txt'; use .toml, .yaml or .json"
    ]
    assert problems(tmp_path, "- a\n- b\n", "list.yaml") == [
        f"{tmp_path / 'list.yaml'}: the file must hold a table/mapping at the top level"
    ]
    assert problems(tmp_path, "", "empty.yaml") == [
        f"{tmp_path / 'empty.yaml'}: the file must hold a table/mapping at the top level"
    ]
    assert problems(tmp_path, 'model = "toy:1"\nname = \n', "broken.toml") == [
        f"{tmp_path / 'broken.toml'}: cannot parse: Invalid value (at line 2, column 8)"
    ]
    (line,) = problems(tmp_path, "model: [unclosed\n", "broken.yaml")
    assert line.startswith(f"{tmp_path / 'broken.yaml'}: cannot parse: ")
    assert "\n" not in line


def test_spec_error_without_a_source() -> None:
    with pytest.raises(SpecError) as info:
        pipeline_from_dict({"model": "toy:1", "steps": [{"technique": "a.b", "x": 1}]})
    assert info.value.lines() == [f"step 1 (a.b): x: {UNKNOWN_FIELD}"]
    assert str(info.value) == f"step 1 (a.b): x: {UNKNOWN_FIELD}"


def test_builder_returns_new_pipelines_and_never_mutates(tmp_path: Path) -> None:
    base = pipeline_from_dict({"name": "b", "model": "toy:1", "device": "cpu"}, base_dir=tmp_path)
    pruned = base.prune("toy.prune", threshold=0.3)
    full = pruned.quantize(goal="speed").train("toy.finetune", name="tune", factor=2).export()
    assert base.steps == []
    assert [s.label for s in pruned.steps] == ["toy.prune"]
    assert full is not pruned and pruned is not base
    assert [(s.technique, s.stage, s.name, s.goal, s.config) for s in full.steps] == [
        ("toy.prune", None, None, None, {"threshold": 0.3}),
        (None, Stage.QUANTIZE, None, Goal.SPEED, {}),
        ("toy.finetune", None, "tune", None, {"factor": 2}),
        (None, Stage.EXPORT, None, None, {}),
    ]
    assert full.device == "cpu"
    assert full.base_dir == tmp_path
    assert full.model_dump(mode="json")["steps"][0] == {
        "name": None,
        "technique": "toy.prune",
        "stage": None,
        "goal": None,
        "config": {"threshold": 0.3},
    }
    # Every stage has a builder method of its name.
    for stage in Stage:
        built = getattr(base, stage.value)()
        assert built.steps == [StepSpec(stage=stage)]
    assert base.step("toy.round", stage="quantize").steps == [StepSpec(technique="toy.round", stage=Stage.QUANTIZE)]


def test_builder_errors_are_spec_errors() -> None:
    base = Pipeline(model="toy:1")
    with pytest.raises(SpecError) as info:
        base.prune("toy.prune").prune("toy.prune")
    assert info.value.problems == ["step 2 (toy.prune): name: step 1 has the same name; give each step a unique 'name'"]
    with pytest.raises(SpecError) as info:
        base.step(stage="shrink", name="s")
    assert info.value.problems == [
        "step 1 (s): stage: Input should be 'train', 'prune', 'distill', 'quantize' or 'export'"
    ]
    with pytest.raises(SpecError) as info:
        base.step()
    assert info.value.problems == ["step 1: a step needs 'technique' (e.g. 'onnx.export') or 'stage' (e.g. 'quantize')"]


def test_model_copy_keeps_the_base_dir(tmp_path: Path) -> None:
    pipeline = pipeline_from_dict({"model": "toy:1"}, base_dir=tmp_path)
    moved = pipeline.model_copy(update={"output_dir": Path("elsewhere")})
    assert moved.run_dir == tmp_path / "elsewhere"


def test_schema_describes_pipeline_files() -> None:
    schema = pipeline_json_schema()
    assert schema["title"] == "Pipeline"
    assert {"name", "model", "task", "steps", "order", "baseline", "measure", "device", "plugins"} <= set(
        schema["properties"]
    )
    assert schema["properties"]["steps"]["items"] == {"$ref": "#/$defs/StepSpec"}
    assert set(schema["$defs"]["StepSpec"]["properties"]) == {"name", "technique", "stage", "goal", "config"}
    # A file may extend a base that names the model, so the file itself requires nothing.
    assert "required" not in schema and "extends" in schema["properties"]
    json.dumps(schema)  # serialisable as it is


def test_a_pipeline_built_in_python_gives_one_line_per_problem() -> None:
    with pytest.raises(SpecError) as info:
        Pipeline(name="bad name", model="m", steps=[{"technique": "toy.round", "confg": {}}])
    assert info.value.problems == [
        "name: String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.-]*$'",
        "step 1 (toy.round): confg: unknown field (check the spelling; `slimkit schema` lists the fields)",
    ]


# -- Step keys stay put when TaskSpec grows a field ---------------------------------------------

# examples/minilm-semeval-quick.toml's task as step keys hashed it before `quoting`, `encoding`
# and `text_pair_column` existed (model_dump(mode="json") of the TaskSpec of that time).
QUICK_TASK_AS_KEYED = {
    "preset": "semeval2018-ec", "problem": None, "dataset": None, "dataset_config": None, "data_files": {},
    "train_split": "train", "eval_split": "validation", "text_column": None, "label_column": None,
    "label_columns": None, "label_format": None, "label_separator": ",", "labels": None, "labels_file": None,
    "filter": "none", "has_header": None, "validation_fraction": 0.1, "seed": 0, "max_train_examples": 1500,
    "max_eval_examples": 300, "threshold": 0.5, "tune_threshold": False,
}  # fmt: skip


def test_new_task_fields_at_their_default_leave_the_key_dump_as_it_was() -> None:
    examples = Path(__file__).resolve().parents[1] / "examples"
    task = load_pipeline(examples / "minilm-semeval-quick.toml").task
    assert task is not None
    assert task.key_dump() == QUICK_TASK_AS_KEYED
    for change in ({"encoding": "cp1252"}, {"quoting": "none"}, {"text_pair_column": "hypothesis"}):
        assert task.model_copy(update=change).key_dump() == QUICK_TASK_AS_KEYED | change


def test_a_csv_read_with_the_new_default_quoting_gets_a_new_key() -> None:
    from slimkit.spec import TaskSpec

    # CSV quotes were text before; they are standard quoting now, so the data may read differently.
    assert TaskSpec(data_files={"train": "t.CSV"}).key_dump()["quoting"] == "standard"
    assert "quoting" not in TaskSpec(data_files={"train": "t.tsv"}).key_dump()
    assert TaskSpec(data_files={"train": "t.csv"}, quoting="none").key_dump()["quoting"] == "none"
