from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Only the plugins a test registers; converted sources cached per test.
    monkeypatch.setenv("SLIMKIT_LOAD_PLUGINS", "")
    monkeypatch.setenv("SLIMKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.fixture
def transformers_plugin(register_plugin):  # type: ignore[no-untyped-def]
    import slimkit_transformers

    register_plugin(slimkit_transformers, name="transformers")
    return slimkit_transformers


def needs_shared_data() -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not SHARED_DATA.is_dir(), reason=f"real data not found at {SHARED_DATA} (see ../shared/data/README.md)"
    )
