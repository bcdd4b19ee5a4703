"""The plugin's declarations, and that importing it stays cheap."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


def test_importing_the_plugin_imports_nothing_heavy() -> None:
    code = (
        "import json, sys, slimkit_textpruner\n"
        "print(json.dumps([m for m in ('torch', 'transformers', 'textpruner', 'numpy') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout.splitlines()[-1]) == []


def test_techniques_are_declared_honestly(plugins: Any, slimkit_plugins: Any) -> None:
    vocabulary = slimkit_plugins.techniques.get("textpruner.vocabulary")
    transformer = slimkit_plugins.techniques.get("textpruner.transformer")
    assert vocabulary.plugin == transformer.plugin == "textpruner"
    assert (vocabulary.stage, transformer.stage) == ("prune", "prune")
    assert vocabulary.consumes == transformer.consumes == ["transformers"]
    assert vocabulary.hardware.speedup_devices == []  # smaller, not faster
    assert "transformers>=4.45,<5" in transformer.requires
    # A declaration plus a function: no stage hook; only the transformer pruning must have a task.
    assert [t.load_implementation().__name__ for t in (vocabulary, transformer)] == [  # type: ignore[union-attr]
        "prune_vocabulary",
        "prune_transformer",
    ]
    assert (vocabulary.needs_task, transformer.needs_task) == (False, True)
    assert "prune" not in slimkit_plugins.records["textpruner"].hooks
    assert set(vocabulary.config.model_fields) == {
        "splits",
        "texts",
        "text_files",
        "tokens",
        "min_count",
        "check_texts",
    }
