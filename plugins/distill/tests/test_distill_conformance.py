"""distill.kd against slimkit's conformance kit, on a tiny model of each family it declares."""

from slimkit.testing import conformance

test_conformance = conformance(
    "distill",
    configs={
        "distill.kd": {
            "epochs": 1,
            "batch_size": 16,
            "learning_rate": 5e-3,
            "max_length": 16,
            "student": {"layers": [1]},
        }
    },
)
