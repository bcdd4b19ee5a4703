from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _isolated(offline_slimkit: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the plugins a test registers; no hub; caches per test; GPTQModel needs 2 CPU workers at least."""
    monkeypatch.setenv("GPTQMODEL_CPU_WORKERS", "2")


@pytest.fixture
def plugins(register_plugin: Any) -> Any:
    import slimkit_gptq
    import slimkit_transformers

    register_plugin(slimkit_transformers, name="transformers")
    register_plugin(slimkit_gptq, name="gptq")
    return slimkit_gptq
