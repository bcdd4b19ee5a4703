"""The `slimkit` command: exit codes, one line per error, never a traceback for a user's mistake."""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from slimkit import hardware as hardware_module
from slimkit.cli import cli
from toy_plugin import ToyPlugin

TESTS = Path(__file__).resolve().parent

# A project-local plugin file: Plugins.load_local registers the module, so the toy plugin's hooks
# are exposed as module attributes (bound methods keep their hookimpl markers).
TOY_LOCAL = f"""
import sys

sys.path.insert(0, {str(TESTS)!r})
from toy_plugin import ToyPlugin

_toy = ToyPlugin()
register_techniques = _toy.register_techniques
resolve_model = _toy.resolve_model
train = _toy.train
prune = _toy.prune
quantize = _toy.quantize
export = _toy.export
measure = _toy.measure
"""


def pipeline_file(folder: Path, *steps: str, name: str = "cli", extra: str = "") -> Path:
    (folder / "toy_local.py").write_text(TOY_LOCAL)
    lines = [
        f'name = "{name}"',
        'device = "cpu"',
        'plugins = ["toy_local.py"]',
        f'output_dir = "runs/{name}"',
        'model = { source = "toy:0.1,0.5,-0.3,0.04", format = "toy" }',
        extra,
    ]
    for technique in steps:
        lines += ["[[steps]]", f'technique = "{technique}"']
    path = folder / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def local_version(folder: Path) -> str:
    """The version slimkit gives a local plugin file: a hash of its content."""
    return "file-" + hashlib.sha256((folder / "toy_local.py").read_bytes()).hexdigest()[:12]


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="slimkit")


@pytest.fixture(autouse=True)
def _trust_the_toy_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    # These tests' pipelines name the local toy plugin file; the trust opt-in itself is tested
    # with the variable unset (test_local_plugin_code_runs_only_when_trusted).
    monkeypatch.setenv("SLIMKIT_TRUST_LOCAL_PLUGINS", "1")


@pytest.fixture(autouse=True)
def _forget_local_modules() -> Iterator[None]:
    yield
    sys.modules.pop("slimkit_local_toy_local", None)


class ToyEntryPoint:
    """Stands in for an installed distribution that provides the toy plugin."""

    name = "toy"
    module = "toy_plugin"
    dist = None

    def load(self) -> Any:
        return ToyPlugin()


@pytest.fixture
def installed_toy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(md, "entry_points", lambda *, group: [ToyEntryPoint()])
    monkeypatch.delenv("SLIMKIT_LOAD_PLUGINS")


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "checkout"
    (root / "registry").mkdir(parents=True)
    (root / "plugins" / "fast").mkdir(parents=True)
    (root / "plugins" / "fast" / "pyproject.toml").write_text("[project]\nname = 'slimkit-fast'\n")
    path = root / "registry" / "plugins.toml"
    path.write_text(
        """
[[plugin]]
name = "fast"
distribution = "slimkit-fast"
path = "plugins/fast"
summary = "Fast things."
techniques = ["fast.quantize"]
hardware = ["cpu", "avx512_vnni"]

[[plugin]]
name = "remote"
distribution = "slimkit-remote"
path = "plugins/remote"
summary = "Not in this checkout."
install_args = ["--no-deps"]

[[plugin]]
name = "old"
distribution = "slimkit-old"
summary = "Needs a library whose own dependencies cannot install."
no_deps = ["oldlib==1.0"]
"""
    )
    monkeypatch.setenv("SLIMKIT_REGISTRY", str(path))
    return root


def test_help_lists_the_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: slimkit [OPTIONS] COMMAND [ARGS]...")
    for command in ("hardware", "install", "plan", "plugins", "report", "run", "schema", "techniques"):
        assert f"  {command} " in result.stdout
    assert invoke("-h").stdout == result.stdout
    assert invoke("--version").stdout == f"slimkit, version {md.version('slimkit')}\n"


def test_plugins_with_none_installed() -> None:
    result = invoke("plugins")
    assert result.exit_code == 0
    installed = sorted(ep.name for ep in md.entry_points(group="slimkit"))
    if installed:  # SLIMKIT_LOAD_PLUGINS="" (conftest) skips them all, and says so
        assert result.stdout.startswith("No plugins loaded: SLIMKIT_LOAD_PLUGINS skips ")
        assert all(name in result.stdout for name in installed)
    else:
        assert result.stdout == "No plugins installed. `slimkit plugins --available` lists plugins you can install.\n"
    assert json.loads(invoke("plugins", "--json").stdout) == []


def test_plugins_all_shows_builtins_and_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(md, "entry_points", lambda *, group: [ToyEntryPoint()])
    result = invoke("plugins", "--all", "--json")
    assert result.exit_code == 0
    records = json.loads(result.stdout)
    assert [(r["name"], r["origin"], r["status"], r["error"]) for r in records] == [
        ("disk", "builtin", "loaded", None),
        ("dispatch", "builtin", "loaded", None),
        ("toy", "entry-point", "skipped", "not in SLIMKIT_LOAD_PLUGINS"),
    ]
    assert records[0]["hooks"] == ["measure", "resolve_model"]
    text = invoke("plugins", "--all").stdout
    assert text.splitlines()[0] == f"disk (slimkit {md.version('slimkit')}): loaded"
    assert "toy (entry-point): skipped\n  error: not in SLIMKIT_LOAD_PLUGINS\n" in text


@pytest.mark.usefixtures("installed_toy")
def test_plugins_lists_installed_ones() -> None:
    result = invoke("plugins")
    assert result.exit_code == 0
    assert result.stdout == (
        "toy (entry-point): loaded\n  techniques: toy.export, toy.fail, toy.finetune, toy.prune, toy.round\n"
    )
    (record,) = json.loads(invoke("plugins", "--json").stdout)
    assert record["name"] == "toy" and record["status"] == "loaded"
    assert "measure" in record["hooks"] and "register_techniques" in record["hooks"]


def test_plugins_available_reads_the_registry(registry: Path) -> None:
    result = invoke("plugins", "--available")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"{'fast':<14} {'slimkit-fast':<22} Fast things.",
        f"{'':<14} techniques: fast.quantize; hardware: cpu, avx512_vnni",
        f"{'remote':<14} {'slimkit-remote':<22} Not in this checkout.",
        f"{'':<14} techniques: ; hardware: ",
        f"{'old':<14} {'slimkit-old':<22} Needs a library whose own dependencies cannot install.",
        f"{'':<14} techniques: ; hardware: ",
    ]
    listed = [e["name"] for e in json.loads(invoke("plugins", "--available", "--json").stdout)]
    assert listed == ["fast", "remote", "old"]


def test_plugins_available_without_a_registry() -> None:
    assert invoke("plugins", "--available").stdout == (
        "No registry index found (set SLIMKIT_REGISTRY to a plugins.toml).\n"
    )


def test_techniques() -> None:
    assert invoke("techniques").stdout == (
        "No techniques installed. `slimkit plugins --available` lists plugins that provide some.\n"
    )


@pytest.mark.usefixtures("installed_toy")
def test_techniques_of_an_installed_plugin() -> None:
    result = invoke("techniques", "--stage", "quantize")
    assert result.exit_code == 0
    assert result.stdout == (
        "toy.fail [quantize] toy/toyx -> same  (toy)\n"
        "  Always raises.\n"
        "  runs on: cpu\n"
        "toy.round [quantize] toy -> same  (toy)\n"
        "  Round weights.\n"
        "  order: after prune, train, distill\n"
        "  runs on: cpu\n"
    )
    described = json.loads(invoke("techniques", "--json").stdout)
    assert [t["name"] for t in described] == ["toy.export", "toy.fail", "toy.finetune", "toy.prune", "toy.round"]
    assert described[4]["config_schema"]["properties"]["decimals"]["maximum"] == 6


@pytest.fixture
def fake_machine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # `slimkit hardware` looks for CUDA through torch; the core's tests never import torch.
    monkeypatch.setattr(hardware_module, "_cuda_devices", lambda: ([], False))
    hardware_module.probe.cache_clear()
    yield
    hardware_module.probe.cache_clear()


@pytest.mark.usefixtures("fake_machine")
def test_hardware() -> None:
    result = invoke("hardware", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert set(data) == {
        "cpu_model",
        "arch",
        "logical_cores",
        "physical_cores",
        "cpu_flags",
        "memory_bytes",
        "cuda",
        "cuda_checked",
    }
    assert data["logical_cores"] == os.cpu_count()
    assert (data["cuda"], data["cuda_checked"]) == ([], False)
    text = invoke("hardware").stdout
    assert text.startswith(f"CPU: {data['cpu_model']} ({data['arch']}), ")
    assert text.endswith("CUDA: none (torch not installed, not checked)\n")


def test_plan_valid(tmp_path: Path) -> None:
    path = pipeline_file(tmp_path, "toy.prune", "toy.round")
    result = invoke("plan", path)
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "Pipeline 'cli' on cpu; source format toy\n"
        "  1. toy.prune: toy.prune [prune] toy -> toy  (local:toy_local)\n"
        "     named in the pipeline\n"
        "  2. toy.round: toy.round [quantize] toy -> toy  (local:toy_local)\n"
        "     named in the pipeline\n"
        "warning: plugins: runs code from local plugin file(s) toy_local.py (trusted)\n"
        "The plan is valid.\n"
    )
    assert result.stderr == ""
    data = json.loads(invoke("plan", path, "--json").stdout)
    assert data["ok"] is True
    assert [s["technique"] for s in data["steps"]] == ["toy.prune", "toy.round"]


ORDER_PROBLEMS = [
    "step 4 (toy.prune): toy.prune needs toy input but step 3 gives toyx "
    "(fix: move it before step 3 (toy.export), which turns toy into toyx)",
    "step 1 (toy.round) runs before step 2 (toy.finetune), but toy.round declares it must come after 'train' "
    '(fix: reorder the steps, or set order = "auto")',
    "step 1 (toy.round) runs before step 4 (toy.prune), but toy.round declares it must come after 'prune' "
    '(fix: reorder the steps, or set order = "auto")',
    "step 2 (toy.finetune) runs before step 4 (toy.prune), but toy.prune declares it must come before 'train' "
    '(fix: reorder the steps, or set order = "auto")',
]


def test_plan_invalid_lists_every_problem(tmp_path: Path) -> None:
    path = pipeline_file(tmp_path, "toy.round", "toy.finetune", "toy.missing")
    result = invoke("plan", path)
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        "problem: step 3 (toy.missing): unknown technique 'toy.missing' (installed: toy.export, toy.fail, "
        "toy.finetune, toy.prune, toy.round; see `slimkit techniques`)",
    ]
    path = pipeline_file(tmp_path, "toy.round", "toy.finetune", "toy.export", "toy.prune")
    result = invoke("plan", path)
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [f"problem: {p}" for p in ORDER_PROBLEMS]
    assert "The plan is valid." not in result.stdout
    result = invoke("plan", path, "--json")
    assert result.exit_code == 3
    assert json.loads(result.stdout)["problems"] == ORDER_PROBLEMS


def test_run_and_report(tmp_path: Path) -> None:
    path = pipeline_file(tmp_path, "toy.prune", "toy.round")
    result = invoke("run", path)
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "cli"
    assert result.stdout.startswith("# slimkit run: cli\n")
    assert result.stdout.endswith(f"Results: {run_dir / 'results.json'}\n")
    quiet = invoke("run", path, "-q")  # only the final line; the report files are still written
    assert (quiet.exit_code, quiet.stdout) == (0, f"Results: {run_dir / 'results.json'}\n")
    report = invoke("report", run_dir)
    assert report.exit_code == 0
    assert report.stdout == (run_dir / "report.md").read_text() + "\n"
    assert json.loads(invoke("report", run_dir, "--json").stdout) == json.loads((run_dir / "results.json").read_text())
    assert invoke("report", run_dir / "results.json").stdout == report.stdout
    # Again: every step is reused.
    again = invoke("run", path, "--json")
    assert again.exit_code == 0
    assert [s["status"] for s in json.loads(again.stdout)["steps"]] == ["reused", "reused"]
    # Editing the local plugin changes its version, so its steps are computed again.
    sys.modules.pop("slimkit_local_toy_local", None)
    with (tmp_path / "toy_local.py").open("a") as fh:
        fh.write("# edited\n")
    edited = json.loads(invoke("run", path, "--json").stdout)
    assert [s["status"] for s in edited["steps"]] == ["done", "done"]
    assert {s["plugin_version"] for s in edited["steps"]} == {local_version(tmp_path)}


def test_run_with_output_and_force(tmp_path: Path) -> None:
    path = pipeline_file(tmp_path, "toy.prune")
    out = tmp_path / "elsewhere"
    assert invoke("run", path, "-q", "-o", out).exit_code == 0
    assert (out / "results.json").is_file()
    result = invoke("run", path, "--json", "-o", out, "--force")
    assert [s["status"] for s in json.loads(result.stdout)["steps"]] == ["done"]


def test_run_failing_pipeline_exits_1(tmp_path: Path) -> None:
    path = pipeline_file(tmp_path, "toy.prune", "toy.fail", "toy.round")
    result = invoke("run", path)
    assert result.exit_code == 1
    assert f"| 2 | toy.fail | toy.fail | local:toy_local {local_version(tmp_path)} | failed |" in result.stdout
    assert "Traceback" not in result.output
    data = json.loads((tmp_path / "runs" / "cli" / "results.json").read_text())
    assert [s["status"] for s in data["steps"]] == ["done", "failed", "skipped"]


def test_run_refused_plan_exits_3_with_one_line_per_problem(tmp_path: Path) -> None:
    path = pipeline_file(tmp_path, "toy.round", "toy.finetune", "toy.export", "toy.prune")
    result = invoke("run", path, "-q")
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        "Error: the pipeline cannot run: 4 problem(s)",
        *[f"problem: {p}" for p in ORDER_PROBLEMS],
    ]
    # Nothing computed, but the refusal is on record where an earlier run's results would be.
    run_dir = tmp_path / "runs" / "cli"
    assert not (run_dir / "steps").exists()
    data = json.loads((run_dir / "results.json").read_text())
    assert (data["outcome"], data["exit_code"]) == ("refused", 3)
    assert (
        "**Outcome: refused by the planner (nothing was computed)** (exit code 3)"
        in (run_dir / "report.md").read_text()
    )


def test_malformed_pipeline_file_exits_2_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('model = "toy:1"\nspeed = 3\n[[steps]]\ngoal = "speed"\n[[steps]]\ntechnique = "a.b"\nx = 1\n')
    for command in ("plan", "run"):
        result = invoke(command, path)
        assert result.exit_code == 2
        assert result.stdout == ""
        assert result.stderr.splitlines() == [
            f"Error: {path}: step 1: a step needs 'technique' (e.g. 'onnx.export') or 'stage' (e.g. 'quantize')",
            f"Error: {path}: step 2 (a.b): x: unknown field (check the spelling; `slimkit schema` lists the fields)",
            f"Error: {path}: speed: unknown field (check the spelling; `slimkit schema` lists the fields)",
        ]
    result = invoke("plan", tmp_path / "absent.toml")
    assert (result.exit_code, result.stderr) == (2, f"Error: no such file: {tmp_path / 'absent.toml'}\n")


def test_report_errors(tmp_path: Path) -> None:
    result = invoke("report", tmp_path)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: no results.json in {tmp_path} (fix: pass the run directory that `slimkit run` printed)\n"
    )
    (tmp_path / "results.json").write_text("{not json")
    result = invoke("report", tmp_path)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {tmp_path / 'results.json'} is not a results file: ")
    shape = f"Error: {tmp_path / 'results.json'} does not have the shape slimkit writes: "
    for document, problem in [
        ({"steps": 5, "artifacts": "x"}, "schema: Field required"),
        ({"schema": "slimkit.results/2", "pipeline": "p", "steps": 5}, "steps: Input should be a valid list"),
        ({"schema": "slimkit.results/9", "pipeline": "p"}, "schema: Input should be 'slimkit.results/1' or "),
        ({"schema": "slimkit.study/2", "study": "s", "variants": [{"name": "v"}]}, "variants.0.status: Field required"),
        ({"schema": "slimkit.results/1", "pipeline": "p", "artifacts": [{"label": "a"}]}, "artifacts.0.key: "),
    ]:
        (tmp_path / "results.json").write_text(json.dumps(document))
        result = invoke("report", tmp_path)
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert result.stderr.startswith(shape + problem), result.stderr
        assert len(result.stderr.splitlines()) == 1


def test_techniques_refuses_an_unknown_stage() -> None:
    result = invoke("techniques", "--stage", "bogus")
    assert result.exit_code == 2 and "'bogus' is not one of 'train', 'prune'" in result.stderr


def test_schema() -> None:
    result = invoke("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert "steps" in schema["properties"]
    result = invoke("schema", "--technique", "toy.round")
    assert result.exit_code == 2
    assert result.stderr == "Error: unknown technique 'toy.round' (fix: `slimkit techniques` lists installed ones)\n"


@pytest.mark.usefixtures("installed_toy")
def test_schema_of_a_technique() -> None:
    result = invoke("schema", "--technique", "toy.round")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["properties"]["decimals"] == {
        "default": 1,
        "description": "Decimals kept.",
        "maximum": 6,
        "minimum": 0,
        "title": "Decimals",
        "type": "integer",
    }


def test_install_dry_run(registry: Path) -> None:
    result = invoke("install", "fast", "--dry-run")
    assert result.exit_code == 0
    assert result.stdout == f"{sys.executable} -m pip install {registry / 'plugins' / 'fast'}\n"
    # By distribution name too; a plugin not in this checkout installs from the package index.
    assert invoke("install", "slimkit-fast", "--dry-run").stdout == result.stdout
    assert (
        invoke("install", "remote", "--dry-run").stdout == f"{sys.executable} -m pip install --no-deps slimkit-remote\n"
    )
    assert invoke("install", "old", "--dry-run").stdout == (
        f"{sys.executable} -m pip install slimkit-old\n{sys.executable} -m pip install --no-deps oldlib==1.0\n"
    )
    result = invoke("install", "nope", "--dry-run")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: no plugin named 'nope' in the registry index (known: fast, remote, old) "
        "(fix: `slimkit plugins --available` lists them; any other plugin installs with pip)\n"
    )


def test_invalid_registry_is_one_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "plugins.toml"
    path.write_text("[[plugin]]\nname = 'x'\n")
    monkeypatch.setenv("SLIMKIT_REGISTRY", str(path))
    result = invoke("plugins", "--available")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: the plugin index {path} is invalid: ")
    assert len(result.stderr.splitlines()) == 1


# -- the installed command, in a fresh process ---------------------------------------------------


def slimkit_command(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("slimkit")
    command = [str(script)] if script.is_file() else [sys.executable, "-c", "from slimkit.cli import main; main()"]
    return subprocess.run(
        [*command, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
        preexec_fn=_interruptible,
    )


def _interruptible() -> None:
    """Ctrl-C as a user's terminal delivers it: a shell starting pytest in the background (`cmd &`)
    leaves SIGINT ignored, the child would inherit that, and the interruption tests would not run."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_command_help_in_a_subprocess(tmp_path: Path) -> None:
    result = slimkit_command("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "slimkit plan pipeline.toml" in result.stdout
    assert result.stderr == ""


def test_command_run_and_errors_in_a_subprocess(tmp_path: Path) -> None:
    path = pipeline_file(tmp_path, "toy.prune", "toy.fail")
    result = slimkit_command("run", path.name, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert f"| 2 | toy.fail | toy.fail | local:toy_local {local_version(tmp_path)} | failed |" in result.stdout
    assert (tmp_path / "runs" / "cli" / "report.md").is_file()

    bad = tmp_path / "bad.yaml"
    bad.write_text("model: toy:1\nsteps:\n  - {name: x}\n")
    result = slimkit_command("plan", bad.name, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "Error: bad.yaml: step 1 (x): a step needs 'technique' (e.g. 'onnx.export') or 'stage' (e.g. 'quantize')\n"
    )


def test_local_plugin_code_runs_only_when_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLIMKIT_TRUST_LOCAL_PLUGINS")
    path = pipeline_file(tmp_path, "toy.prune")
    for command in (["plan"], ["run", "-q"]):
        result = invoke(*command, path)
        assert result.exit_code == 3
        assert "problem: plugins: the file names local plugin code (toy_local.py)" in result.stderr
        assert "slimkit_local_toy_local" not in sys.modules  # the file was never imported
    assert invoke("plan", path, "--trust-local-plugins").exit_code == 0
    assert invoke("run", path, "-q", "--trust-local-plugins").exit_code == 0


@pytest.mark.parametrize("where", ["file", "inside a file", "unwritable"])
def test_run_output_that_cannot_hold_a_run_is_one_line(tmp_path: Path, where: str) -> None:
    path = pipeline_file(tmp_path, "toy.prune")
    target = tmp_path / "taken"
    if where == "unwritable":
        if os.geteuid() == 0:
            pytest.skip("root may write into a read-only folder")
        target.mkdir()
        target.chmod(0o500)
        target = target / "run"
    else:
        target.write_text("not a folder")
        target = target if where == "file" else target / "run"
    result = invoke("run", path, "-q", "-o", target)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [result.stderr.strip()] and result.stderr.startswith("Error: -o ")
