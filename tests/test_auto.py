"""Model families in declarations, recipes, ``recipe = "auto"`` and ``slimkit compress``, on the toy
plugin: a source whose config.json the test chooses, techniques that declare families, recipes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from slimkit import Recipe, Technique, hookimpl
from slimkit.auto import AutoSpec, auto_from_dict, head_trained, parse_duration, plan_auto
from slimkit.cli import cli
from slimkit.errors import PluginError, SpecError
from slimkit.hardware import Hardware
from slimkit.planner import plan_pipeline
from slimkit.spec import UnlabelledTexts, pipeline_from_dict
from toy_plugin import ToyPlugin, read, write

SOURCE = "toy:0.01,0.2,0.5,0.9"


def bert_round(step: Any) -> Any:
    write(step.output_dir, [round(w, 1) for w in read(step.input.path)])
    return step.artifact()


class FamilyPlugin:
    """The source's config.json is ``config``; one technique for BERT only; recipes over both plugins."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    @hookimpl
    def model_config(self, source: Any, pipeline: Any, cache_dir: Path) -> dict[str, Any] | None:
        return self.config if source.source.startswith("toy:") else None

    @hookimpl
    def register_techniques(self, register: Any) -> None:
        register(
            Technique(
                name="fam.bert-round", stage="quantize", summary="Round, BERT only.", consumes=["toy"],
                families={"bert": "every weight", "roberta": "every weight"}, implementation=bert_round,
            )
        )  # fmt: skip

    @hookimpl
    def register_recipes(self, register: Any) -> None:
        round_step = [{"technique": "toy.round"}]
        register(Recipe(name="fam.round", summary="Round.", goals=["size", "speed"], steps=round_step))
        register(
            {
                "name": "fam.bert-then-round", "summary": "BERT rounding if it fits, then rounding.", "goals": ["size"],
                "cost": 2, "steps": [{"technique": "fam.bert-round", "optional": True}, {"technique": "toy.round"}],
            }
        )  # fmt: skip
        register(Recipe(name="fam.bert-only", summary="B.", goals=["size"], steps=[{"technique": "fam.bert-round"}]))
        register(Recipe(name="fam.speed", summary="S.", goals=["speed"], steps=[{"technique": "toy.export"}]))
        register(Recipe(name="fam.prune-round", summary="P.", goals=["size"], cost=3,
                        steps=[{"name": "coarse", "technique": "toy.round", "config": {"decimals": 2}},
                               {"recipe": "fam.round"}]))  # fmt: skip
        register(Recipe(name="fam.elsewhere", summary="E.", goals=["size"], steps=[{"recipe": "other.int8"}]))
        register(
            Recipe(
                name="fam.train", summary="Train.", goals=["accuracy"], role="train",
                steps=[{"name": "finetune", "technique": "toy.finetune", "config": {"factor": 2.0}}],
            )
        )  # fmt: skip


def register_family(register_plugin: Any, toy: ToyPlugin, **config: Any) -> FamilyPlugin:
    plugin = FamilyPlugin({"model_type": "bert", "architectures": ["BertModel"]} | config)
    register_plugin(plugin, name="fam")
    return plugin


def auto_spec(tmp_path: Path, **fields: Any) -> AutoSpec:
    data = {
        "name": "auto",
        "model": {"source": SOURCE, "format": "toy"},
        "task": {"data_files": {"train": "t.csv", "eval": "e.csv"}, "eval_split": "eval"},
        "recipe": "auto",
        "goal": "size",
        "device": "cpu",
    } | fields
    return auto_from_dict(data, base_dir=tmp_path)


# -- Families in declarations and the planner ------------------------------------------------


@pytest.mark.parametrize(
    ("families", "error"),
    [({"gemma3_text": "x"}, "another name of 'gemma3'"), ({"BERT": "x"}, "not a model_type in lower case")],
)
def test_a_declared_family_is_a_model_type(families: dict[str, str], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        Technique(name="a.b", stage="prune", summary="s", consumes=["toy"], families=families)


def test_the_planner_refuses_a_family_the_technique_does_not_declare(
    register_plugin: Any, toy: ToyPlugin, slimkit_plugins: Any, hw: Hardware
) -> None:
    register_family(register_plugin, toy, model_type="deberta-v2")
    data = {"model": {"source": SOURCE, "format": "toy"}, "steps": [{"technique": "fam.bert-round"}]}
    plan = plan_pipeline(pipeline_from_dict(data), plugins=slimkit_plugins, hardware=hw)
    assert plan.family == "deberta-v2"
    assert plan.problems == [
        "step 1 (fam.bert-round): fam.bert-round does not support model family 'deberta-v2' (it supports bert, "
        "roberta; fix: drop the step, or use toy.fail or toy.round instead; see docs/compatibility.md)"
    ]


def test_a_stage_step_picks_a_technique_that_supports_the_family(
    register_plugin: Any, toy: ToyPlugin, slimkit_plugins: Any, hw: Hardware
) -> None:
    register_family(register_plugin, toy, model_type="gemma3_text")  # an alias of gemma3
    data = {"model": {"source": SOURCE, "format": "toy"}, "steps": [{"stage": "quantize", "goal": "size"}]}
    plan = plan_pipeline(pipeline_from_dict(data), plugins=slimkit_plugins, hardware=hw)
    assert plan.ok and plan.family == "gemma3"
    assert plan.steps[0].technique.name == "toy.round"
    assert "fam.bert-round (supports bert, roberta, not gemma3)" in plan.steps[0].reason


# -- Recipes -----------------------------------------------------------------------------------


def test_recipes_are_validated_and_owned_by_their_plugin(register_plugin: Any, slimkit_plugins: Any) -> None:
    class Twice:
        @hookimpl
        def register_recipes(self, register: Any) -> None:
            register({"name": "two.x", "summary": "x", "goals": ["size"], "steps": [{"technique": "toy.round"}]})
            register({"name": "two.x", "summary": "x", "goals": ["size"], "steps": [{"technique": "toy.round"}]})

    class Staged:
        @hookimpl
        def register_recipes(self, register: Any) -> None:
            register({"name": "st.x", "summary": "x", "goals": ["size"], "steps": [{"stage": "quantize"}]})

    with pytest.raises(PluginError, match=r"recipe 'two\.x' is declared by both"):
        register_plugin(Twice(), name="two")
    with pytest.raises(PluginError, match="a recipe names its techniques"):
        register_plugin(Staged(), name="st")
    assert slimkit_plugins.recipes.all() == []


@pytest.mark.parametrize(
    ("text", "seconds"), [(90, 90.0), ("90", 90.0), ("45m", 2700.0), ("2h", 7200.0), ("1h30m", 5400.0), ("20s", 20.0)]
)
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "0", "-5", "1d", [], {"h": 1}])  # a list or table from a file, too
def test_bad_durations(text: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_a_bad_auto_file_is_one_line_per_field(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        auto_spec(tmp_path, goal="fast", time_budget="soon", recipe="manual", steps=[])
    lines = caught.value.problems
    assert any(line.startswith("steps: unknown field") or line.startswith("steps: Extra inputs") for line in lines)
    assert any(line.startswith("goal: Input should be 'speed', 'size' or 'memory'") for line in lines)
    assert any(line.startswith("time_budget:") and "'soon' is not a duration" in line for line in lines)
    assert any(line.startswith("recipe: Input should be 'auto'") for line in lines)


# -- Auto: which recipes, which baseline ------------------------------------------------------


def test_auto_keeps_the_recipes_that_fit_and_says_why_the_others_do_not(
    tmp_path: Path, register_plugin: Any, toy: ToyPlugin, slimkit_plugins: Any, hw: Hardware
) -> None:
    register_family(register_plugin, toy, model_type="mpnet")
    plan = plan_auto(auto_spec(tmp_path), slimkit_plugins, hw)
    assert plan.family == "mpnet" and plan.kind == "encoder" and not plan.problems
    assert [(c.recipe.name, [s.technique for s in c.steps]) for c in plan.candidates] == [
        ("fam.round", ["toy.round"]),
        ("fam.bert-then-round", ["toy.round"]),  # the optional BERT step left out
        ("fam.prune-round", ["toy.round", "toy.round"]),  # fam.round's steps in place
    ]
    assert "without fam.bert-round" in plan.candidates[1].reason
    assert dict(plan.left_out) == {
        "fam.bert-only": "fam.bert-round supports bert, roberta, not mpnet",
        "fam.speed": "for speed, not size",
        "fam.elsewhere": "it includes recipe 'other.int8', which is not installed",
    }
    assert plan.base.startswith("fine-tuned first by fam.train (its head is not trained)")
    assert plan.study is not None
    assert [s.technique for s in plan.study.base] == ["toy.finetune"]
    assert [v.name for v in plan.study.variants] == ["fam.round", "fam.bert-then-round", "fam.prune-round"]
    assert plan.study.search.objective == "size" and plan.study.search.budget.max_drop_points == 1.0


def test_a_trained_classifier_is_its_own_baseline(
    tmp_path: Path, register_plugin: Any, toy: ToyPlugin, slimkit_plugins: Any, hw: Hardware
) -> None:
    register_family(
        register_plugin, toy, architectures=["BertForSequenceClassification"], id2label={"0": "joy", "1": "anger"}
    )
    plan = plan_auto(auto_spec(tmp_path), slimkit_plugins, hw)
    assert plan.base == "the source is the baseline: it is already a classifier with named labels"
    assert plan.study is not None and plan.study.base == []
    forced = plan_auto(auto_spec(tmp_path, finetune="yes"), slimkit_plugins, hw)
    assert forced.study is not None and [s.label for s in forced.study.base] == ["finetune"]


def test_head_trained_needs_a_classifier_with_named_labels() -> None:
    assert not head_trained({"architectures": ["BertModel"]})
    assert not head_trained({"architectures": ["BertForSequenceClassification"], "id2label": {"0": "LABEL_0"}})
    assert head_trained({"architectures": ["RobertaForSequenceClassification"], "id2label": {"0": "neg", "1": "pos"}})


def test_auto_without_a_fitting_recipe_is_refused_with_the_reason(
    tmp_path: Path, register_plugin: Any, toy: ToyPlugin, slimkit_plugins: Any, hw: Hardware
) -> None:
    register_family(register_plugin, toy, model_type="qwen3", architectures=["Qwen3ForCausalLM"])
    plan = plan_auto(auto_spec(tmp_path, goal="memory"), slimkit_plugins, hw)
    assert plan.kind == "decoder" and plan.study is None
    assert plan.problems == [
        "no installed recipe fits a qwen3 decoder for goal memory on cpu (fix: `slimkit plugins --available` "
        "lists plugins that bring recipes; see docs/compatibility.md)"
    ]


# -- The commands ------------------------------------------------------------------------------


@pytest.fixture
def cli_plugins(register_plugin: Any, toy: ToyPlugin, slimkit_plugins: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The CLI builds its own plugin manager: hand it the test's (toy and family plugins)."""
    register_family(register_plugin, toy)
    monkeypatch.setattr("slimkit.cli._plugins", lambda trust_local: slimkit_plugins)
    return slimkit_plugins


def test_compress_plan_writes_the_file_and_builds_nothing(
    tmp_path: Path, cli_plugins: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    args = ["compress", SOURCE, "--format", "toy", "--data", "data/train.csv", "--eval", "data/test.csv"]
    args += ["--goal", "size"]
    args += ["--sessions", "3", "--session-gap", "5"]  # kept in the file, so a rerun measures alike
    result = CliRunner().invoke(cli, [*args, "--time-budget", "2h", "--name", "c", "--plan"])
    assert result.exit_code == 0, result.output
    assert "Compress toy:0.01,0.2,0.5,0.9 (bert, encoder) for size, within 1 point(s)" in result.output
    assert "  try fam.round: toy.round" in result.output
    assert "  skip fam.speed: for speed, not size" in result.output
    written = (tmp_path / "runs" / "c" / "compress.toml").read_text()
    assert 'recipe = "auto"' in written and 'time_budget = "2h"' in written
    assert "[measure]\nsessions = 3\nsession_gap_s = 5" in written
    assert 'data_files = { "train" = "../../data/train.csv", "eval" = "../../data/test.csv" }' in written
    assert not (tmp_path / "runs" / "c" / "steps").exists()


def test_compress_without_data_is_one_line(tmp_path: Path, cli_plugins: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["compress", SOURCE, "--data", "train.csv"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "Error: --data and --eval go together: name the training file and the held-out file"
    )


def test_run_of_an_auto_file_builds_the_study_and_names_the_chosen_model(
    tmp_path: Path, cli_plugins: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "auto.toml").write_text(
        'name = "a"\nrecipe = "auto"\ngoal = "size"\ndevice = "cpu"\nbudget = 100.0\nmetric = "nonzero_share"\n'
        f'[model]\nsource = "{SOURCE}"\nformat = "toy"\n'
        '[task]\ndata_files = { train = "t.csv", eval = "e.csv" }\neval_split = "eval"\n'
    )
    result = CliRunner().invoke(cli, ["run", "auto.toml"])
    assert result.exit_code == 0, result.output
    assert "Chosen: fam.bert-only (toy) at runs/a/" in result.output
    assert (tmp_path / "runs" / "a" / "report.md").is_file()


# -- Unlabelled texts ------------------------------------------------------------------------------


class TeachConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: UnlabelledTexts | None = Field(default=None, description="Unlabelled texts, counted into the weights.")

    @field_validator("texts")
    @classmethod
    def _known(cls, texts: UnlabelledTexts | None) -> UnlabelledTexts | None:
        if texts is not None and texts.preset not in (None, "tweets"):
            raise ValueError(f"unknown preset {texts.preset!r} (use tweets)")
        return texts


def teach(step: Any) -> Any:
    """Appends the number of unlabelled texts it was given to the weights (what the test checks)."""
    texts = step.config.texts
    lines = step.pipeline.resolve_path(texts.data_file).read_text().splitlines() if texts and texts.data_file else []
    write(step.output_dir, [*read(step.input.path), float(len(lines))])
    return step.artifact()


class TeachPlugin:
    """A technique that takes unlabelled texts, a recipe of it, and one that sets its own texts."""

    @hookimpl
    def register_techniques(self, register: Any) -> None:
        register(
            Technique(
                name="teach.copy", stage="quantize", summary="Copy; counts the texts.", consumes=["toy"],
                config=TeachConfig, implementation=teach, unlabelled_texts="texts",
            )
        )  # fmt: skip

    @hookimpl
    def register_recipes(self, register: Any) -> None:
        own = {"name": "own", "technique": "teach.copy", "config": {"texts": {"preset": "tweets"}}}
        register(Recipe(name="teach.copy", summary="T.", goals=["size"], steps=[{"technique": "teach.copy"}]))
        register(Recipe(name="teach.own", summary="O.", goals=["size"], steps=[own, {"technique": "toy.round"}]))


@pytest.fixture
def teaching(register_plugin: Any, toy: ToyPlugin, slimkit_plugins: Any) -> Any:
    register_family(register_plugin, toy, architectures=["BertForSequenceClassification"], id2label={"0": "a"})
    register_plugin(TeachPlugin(), name="teach")
    return slimkit_plugins


def test_a_technique_names_a_field_of_its_config_for_unlabelled_texts() -> None:
    with pytest.raises(ValidationError, match="unlabelled_texts names 'corpus', which is not a field of TeachConfig"):
        Technique(
            name="a.b", stage="distill", summary="s", consumes=["toy"], config=TeachConfig, unlabelled_texts="corpus"
        )


def test_unlabelled_texts_go_to_the_steps_that_take_them(tmp_path: Path, teaching: Any, hw: Hardware) -> None:
    (tmp_path / "texts.txt").write_text("one\ntwo\n")
    spec = auto_spec(tmp_path, unlabelled={"data_file": "texts.txt", "max_rows": 5})
    plan = plan_auto(spec, teaching, hw)
    assert not plan.problems and plan.study is not None
    steps = {c.recipe.name: [(s.technique, s.config) for s in c.steps] for c in plan.candidates}
    given = {"data_file": "texts.txt", "max_rows": 5}
    assert steps["teach.copy"] == [("teach.copy", {"texts": given})]
    # A recipe that sets the field keeps its own; other techniques' steps get nothing.
    assert steps["teach.own"] == [("teach.copy", {"texts": {"preset": "tweets"}}), ("toy.round", {})]
    assert plan.unlabelled_steps == {"teach.copy": ["teach.copy"]}
    # The declared recipe itself is untouched: a second plan without texts gives the step none.
    again = plan_auto(auto_spec(tmp_path), teaching, hw)
    assert next(c for c in again.candidates if c.recipe.name == "teach.copy").steps[0].config == {}


@pytest.mark.parametrize(
    ("unlabelled", "problem"),
    [
        ({"data_file": "missing.txt"}, "unlabelled.data_file: no such file missing.txt (fix: name a file of texts)"),
        ({"preset": "news"}, "unlabelled: unknown preset 'news' (use tweets) (technique teach.copy)"),
    ],
)
def test_unlabelled_texts_that_cannot_be_read_are_one_plan_problem(
    tmp_path: Path, teaching: Any, hw: Hardware, unlabelled: dict[str, Any], problem: str
) -> None:
    plan = plan_auto(auto_spec(tmp_path, unlabelled=unlabelled), teaching, hw)
    assert plan.problems == [problem] and plan.study is None


def test_unlabelled_texts_are_refused_for_a_sentence_pair_task(tmp_path: Path) -> None:
    task = {"data_files": {"train": "t.csv", "eval": "e.csv"}, "eval_split": "eval", "text_pair_column": "b"}
    with pytest.raises(SpecError) as caught:
        auto_spec(tmp_path, task=task, unlabelled={"preset": "tweets"})
    assert caught.value.problems == [
        "unlabelled texts are single texts and the task is a sentence-pair task: leave 'unlabelled' unset"
    ]


def test_compress_gives_its_unlabelled_file_to_the_steps(
    tmp_path: Path, teaching: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("slimkit.cli._plugins", lambda trust_local: teaching)
    (tmp_path / "texts.txt").write_text("one\ntwo\nthree\n")
    args = ["compress", SOURCE, "--format", "toy", "--data", "t.csv", "--eval", "e.csv", "--goal", "size"]
    args += ["--name", "c", "--budget", "100", "--unlabelled", "texts.txt", "--unlabelled-rows", "2"]
    planned = CliRunner().invoke(cli, [*args, "--plan"])
    assert planned.exit_code == 0, planned.output
    assert "  unlabelled texts: file:texts.txt (2 rows at most), given to every teach.copy step (teach.copy)" in (
        planned.output
    )
    written = tmp_path / "runs" / "c" / "compress.toml"
    assert '[unlabelled]\ndata_file = "../../texts.txt"\nmax_rows = 2' in written.read_text()
    written.write_text(written.read_text().replace('recipe = "auto"', 'recipe = "auto"\nmetric = "nonzero_share"'))
    result = CliRunner().invoke(cli, ["run", str(written), "-q"])  # the file compress wrote, as a user reruns it
    assert result.exit_code == 0, result.output
    copied = next((tmp_path / "runs" / "c" / "steps").glob("teach.copy-*/model/weights.json"), None)
    assert copied is not None and read(copied)[-1] == 3.0  # the step read the file compress named


def test_compress_names_a_missing_unlabelled_file(
    tmp_path: Path, teaching: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("slimkit.cli._plugins", lambda trust_local: teaching)
    args = ["compress", SOURCE, "--format", "toy", "--data", "t.csv", "--eval", "e.csv"]
    result = CliRunner().invoke(cli, [*args, "--unlabelled", "data/x.txt"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "Error: --unlabelled: no such file data/x.txt (fix: name a file of texts, or a task preset such as goemotions)"
    )
    (tmp_path / "texts.txt").write_text("one\n")
    columnless = CliRunner().invoke(cli, [*args, "--unlabelled", "texts.txt", "--unlabelled-column", "body"])
    assert columnless.exit_code == 2
    assert columnless.output.startswith("Error: --unlabelled-column: texts.txt has no columns")
    alone = CliRunner().invoke(cli, [*args, "--unlabelled-rows", "5"])
    assert alone.exit_code == 2
    assert alone.output.strip() == (
        "Error: --unlabelled-column and --unlabelled-rows go with --unlabelled: name the texts"
    )


def test_the_conformance_kit_checks_the_field_takes_unlabelled_texts() -> None:
    from slimkit.conformance import ConformanceError, check_declaration

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid")
        corpus: str | None = Field(default=None, description="A path, not UnlabelledTexts.")

    fields = {"stage": "distill", "summary": "s", "consumes": ["toy"], "families": {"bert": "all"}}
    fields |= {"implementation": teach}
    check_declaration(Technique(name="a.good", config=TeachConfig, unlabelled_texts="texts", **fields))
    with pytest.raises(ConformanceError, match="its config field 'corpus' refuses unlabelled texts"):
        check_declaration(Technique(name="a.bad", config=Strict, unlabelled_texts="corpus", **fields))
