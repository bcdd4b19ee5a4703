"""Every textpruner technique against slimkit's conformance kit, on a tiny model of each family it declares."""

from slimkit.testing import conformance

test_conformance = conformance(
    "textpruner",
    configs={
        "textpruner.transformer": {
            "target_num_of_heads": 1,
            "target_ffn_size": 24,
            "calibration_examples": 40,
            "batch_size": 16,
        }
    },
)
