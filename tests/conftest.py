from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from toy_plugin import ToyPlugin  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _no_autoload(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Installed plugins never leak into core tests; tests that need discovery opt back in.
    monkeypatch.setenv("SLIMKIT_LOAD_PLUGINS", "")
    monkeypatch.setenv("SLIMKIT_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def toy(register_plugin) -> ToyPlugin:  # type: ignore[no-untyped-def]
    plugin = ToyPlugin()
    register_plugin(plugin, name="toy")
    return plugin
