"""The terminal shows slimkit's own lines; what libraries print goes to the run's log.txt.

Run as users run it, in a fresh process (file descriptors are what is redirected), on a tiny model
through real libraries: the Trainer's loss dicts and progress bars, datasets' bars, torchao's
loader messages. -v shows them; -q leaves only the final line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# The display's lines on standard error: steps, warnings, the phases.
DISPLAY = ("▶", "✓", "↺", "✗", "!", "…", "loading model", "measuring")
NOISE = ("it/s]", "{'loss'", "Failed to load", "Warning", "warnings.warn", "Casting the dataset", "Loading weights")


@pytest.fixture
def slimkit_run(tmp_path: Path, tiny_bert: Path, tiny_task: dict[str, Any]) -> Any:
    steps = [{"name": "finetune", "technique": "transformers.finetune",
              "config": {"epochs": 1, "batch_size": 16, "max_length": 16}},
             {"name": "int8", "technique": "torch.dynamic-int8", "config": {"backend": "torch-ao-legacy"}}]  # fmt: skip
    pipeline = {"name": "quiet", "model": str(tiny_bert), "task": tiny_task, "device": "cpu", "steps": steps,
                "baseline": "finetune", "measure": {"latency": False}, "output_dir": str(tmp_path / "run")}  # fmt: skip
    (tmp_path / "p.json").write_text(json.dumps(pipeline))
    env = {k: v for k, v in os.environ.items() if k != "SLIMKIT_LOAD_PLUGINS"}

    def run(*flags: str) -> subprocess.CompletedProcess[str]:
        command = [str(Path(sys.executable).parent / "slimkit"), "run", str(tmp_path / "p.json"), *flags]
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)

    return run


def test_the_console_shows_only_slimkit_lines(slimkit_run: Any, tmp_path: Path) -> None:
    done = slimkit_run()
    assert done.returncode == 0, done.stderr[-2000:]
    report = set((tmp_path / "run" / "report.md").read_text().splitlines())
    printed = [line for line in done.stdout.splitlines() if line.strip()]
    assert [line for line in printed if line not in report and not line.startswith("Results: ")] == []
    shown = [line for line in done.stderr.splitlines() if line.strip()]
    assert [line for line in shown if not line.startswith(DISPLAY) or any(n in line for n in NOISE)] == []
    assert any(line.startswith("✓ ") and "finetune" in line for line in shown)
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "{'loss'" in log or "train_runtime" in log  # the Trainer's own report went to the log


def test_quiet_prints_the_final_line_and_verbose_the_libraries(slimkit_run: Any) -> None:
    quiet = slimkit_run("-q")
    assert quiet.returncode == 0
    assert (quiet.stdout + quiet.stderr).strip().splitlines() == [quiet.stdout.strip().splitlines()[-1]]
    assert quiet.stdout.strip().startswith("Results: ")
    verbose = slimkit_run("-v", "--force")
    assert verbose.returncode == 0
    assert any(n in verbose.stdout + verbose.stderr for n in NOISE)
