"""docs/compatibility.md is generated from the first-party techniques' declared families.

Every declared (technique, family) pair runs on a tiny model of the family in each plugin's own
suite, through slimkit's conformance kit (plugins/*/tests/test_*_conformance.py)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(importlib.util.find_spec("slimkit_onnx") is None, reason="needs the first-party plugins installed")
def test_compatibility_md_is_generated_from_the_declarations() -> None:
    check = subprocess.run(
        [sys.executable, str(REPO / "docs" / "gen_compatibility.py"), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
