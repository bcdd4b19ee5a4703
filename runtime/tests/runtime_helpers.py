"""Build what the runtime tests serve: a tiny BERT fine-tuned on a tiny multi-label task by slimkit,
run through the given steps, measured and packaged with ``slimkit package``."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def package_tiny(root: Path, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The package folder, the run folder and the task of a tiny model run through ``steps``."""
    import pytest
    from click.testing import CliRunner

    from slimkit.cli import cli
    from slimkit_transformers.testing import FAST_MEASURE, build_tiny_model, write_tiny_task

    task = write_tiny_task(root / "task", multi_label=True)
    finetune = {"name": "finetune", "technique": "transformers.finetune",
                "config": {"epochs": 3, "batch_size": 16, "learning_rate": 1e-3, "max_length": 16}}  # fmt: skip
    model = str(build_tiny_model("bert", root / "bert"))
    pipeline = {"name": "rt", "model": model, "task": task | {"tune_threshold": True}, "steps": [finetune, *steps],
                "baseline": "finetune", "measure": FAST_MEASURE, "device": "cpu",
                "output_dir": str(root / "run")}  # fmt: skip
    (root / "p.json").write_text(json.dumps(pipeline))
    with pytest.MonkeyPatch.context() as env:
        env.delenv("SLIMKIT_LOAD_PLUGINS", raising=False)  # every installed plugin
        env.setenv("SLIMKIT_CACHE", str(root / "cache"))
        env.setenv("HF_HUB_OFFLINE", "1")
        ran = CliRunner().invoke(cli, ["run", str(root / "p.json"), "-q"])
        assert ran.exit_code == 0, ran.output
        done = CliRunner().invoke(cli, ["package", str(root / "run"), "-o", str(root / "pkg")])
        assert done.exit_code == 0, done.output
    return {"folder": root / "pkg", "run": root / "run", "task": task}


def serve_in_a_clean_process(folder: Path) -> list[str]:
    """Load and serve the package in a fresh interpreter; the heavy modules it imported (none expected)."""
    script = (
        "import sys; from slimkit_runtime import Classifier; "
        f"c = Classifier.load({str(folder)!r}); print(c.predict(['i love this'])); "
        "print([m for m in ('torch', 'transformers', 'slimkit') if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return list(ast.literal_eval(done.stdout.strip().splitlines()[-1]))
