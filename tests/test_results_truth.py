"""results.json, the journal, the report and the process's exit code tell the same outcome, for
every way a run can end: done, failed, bad input, refused, interrupted (Ctrl-C anywhere)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_cli import TOY_LOCAL, slimkit_command

# A local plugin that misbehaves as SLIMKIT_TEST_MISBEHAVE says: its step 'odd.step' and its
# measurer either work or interrupt (a real SIGINT, as Ctrl-C sends), exit, raise or crash.
ODD_PLUGIN = """
import os, signal
import slimkit
from slimkit.errors import SlimkitError

HOW = os.environ.get("SLIMKIT_TEST_MISBEHAVE", "")


def _act(where):
    if HOW == f"sigint-{where}":
        os.kill(os.getpid(), signal.SIGINT)
    if HOW == f"exit-{where}":
        raise SystemExit(0)
    if HOW == f"bad-{where}":
        raise SlimkitError("task.data_files: train.csv: row 3: label 'x' is not in the label list", fix="fix row 3")


@slimkit.hookimpl
def register_techniques(register):
    register({"name": "odd.step", "stage": "quantize", "summary": "s", "consumes": ["toy"]})


@slimkit.hookimpl
def quantize(step):
    if not step.owns("odd.step"):
        return None
    _act("step")
    (step.output_dir / "weights.json").write_text((step.input.path / "weights.json").read_text())
    return step.artifact()


@slimkit.hookimpl
def after_step(step, artifact):
    if HOW == "crash-after-step":
        raise RuntimeError("a bug in a hook")
    _act("after-step")


@slimkit.hookimpl
def resolve_model(source, pipeline, cache_dir):
    if HOW == "bug-resolve":
        raise RuntimeError("a bug outside any step")
    _act("resolve")
    return None


@slimkit.hookimpl
def measure(artifacts, context):
    _act("measure")
    return {a.key: [{"name": "odd", "value": 1.0}] for a in artifacts}
"""

CASES = {
    # how: (exit code, outcome, words the reason holds)
    "": (0, "done", None),
    "sigint-step": (130, "interrupted", "interrupted by the user during step 2 (odd.step)"),
    "sigint-measure": (130, "interrupted", "interrupted by the user during measurement"),
    "exit-step": (1, "failed", "step 2 (odd.step): SystemExit(0): plugin code tried to exit the process"),
    "exit-measure": (1, "failed", "measurer 'local:odd': SystemExit(0)"),
    # A step's own error is a failed step, whatever its cause: the plan checked what it could.
    "bad-step": (1, "failed", "step 2 (odd.step): SlimkitError: task.data_files: train.csv: row 3"),
    # A hook's error fails the step it ran for, as the step's own would.
    "crash-after-step": (1, "failed", "step 1 (toy.prune): RuntimeError: a bug in a hook"),
    "exit-after-step": (1, "failed", "step 1 (toy.prune): SystemExit(0): plugin code tried to exit the process"),
    # Outside any step: sys.exit is recorded and never becomes the exit code; a bug keeps its traceback.
    "exit-resolve": (1, "failed", "SystemExit(0): plugin code tried to exit the process (while loading the model)"),
    "bad-resolve": (2, "bad_input", "task.data_files: train.csv: row 3"),
    "bug-resolve": (1, "failed", "RuntimeError: a bug outside any step (while loading the model)"),
}


def write_pipeline(folder: Path) -> Path:
    (folder / "toy_local.py").write_text(TOY_LOCAL)
    (folder / "odd.py").write_text(ODD_PLUGIN)
    path = folder / "p.toml"
    path.write_text(
        'name = "p"\ndevice = "cpu"\nplugins = ["toy_local.py", "odd.py"]\noutput_dir = "runs/p"\n'
        'model = { source = "toy:0.1,0.5", format = "toy" }\n'
        "[measure]\nbatch_sizes = [1]\n"
        '[[steps]]\ntechnique = "toy.prune"\n[[steps]]\ntechnique = "odd.step"\n'
    )
    return path


@pytest.mark.parametrize("how", list(CASES))
def test_every_record_tells_the_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    code, outcome, reason = CASES[how]
    path = write_pipeline(tmp_path)
    monkeypatch.setenv("SLIMKIT_TEST_MISBEHAVE", how)
    result = slimkit_command("run", path.name, "-q", "--trust-local-plugins", cwd=tmp_path)
    assert result.returncode == code, result.stderr
    run_dir = tmp_path / "runs" / "p"
    results = json.loads((run_dir / "results.json").read_text())
    assert (results["outcome"], results["exit_code"]) == (outcome, code)
    assert (results["reason"] is None) if reason is None else (reason in results["reason"]), results["reason"]
    last = json.loads((run_dir / "journal.jsonl").read_text().splitlines()[-1])
    assert (last["event"], last["outcome"], last["exit_code"], last["reason"]) == (
        "run_finished",
        outcome,
        code,
        results["reason"],
    )
    report = (run_dir / "report.md").read_text()
    assert f"(exit code {code})" in report.splitlines()[2]
    assert "pending" not in {s["status"] for s in results["steps"]}
    assert ("Traceback" in result.stderr) is (how == "bug-resolve")
    if code == 130:
        assert result.stderr.strip().splitlines()[-1].startswith("Interrupted: finished steps are kept")


def test_a_rerun_after_an_interruption_resumes_and_says_done(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_pipeline(tmp_path)
    monkeypatch.setenv("SLIMKIT_TEST_MISBEHAVE", "sigint-measure")
    assert slimkit_command("run", path.name, "-q", "--trust-local-plugins", cwd=tmp_path).returncode == 130
    monkeypatch.setenv("SLIMKIT_TEST_MISBEHAVE", "")
    result = slimkit_command("run", path.name, "-q", "--trust-local-plugins", "--json", cwd=tmp_path)
    results = json.loads(result.stdout)
    assert (result.returncode, results["outcome"]) == (0, "done")
    assert [s["status"] for s in results["steps"]] == ["reused", "reused"]


def test_a_refused_rerun_replaces_the_earlier_results(tmp_path: Path) -> None:
    """A refusal is recorded rather than leaving an earlier results.json to contradict exit 3."""
    path = write_pipeline(tmp_path)
    assert slimkit_command("run", path.name, "-q", "--trust-local-plugins", cwd=tmp_path).returncode == 0
    path.write_text(path.read_text().replace('technique = "odd.step"', 'technique = "odd.nothing"'))
    result = slimkit_command("run", path.name, "-q", "--trust-local-plugins", cwd=tmp_path)
    assert result.returncode == 3
    results = json.loads((tmp_path / "runs" / "p" / "results.json").read_text())
    assert (results["outcome"], results["exit_code"]) == ("refused", 3)
    assert "unknown technique 'odd.nothing'" in results["reason"]


def test_a_model_no_plugin_can_load_is_bad_input(tmp_path: Path) -> None:
    path = write_pipeline(tmp_path)
    path.write_text(path.read_text().replace("toy:0.1,0.5", "nowhere/model"))
    result = slimkit_command("run", path.name, "-q", "--trust-local-plugins", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "Error: model: no installed plugin can load 'nowhere/model' (fix: install slimkit-transformers "
        "(`slimkit install transformers`), or set model.format for a local file)"
    ]
    results = json.loads((tmp_path / "runs" / "p" / "results.json").read_text())
    assert (results["outcome"], results["exit_code"]) == ("bad_input", 2)
    assert results["reason"].startswith("model: no installed plugin can load")
    assert [s["status"] for s in results["steps"]] == ["not run", "not run"]


def test_a_run_killed_outright_leaves_a_record_that_says_it_did_not_finish(tmp_path: Path) -> None:
    """SIGKILL leaves no chance to write: the record written at the start says 'running' with the
    pid, never an earlier run's outcome."""
    path = write_pipeline(tmp_path)
    assert slimkit_command("run", path.name, "-q", "--trust-local-plugins", cwd=tmp_path).returncode == 0
    # The step now hangs (and, the plugin file being new, is built again rather than reused).
    hang = ODD_PLUGIN.replace(
        "def _act(where):\n", "def _act(where):\n    if where == 'step':\n        time.sleep(60)\n"
    )
    (tmp_path / "odd.py").write_text("import time\n" + hang)
    command = [sys.executable, "-c", "from slimkit.cli import main; main()", "run", path.name, "-q"]
    run = subprocess.Popen([*command, "--trust-local-plugins"], cwd=tmp_path)
    results_path, report = tmp_path / "runs" / "p" / "results.json", tmp_path / "runs" / "p" / "report.md"
    deadline = time.monotonic() + 30
    # results.json is written first, then the report: kill once both say 'running' (between the two
    # writes, the report still holds the earlier run's outcome for a moment).
    while time.monotonic() < deadline and not (
        json.loads(results_path.read_text())["outcome"] == "running" and "not finished" in report.read_text()
    ):
        time.sleep(0.1)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    results = json.loads(results_path.read_text())
    assert (results["outcome"], results["exit_code"]) == ("running", None)
    assert results["reason"].startswith(f"running in pid {run.pid} on ")
    assert "**Outcome: not finished**: running in pid" in (tmp_path / "runs" / "p" / "report.md").read_text()
