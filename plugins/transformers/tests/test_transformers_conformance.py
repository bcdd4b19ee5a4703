"""transformers.finetune against slimkit's conformance kit, on a tiny model of each family it declares."""

from slimkit.testing import conformance

test_conformance = conformance(
    "transformers", configs={"transformers.finetune": {"epochs": 1, "batch_size": 16, "max_length": 16}}
)
