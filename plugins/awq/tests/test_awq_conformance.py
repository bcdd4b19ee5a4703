"""awq.quantize against slimkit's conformance kit, on a tiny model of each family it declares."""

import pytest

from slimkit.testing import conformance


@pytest.fixture(autouse=True)
def _two_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPTQMODEL_CPU_WORKERS", "2")  # GPTQModel (which reloads the result) needs 2 at least


test_conformance = conformance(
    "awq", configs={"awq.quantize": {"group_size": 32, "calibration_examples": 32, "max_length": 16}}
)
