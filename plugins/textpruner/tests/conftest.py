from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated(offline_slimkit: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TQDM_DISABLE", "1")


@pytest.fixture
def plugins(register_plugin):  # type: ignore[no-untyped-def]
    import slimkit_textpruner
    import slimkit_transformers

    register_plugin(slimkit_transformers, name="transformers")
    register_plugin(slimkit_textpruner, name="textpruner")
    return slimkit_textpruner
