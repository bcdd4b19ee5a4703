"""gptq.quantize against slimkit's conformance kit, on a tiny model of each family it declares."""

import pytest

from slimkit.testing import conformance


@pytest.fixture(autouse=True)
def _two_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPTQMODEL_CPU_WORKERS", "2")  # GPTQModel needs 2 CPU workers at least


test_conformance = conformance(
    "gptq",
    configs={"gptq.quantize": {"bits": 4, "group_size": 32, "calibration_examples": 32, "calibration_tokens": 16}},
)
