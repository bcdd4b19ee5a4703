"""Bad input gets exit 2 (or 3 when the plan refuses it) and one line per problem, naming the file,
field or step and the fix: never a traceback. Task data files are tested with the plugin that reads
them (plugins/transformers/tests/test_tasks.py)."""

from __future__ import annotations

import importlib.metadata as md
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import slimkit
from slimkit import Technique
from slimkit.cli import cli
from slimkit.errors import SlimkitError
from slimkit.planner import plan_pipeline
from slimkit.spec import pipeline_from_dict
from toy_plugin import ToyPlugin

TOY_MODEL = 'model = { source = "toy:0.1,0.5,-0.3", format = "toy" }\ndevice = "cpu"\n'


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="slimkit")


class _EntryPoint:
    """Stands in for an installed distribution's entry point, so the CLI loads the plugin."""

    dist = None

    def __init__(self, name: str, plugin: object) -> None:
        self.name, self.module, self._plugin = name, name, plugin

    def load(self) -> object:
        return self._plugin


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``installed(toy=ToyPlugin(), ...)``: the CLI discovers exactly these plugins."""

    def install(**plugins: object) -> None:
        points = [_EntryPoint(name, plugin) for name, plugin in plugins.items()]
        monkeypatch.setattr(md, "entry_points", lambda *, group: points)
        monkeypatch.delenv("SLIMKIT_LOAD_PLUGINS")

    return install


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


# -- Files that are not UTF-8 ---------------------------------------------------------------


def test_a_pipeline_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "p.toml", b'name = "p"\n' + TOY_MODEL.encode() + b"# caf\xe9 au lait\n")
    for command in ("plan", "run"):
        result = invoke(command, path)
        assert (result.exit_code, result.stdout) == (2, "")
        assert result.stderr == f"Error: {path}: line 4: byte 0xe9 is not UTF-8 text (fix: save the file as UTF-8)\n"


def test_a_study_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", b"name: s\nmodel: toy:1\n\xff\xfe\n")
    result = invoke("study", "--plan", path)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {path}: line 3: byte 0xff is not UTF-8 text (fix: save the file as UTF-8)\n"


# -- Numbers out of range, booleans for numbers ---------------------------------------------


def test_measure_shapes_must_be_positive(tmp_path: Path) -> None:
    path = write(tmp_path, "p.toml", TOY_MODEL + "[measure]\nbatch_sizes = [-1, 0]\nsequence_lengths = [0]\n")
    result = invoke("plan", path)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"Error: {path}: measure.batch_sizes.0: Input should be greater than or equal to 1",
        f"Error: {path}: measure.batch_sizes.1: Input should be greater than or equal to 1",
        f"Error: {path}: measure.sequence_lengths.0: Input should be greater than or equal to 1",
    ]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (
            "measure = { batch_sizes = [] }",
            "measure.batch_sizes: List should have at least 1 item after validation, not 0",
        ),
        ("measure = { batch_sizes = [100000] }", "measure.batch_sizes.0: Input should be less than or equal to 65536"),
        ("measure = { repeats = true }", "measure.repeats: Input should be a valid integer"),
        ("measure = { warmup = 2.0 }", "measure.warmup: Input should be a valid integer"),
        ("seed = -1", "seed: Input should be greater than or equal to 0"),
        ("task = { max_train_examples = true }", "task.max_train_examples: Input should be a valid integer"),
        ("task = { threshold = nan }", "task.threshold: Input should be a finite number"),
    ],
)
def test_pipeline_numbers_are_strict_and_bounded(tmp_path: Path, line: str, problem: str) -> None:
    path = write(tmp_path, "p.toml", f"{line}\n{TOY_MODEL}")
    result = invoke("plan", path)
    assert (result.exit_code, result.stderr) == (2, f"Error: {path}: {problem}\n")


ROUND, PRUNE = 'technique = "toy.round"', 'technique = "toy.prune"'
NOT_AN_INT = "Input should be a valid integer"
NOT_FINITE = "must be a finite number, not"


@pytest.mark.parametrize(
    ("step", "exit_code", "problem"),
    [
        # The technique's model validates strictly: true is not 1, 2.0 is not 2.
        (f"{ROUND}\nconfig = {{ decimals = true }}", 3, f"step 1 (toy.round): config.decimals: {NOT_AN_INT}"),
        (f"{ROUND}\nconfig = {{ decimals = 2.0 }}", 3, f"step 1 (toy.round): config.decimals: {NOT_AN_INT}"),
        # inf and nan are refused for every technique, before its model sees them.
        (f"{PRUNE}\nconfig = {{ threshold = inf }}", 2, f"step 1 (toy.prune): config.threshold: {NOT_FINITE} inf"),
        (f"{PRUNE}\nconfig = {{ threshold = [nan] }}", 2, f"step 1 (toy.prune): config.threshold.0: {NOT_FINITE} nan"),
    ],
)  # fmt: skip
def test_step_configs_refuse_booleans_and_non_finite_numbers(
    tmp_path: Path, installed: Any, step: str, exit_code: int, problem: str
) -> None:
    installed(toy=ToyPlugin())
    path = write(tmp_path, "p.toml", f"{TOY_MODEL}[[steps]]\n{step}\n")
    result = invoke("plan", path)
    assert result.exit_code == exit_code
    expected = f"problem: {problem}" if exit_code == 3 else f"Error: {path}: {problem}"
    assert result.stderr.splitlines() == [expected]


def test_a_step_name_is_one_printable_line(tmp_path: Path) -> None:
    path = write(tmp_path, "p.json", '{"model": "toy:1", "steps": [{"name": "a\\nb", "stage": "quantize"}]}')
    result = invoke("plan", path)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {path}: step 1 (a\nb): name: 'a\\nb': a step name is one line of printable text\n"


def test_a_key_with_a_line_break_is_quoted(tmp_path: Path) -> None:
    path = write(tmp_path, "p.json", '{"model": "toy:1", "a\\nb": 1}')
    result = invoke("plan", path)
    assert result.stderr == (
        f"Error: {path}: 'a\\nb': unknown field (check the spelling; `slimkit schema` lists the fields)\n"
    )


def test_a_study_that_would_expand_forever_is_refused_before_expanding(tmp_path: Path) -> None:
    grid = ", ".join(f"o{i} = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]" for i in range(12))  # 10**12 grid points
    path = write(tmp_path, "s.toml", f'{TOY_MODEL}[blocks.b]\ntechnique = "toy.round"\ngrid = {{ {grid} }}\n'
                 '[[variants]]\nblocks = ["b"]\n')  # fmt: skip
    result = invoke("study", "--plan", path)
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: search.max_variants: the study expands to up to 1000000000001 variants, more than 64 "
        "(fix: raise max_variants, shrink the space, or use strategy = 'random')\n"
    )


# -- Plan-time checks that raise ------------------------------------------------------------


class CheckingPlugin:
    """A technique whose model check raises, and a model config reader."""

    def __init__(self, config: dict[str, Any] | Exception) -> None:
        self.config = config

    @slimkit.hookimpl
    def register_techniques(self, register):  # type: ignore[no-untyped-def]
        register(Technique(name="boom.check", stage="quantize", summary="Its check raises.", consumes=["toy"],
                           check_model=lambda config, model: str(1 / 0)))  # fmt: skip

    @slimkit.hookimpl
    def model_config(self, source, pipeline, cache_dir):  # type: ignore[no-untyped-def]
        if isinstance(self.config, Exception):
            raise self.config
        return self.config


def test_a_model_check_that_raises_is_a_problem_naming_step_and_plugin(tmp_path: Path, installed: Any) -> None:
    installed(toy=ToyPlugin(), boom=CheckingPlugin({"hidden_size": 8}))
    path = write(tmp_path, "p.toml", f'{TOY_MODEL}[[steps]]\ntechnique = "boom.check"\n')
    result = invoke("plan", path)
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        "problem: step 1 (boom.check): the model check of boom.check (plugin 'boom') raised ZeroDivisionError: "
        "division by zero (fix: report it to the plugin's authors; the pipeline cannot be checked)"
    ]


def test_a_model_config_that_cannot_be_read_is_a_problem(tmp_path: Path, installed: Any) -> None:
    error = SlimkitError("model.source: m/config.json: not valid JSON", fix="restore it")
    installed(toy=ToyPlugin(), boom=CheckingPlugin(error))
    path = write(tmp_path, "p.toml", f'{TOY_MODEL}[[steps]]\ntechnique = "boom.check"\n')
    result = invoke("plan", path)
    assert result.exit_code == 3
    assert result.stderr.splitlines() == ["problem: model.source: m/config.json: not valid JSON (fix: restore it)"]


# -- The check_task hook --------------------------------------------------------------------


class TaskChecker:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.seen: list[Any] = []

    @slimkit.hookimpl
    def check_task(self, task, pipeline):  # type: ignore[no-untyped-def]
        self.seen.append(task)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


TASK_PIPELINE = {
    "model": {"source": "toy:1", "format": "toy"},
    "device": "cpu",
    "task": {"data_files": {"train": "t.tsv"}},
}


def test_check_task_problems_refuse_the_plan(tmp_path: Path, installed: Any) -> None:
    problem = "task.data_files: t.tsv: row 7: column 'label': label id 5 is outside the label list (fix: correct it)"
    installed(toy=ToyPlugin(), data=TaskChecker([problem]))
    path = write(tmp_path, "p.toml", f'{TOY_MODEL}[task]\ndata_files = {{ train = "t.tsv" }}\n')
    result = invoke("plan", path)
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [f"problem: {problem}"]


FAILED_CHECK = "task: plugin 'data' failed while checking the task's data:"


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (RuntimeError("disk on fire\nsecond line"), f"{FAILED_CHECK} RuntimeError: disk on fire"),
        (SystemExit(0), f"{FAILED_CHECK} SystemExit(0): plugin code tried to exit the process"),
        ("not a list", "task: plugin 'data': check_task returned str, expected a list of strings"),
        (["two\nlines"], "two lines"),
    ],
)  # fmt: skip
def test_a_broken_task_checker_is_named_and_planning_goes_on(
    slimkit_plugins: Any, register_plugin: Any, toy: ToyPlugin, hw: Any, answer: Any, problem: str
) -> None:
    register_plugin(TaskChecker(answer), name="data")
    pipeline = pipeline_from_dict(TASK_PIPELINE | {"steps": [{"technique": "toy.nope"}]})
    plan = plan_pipeline(pipeline, plugins=slimkit_plugins, hardware=hw)
    assert plan.problems[0] == problem
    assert plan.problems[1].startswith("step 1 (toy.nope): unknown technique")  # the rest is still checked


def test_check_task_fires_once_with_the_task_and_only_when_there_is_one(
    slimkit_plugins: Any, register_plugin: Any, toy: ToyPlugin, hw: Any
) -> None:
    checker = TaskChecker(None)
    register_plugin(checker, name="data")
    assert plan_pipeline(pipeline_from_dict(TASK_PIPELINE), plugins=slimkit_plugins, hardware=hw).ok
    assert [t.data_files for t in checker.seen] == [{"train": "t.tsv"}]
    no_task = {k: v for k, v in TASK_PIPELINE.items() if k != "task"}
    assert plan_pipeline(pipeline_from_dict(no_task), plugins=slimkit_plugins, hardware=hw).ok
    assert len(checker.seen) == 1
