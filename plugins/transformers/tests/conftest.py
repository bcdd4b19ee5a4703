from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated(offline_slimkit: None) -> None:
    """Only the plugins a test registers; no hub; caches per test."""


@pytest.fixture
def transformers_plugin(register_plugin):  # type: ignore[no-untyped-def]
    import slimkit_transformers

    register_plugin(slimkit_transformers, name="transformers")
    return slimkit_transformers


def needs_shared_data() -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not SHARED_DATA.is_dir(), reason=f"real data not found at {SHARED_DATA} (see ../shared/data/README.md)"
    )
