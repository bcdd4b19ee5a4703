"""``extends``: merging rules, chains, study <- pipeline, one-line errors, and the examples that use it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from slimkit.cli import cli
from slimkit.errors import SpecError
from slimkit.includes import merge, merge_steps
from slimkit.spec import load_pipeline, pipeline_from_dict, read_spec_file
from slimkit.study import load_study, study_from_dict

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"

BASE = """
name = "base"
model = "toy:1"
baseline = "tune"
store_dir = "store"
plugins = ["local.py"]

[task]
data_files = { train = "data/train.csv" }
labels = ["a", "b"]

[[steps]]
name = "tune"
technique = "toy.finetune"
config = { factor = 3.0 }

[measure]
batch_sizes = [1, 32]
repeats = 5
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path, *, kind: str = "pipeline") -> str:
    with pytest.raises(SpecError) as info:
        load_study(path) if kind == "study" else load_pipeline(path)
    [line] = info.value.lines()  # one line, never a list of follow-on problems
    return line


# -- Merging ------------------------------------------------------------------------------------


def test_tables_merge_and_other_values_replace() -> None:
    base = {"name": "b", "task": {"preset": "p", "labels": ["x", "y"]}, "measure": {"batch_sizes": [1, 32]}}
    own = {"name": "o", "task": {"labels": ["z"], "seed": 1}, "measure": {"batch_sizes": [8]}}
    assert merge(base, own) == {
        "name": "o",
        "task": {"preset": "p", "labels": ["z"], "seed": 1},  # arrays replace, never concatenate
        "measure": {"batch_sizes": [8]},
    }
    assert base["task"] == {"preset": "p", "labels": ["x", "y"]}  # inputs are not changed


def test_steps_join_and_a_step_of_the_same_label_replaces_it_in_place() -> None:
    base = [{"name": "tune", "config": {"a": 1}}, {"technique": "toy.round"}, {"stage": "export"}]
    own = [{"name": "prune"}, {"technique": "toy.round", "config": {"d": 2}}, {"name": "tune"}]
    assert merge_steps(base, own) == [
        {"name": "tune"},  # replaced whole: no option of the base's step survives
        {"technique": "toy.round", "config": {"d": 2}},
        {"stage": "export"},
        {"name": "prune"},
    ]
    # Two own steps of one label: the second is appended, so validation reports the duplicate.
    assert merge_steps([{"name": "a"}], [{"name": "a", "x": 1}, {"name": "a", "x": 2}]) == [
        {"name": "a", "x": 1},
        {"name": "a", "x": 2},
    ]
    assert merge_steps([{"name": "a"}], "oops") == "oops"  # not a list: validation names the field


def test_nested_step_lists_are_not_joined() -> None:
    # Only the top-level step lists join; a study block redefined is replaced whole.
    base = {"blocks": {"q": [{"name": "a"}, {"name": "b"}], "r": [{"name": "r"}]}}
    own = {"blocks": {"q": [{"name": "c"}]}}
    assert merge(base, own) == {"blocks": {"q": [{"name": "c"}], "r": [{"name": "r"}]}}


def test_a_pipeline_extends_a_file_beside_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "project", "base.toml", BASE)
    write(
        tmp_path / "project",
        "p.toml",
        'extends = "base.toml"\nname = "p"\n[task]\nlabels = ["c"]\n'
        '[[steps]]\ntechnique = "toy.round"\n[measure]\nrepeats = 7\n',
    )
    monkeypatch.chdir(tmp_path)  # elsewhere: relative paths of the base resolve against its folder
    pipeline = load_pipeline(Path("project/p.toml"))
    folder = (tmp_path / "project").resolve()
    assert pipeline.name == "p" and pipeline.baseline == "tune"
    assert [s.label for s in pipeline.steps] == ["tune", "toy.round"]
    assert pipeline.steps[0].config == {"factor": 3.0}
    assert pipeline.measure.batch_sizes == [1, 32] and pipeline.measure.repeats == 7
    assert pipeline.task is not None and pipeline.task.labels == ["c"]
    assert pipeline.steps_dir == folder / "store"
    assert pipeline.resolve_path(pipeline.task.data_files["train"]) == folder / "data" / "train.csv"
    assert pipeline.resolve_path(pipeline.plugins[0]) == folder / "local.py"
    assert "extends" not in read_spec_file(Path("project/p.toml"))


def test_chains_lists_and_formats(tmp_path: Path) -> None:
    write(tmp_path, "c.json", json.dumps({"model": "toy:1", "seed": 1, "measure": {"repeats": 2, "warmup": 1}}))
    write(tmp_path, "b.yaml", "extends: c.json\nseed: 2\nmeasure: {repeats: 3}\nsteps: [{name: one, technique: t.a}]\n")
    write(tmp_path, "d.toml", 'device = "cpu"\nseed = 4\n')
    write(tmp_path, "a.toml", 'extends = ["b.yaml", "d.toml"]\n[[steps]]\nname = "two"\ntechnique = "t.b"\n')
    data = read_spec_file(tmp_path / "a.toml")
    assert data == {
        "model": "toy:1",
        "seed": 4,  # later files in the list win over earlier ones, the file itself over all
        "measure": {"repeats": 3, "warmup": 1},
        "steps": [{"name": "one", "technique": "t.a"}, {"name": "two", "technique": "t.b"}],
        "device": "cpu",
    }
    # A diamond (two bases that extend one file) is no cycle: its steps replace themselves.
    write(tmp_path, "e.toml", 'extends = "c.json"\n[[steps]]\nname = "one"\ntechnique = "t.a"\n')
    write(tmp_path, "f.toml", 'extends = "c.json"\n[[steps]]\nname = "one"\ntechnique = "t.a"\n')
    write(tmp_path, "g.toml", 'extends = ["e.toml", "f.toml"]\n')
    assert [s.label for s in load_pipeline(tmp_path / "g.toml").steps] == ["one"]


# -- A study extends a pipeline -----------------------------------------------------------------

STUDY = 'extends = "base.toml"\nname = "s"\n[blocks.r]\ntechnique = "toy.round"\n[[variants]]\nblocks = ["r"]\n'


def test_a_study_takes_a_pipelines_steps_as_base_steps(tmp_path: Path) -> None:
    write(tmp_path, "base.toml", BASE)
    study = load_study(write(tmp_path, "s.toml", STUDY + '[[base]]\nname = "more"\ntechnique = "toy.more"\n'))
    assert study.name == "s" and study.model.source == "toy:1"
    assert [s.label for s in study.base] == ["tune", "more"]
    assert study.measure.repeats == 5 and study.steps_dir == tmp_path.resolve() / "store"


def test_a_study_refuses_a_pipeline_whose_baseline_is_not_its_last_step(tmp_path: Path) -> None:
    write(tmp_path, "base.toml", BASE + '[[steps]]\nname = "prune"\ntechnique = "toy.prune"\n')
    line = error_of(write(tmp_path, "s.toml", STUDY), kind="study")
    assert line.startswith(f"{tmp_path / 's.toml'}: extends: base.toml is a pipeline whose baseline 'tune'")
    assert "fix: " in line


def test_a_pipeline_refuses_to_extend_a_study(tmp_path: Path) -> None:
    write(tmp_path, "base.toml", BASE)
    write(tmp_path, "s.toml", STUDY)
    line = error_of(write(tmp_path, "p.toml", 'extends = "s.toml"\n'))
    assert line.startswith(f"{tmp_path / 'p.toml'}: extends: s.toml is a study file (it has 'blocks')")


# -- Errors: one line, naming the file at fault and the fix ------------------------------------


def test_a_missing_base_is_named_with_the_file_that_names_it(tmp_path: Path) -> None:
    write(tmp_path, "b.toml", 'extends = "gone.toml"\n')
    line = error_of(write(tmp_path, "a.toml", 'extends = "b.toml"\n'))
    fix = f"(fix: name a file in {tmp_path.resolve()}, the folder of this file)"
    assert line == f"{tmp_path / 'b.toml'}: extends: no such file: 'gone.toml' {fix}"


def test_a_cycle_is_refused_naming_the_files(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", 'extends = "b.toml"\n')
    write(tmp_path, "b.toml", 'extends = "c.yaml"\n')
    write(tmp_path, "c.yaml", "extends: a.toml\n")
    line = error_of(tmp_path / "a.toml")
    assert line.startswith(f"{tmp_path / 'c.yaml'}: extends: the files extend each other in a cycle: ")
    assert "a.toml -> b.toml -> c.yaml -> a.toml (fix: " in line
    assert "self.toml -> self.toml" in error_of(write(tmp_path, "self.toml", 'extends = "self.toml"\n'))


def test_a_base_in_another_folder_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "shared", "base.toml", BASE)
    line = error_of(write(tmp_path / "project", "p.toml", 'extends = "../shared/base.toml"\n'))
    where = tmp_path / "project" / "p.toml"
    assert line.startswith(f"{where}: extends: '../shared/base.toml' is not in this file's folder")
    # The same folder named another way is the same folder.
    assert load_pipeline(write(tmp_path / "shared", "p.toml", f'extends = "{tmp_path / "shared" / "base.toml"}"\n'))


@pytest.mark.parametrize("value", ["1", "true", '""', '["base.toml", 2]', "{ file = 'base.toml' }"])
def test_an_extends_that_is_not_file_names_is_one_line(tmp_path: Path, value: str) -> None:
    line = error_of(write(tmp_path, "p.toml", f"extends = {value}\n"))
    assert line.startswith(f"{tmp_path / 'p.toml'}: extends: ") and "is not a file name (fix: " in line


def test_a_broken_base_is_named(tmp_path: Path) -> None:
    (tmp_path / "latin.toml").write_bytes('name = "caf\u00e9"\n'.encode("latin-1"))
    line = error_of(write(tmp_path, "p.toml", 'extends = "latin.toml"\n'))
    assert line == f"{tmp_path / 'latin.toml'}: line 1: byte 0xe9 is not UTF-8 text (fix: save the file as UTF-8)"
    write(tmp_path, "bad.toml", "model = \n")
    line = error_of(write(tmp_path, "q.toml", 'extends = "bad.toml"\n'))
    assert line.startswith(f"{tmp_path / 'bad.toml'}: cannot parse")
    write(tmp_path, "list.yaml", "- a\n")
    line = error_of(write(tmp_path, "r.toml", 'extends = "list.yaml"\n'))
    assert line == f"{tmp_path / 'list.yaml'}: the file must hold a table/mapping at the top level"
    assert "no such file: 'x\\x00.toml'" in error_of(write(tmp_path, "s.json", json.dumps({"extends": "x\x00.toml"})))


def test_the_cli_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", 'extends = "b.toml"\n')
    write(tmp_path, "b.toml", 'extends = "a.toml"\n')
    for args in (["plan", str(tmp_path / "a.toml")], ["study", "--plan", str(tmp_path / "a.toml")]):
        result = CliRunner().invoke(cli, args, prog_name="slimkit")
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
        assert "cycle: a.toml -> b.toml -> a.toml" in result.output


# -- The examples ---------------------------------------------------------------------------------

# What each example file held before it was rewritten to extend another (issue 18), parsed. A
# deliberate change to an example changes this fixture too; an accidental one (a step that would
# retrain because its config drifted) fails here.
BEFORE: dict[str, dict[str, Any]] = json.loads((REPO / "tests" / "data" / "examples-before-extends.json").read_text())


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_each_example_loads_as_it_did_before_extends(name: str) -> None:
    path = EXAMPLES / name
    if name.endswith("-study.toml"):
        loaded = load_study(path).model_dump(mode="json")
        expected = study_from_dict(BEFORE[name]).model_dump(mode="json")
    else:
        loaded = load_pipeline(path).model_dump(mode="json")
        expected = pipeline_from_dict(BEFORE[name]).model_dump(mode="json")
    assert loaded == expected
    # The merged table is the old file itself, but for the quick example, which states a default
    # (tune_threshold = false) that its base turns on.
    merged = read_spec_file(path, kind="study" if name.endswith("-study.toml") else "pipeline")
    if name == "minilm-semeval-quick.toml":
        assert merged["task"].pop("tune_threshold") is False
    assert merged == BEFORE[name]


def test_the_examples_state_the_shared_finetune_step_once() -> None:
    line = "config = { epochs = 6, learning_rate = 8e-5"
    holders = [p.name for p in sorted(EXAMPLES.glob("*.toml")) if line in p.read_text(encoding="utf-8")]
    assert holders == ["minilm-semeval-base.toml"]
    # Files with steps share their store through the base they extend; a `recipe = "auto"` file has
    # no steps to share, and names the store itself.
    stores = [p.name for p in sorted(EXAMPLES.glob("*.toml")) if "store_dir =" in p.read_text(encoding="utf-8")]
    assert stores == [
        "minilm-semeval-base.toml", "minilm-semeval-compress-quick.toml", "minilm-semeval-compress.toml",
        "smollm2-ekman.toml",
    ]  # fmt: skip
