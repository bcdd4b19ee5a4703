from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _isolated(offline_slimkit: None) -> None:
    """Only the plugins a test registers; no hub; caches per test."""


@pytest.fixture
def onnx_plugins(register_plugin: Any) -> Any:
    """slimkit-transformers (sources, tasks, fine-tuning, the protocol) and slimkit-onnx."""
    import slimkit_onnx
    import slimkit_transformers

    register_plugin(slimkit_transformers, name="transformers")
    register_plugin(slimkit_onnx, name="onnx")
    return slimkit_onnx
