from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from slimkit.hardware import Hardware
from toy_plugin import ToyPlugin

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
HEAVY = ("torch", "transformers", "onnxruntime", "datasets")


@pytest.fixture(autouse=True)
def _no_autoload(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Installed plugins never leak into core tests; tests that need discovery opt back in.
    monkeypatch.setenv("SLIMKIT_LOAD_PLUGINS", "")
    monkeypatch.setenv("SLIMKIT_CACHE", str(tmp_path / "cache"))
    # The repository's registry/plugins.toml must not shape messages: no index unless a test writes one.
    monkeypatch.setenv("SLIMKIT_REGISTRY", str(tmp_path / "no-registry.toml"))
    monkeypatch.delenv("SLIMKIT_TRACE_HOOKS", raising=False)
    monkeypatch.delenv("SLIMKIT_TRUST_LOCAL_PLUGINS", raising=False)


@pytest.fixture(autouse=True)
def _stays_light() -> object:
    # The core's tests are pure Python: none of them may import a heavy library.
    before = {name for name in HEAVY if name in sys.modules}
    yield
    imported = sorted(name for name in HEAVY if name in sys.modules and name not in before)
    assert not imported, f"this test imported {imported}"


@pytest.fixture
def toy(register_plugin) -> ToyPlugin:  # type: ignore[no-untyped-def]
    plugin = ToyPlugin()
    register_plugin(plugin, name="toy")
    return plugin


@pytest.fixture
def hw() -> Hardware:
    """A fixed machine, so that no test depends on the one it runs on: x86_64 with AVX2 only, no CUDA."""
    return Hardware(
        cpu_model="Test CPU",
        arch="x86_64",
        logical_cores=8,
        physical_cores=4,
        cpu_flags=["avx2"],
        memory_bytes=16 * 2**30,
    )
