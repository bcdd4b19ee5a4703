"""results.json through its model: portable paths, earlier versions still read, and the committed
study results (docs/studies) rebuilt into the very reports committed beside them."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from slimkit.cli import cli
from slimkit.hardware import Hardware
from slimkit.report import render_markdown
from slimkit.results import RunResults, StudyResults, load_results, portable_path, resolve_path
from slimkit.runner import RunResult
from slimkit.spec import Pipeline
from toy_plugin import ToyPlugin

REPO = Path(__file__).resolve().parents[1]
STUDIES = sorted(p.parent for p in (REPO / "docs" / "studies").glob("*/results.json"))
SOURCE = "toy:0.1,0.5,-0.3,0.04"


def test_there_are_committed_studies() -> None:
    assert len(STUDIES) >= 2


# -- Paths ------------------------------------------------------------------------------------


def test_portable_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIMKIT_CACHE", str(tmp_path / "cache"))
    run_dir = tmp_path / "runs" / "p"
    cases = {
        run_dir / "steps" / "a-1" / "model": "steps/a-1/model",
        tmp_path / "runs" / "store" / "a-1" / "model": "../store/a-1/model",
        tmp_path / "cache" / "sources" / "k": "$SLIMKIT_CACHE/sources/k",
        tmp_path / "elsewhere" / "m.onnx": "../../elsewhere/m.onnx",
    }
    for path, text in cases.items():
        assert portable_path(path, run_dir) == text
        assert resolve_path(text, run_dir) == path
    monkeypatch.setenv("SLIMKIT_CACHE", str(tmp_path / "other-cache"))  # another machine's cache
    assert resolve_path("$SLIMKIT_CACHE/sources/k", run_dir) == tmp_path / "other-cache" / "sources" / "k"
    assert resolve_path("/abs/model", run_dir) == Path("/abs/model")  # version 1 files


@pytest.fixture
def run(run_pipeline: Callable[..., RunResult], hw: Hardware) -> Callable[..., RunResult]:
    def go(pipeline: Pipeline, **kw: Any) -> RunResult:
        return run_pipeline(pipeline, hardware=hw, **kw)

    return go


def test_a_run_writes_paths_that_resolve_after_the_tree_moves(run: Any, toy: ToyPlugin, tmp_path: Path) -> None:
    """A store shared beside the run folder is reached with '..'; the source model in the cache
    with $SLIMKIT_CACHE; moving runs/ elsewhere keeps every path right."""
    pipeline = Pipeline(name="p", model={"source": SOURCE, "format": "toy"}, device="cpu").prune("toy.prune")
    tree = tmp_path / "tree"
    update = {"output_dir": tree / "runs" / "p", "store_dir": tree / "runs" / "store"}
    result = run(pipeline.model_copy(update=update))
    assert result.exit_code == 0
    text = (result.results_path).read_text()
    assert str(tmp_path) not in text
    source, pruned = json.loads(text)["artifacts"]
    assert source["path"].startswith("$SLIMKIT_CACHE/toy-")
    assert re.fullmatch(r"\.\./store/toy\.prune-[0-9a-f]{16}/model", pruned["path"])

    tree.rename(tmp_path / "moved")
    results = load_results(tmp_path / "moved" / "runs" / "p")
    assert isinstance(results, RunResults)
    step = results.step("toy.prune")
    assert step is not None and step.artifact is not None and step.artifact.path == pruned["path"]
    assert (results.resolve(step.artifact.path) / "weights.json").is_file()
    assert (results.resolve(results.artifacts[0].path) / "weights.json").is_file()


def test_version_1_files_are_read(run: Any, toy: ToyPlugin, tmp_path: Path) -> None:
    """A file written before paths were portable (absolute paths, schema 1) reads, resolves and reports."""
    result = run(Pipeline(name="v1", model={"source": SOURCE, "format": "toy"}, device="cpu").prune("toy.prune"))
    data = json.loads(result.results_path.read_text())
    data["schema"] = "slimkit.results/1"
    for artifact in data["artifacts"]:
        artifact["path"] = str(resolve_path(artifact["path"], result.run_dir))
    old = tmp_path / "old" / "results.json"
    old.parent.mkdir()
    old.write_text(json.dumps(data))
    results = load_results(old)
    assert isinstance(results, RunResults) and results.schema_ == "slimkit.results/1"
    assert (results.resolve(results.artifacts[1].path) / "weights.json").is_file()
    assert render_markdown(results) == render_markdown(load_results(result.run_dir))
    fixed = load_results(REPO / "tests" / "data" / "study-results.json")
    assert isinstance(fixed, StudyResults) and fixed.schema_ == "slimkit.study/1"


# -- The committed studies ----------------------------------------------------------------------

# ONNX names graph nodes by their scope, "/model/classifier/Gemm": names inside a model file that
# plugins record under these keys, not paths on a machine.
NOT_PATHS = frozenset({"excluded_nodes"})
# The start of an absolute path anywhere in a string (a value, or inside a message): '/name/', '~/',
# a drive 'C:\' or 'C:/', or a UNC '\\'; at the start or after a space, quote, '(' or '='. A single
# component ('/tmp') passes; '/s' in 'items/s' never starts a token.
ABSOLUTE = re.compile(r"""(?:^|[\s'"(=])(/[^\s/'"]+/|~/|[A-Za-z]:[\\/]|\\\\)""")


def absolute_paths(value: Any, where: str = "", key: str = "") -> list[str]:
    """Every string in ``value`` that holds an absolute path, with where it is."""
    if isinstance(value, dict):
        return [hit for k, v in value.items() for hit in absolute_paths(v, f"{where}.{k}", k)]
    if isinstance(value, list):
        return [hit for i, v in enumerate(value) for hit in absolute_paths(v, f"{where}[{i}]", key)]
    if isinstance(value, str) and key not in NOT_PATHS and ABSOLUTE.search(value):
        return [f"{where}: {value}"]
    return []


def test_the_absolute_path_rule() -> None:
    found = absolute_paths(
        {
            "path": "/work/main/runs/store/x/model",
            "error": "OSError: cannot read ~/models/m.onnx",
            "win": "C:\\runs\\x",
            "excluded_nodes": ["/model/classifier/Gemm"],
            "unit": "items/s",
            "fine": ["../store/x/model", "$SLIMKIT_CACHE/sources/k", "https://huggingface.co/x/y", "a / b"],
        }
    )
    assert [f.split(":")[0] for f in found] == [".path", ".error", ".win"]


@pytest.mark.parametrize("study", STUDIES, ids=lambda p: p.name)
def test_committed_results_hold_no_absolute_path(study: Path) -> None:
    data = json.loads((study / "results.json").read_text(encoding="utf-8"))
    assert absolute_paths(data) == []
    assert data["schema"] == "slimkit.study/2"


@pytest.mark.parametrize("study", STUDIES, ids=lambda p: p.name)
def test_committed_results_read_back_whole(study: Path) -> None:
    """The model keeps every field of the file: reading and writing again changes nothing."""
    data = json.loads((study / "results.json").read_text(encoding="utf-8"))
    results = load_results(study)
    assert isinstance(results, StudyResults)
    assert results.document() == data
    assert list(results.document()) == list(data)


@pytest.mark.parametrize("study", STUDIES, ids=lambda p: p.name)
def test_slimkit_report_prints_the_committed_report(study: Path) -> None:
    """`slimkit report` rebuilds report.md from results.json, all but the plots' lines, which only
    the writer of the report (with the PNGs beside it) adds."""
    committed = (study / "report.md").read_text(encoding="utf-8")
    printed = CliRunner().invoke(cli, ["report", str(study)], prog_name="slimkit")
    assert printed.exit_code == 0, printed.output
    plot = re.compile(r"!\[([^\]]+)\]\(\1\)\n\n")
    assert plot.search(committed)
    assert printed.output == plot.sub("", committed) + "\n"
    results = load_results(study)
    assert render_markdown(results, plot.findall(committed)) == committed


def test_a_copied_study_report_rebuilds_from_another_folder(tmp_path: Path) -> None:
    """Nothing in a committed study depends on the machine or the folder it sits in."""
    copy = tmp_path / "elsewhere"
    shutil.copytree(STUDIES[0], copy)
    assert render_markdown(load_results(copy)) == render_markdown(load_results(STUDIES[0]))
