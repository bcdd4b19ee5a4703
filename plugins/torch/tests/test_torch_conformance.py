"""Every torch technique against slimkit's conformance kit, on a tiny model of each family it declares."""

from slimkit.testing import conformance

test_conformance = conformance(
    "torch",
    configs={
        "torch.structured-prune": {"ffn_ratio": 0.5, "layers": 1},
        "torch.magnitude-prune": {"sparsity": 0.5},
        "torch.low-rank-embeddings": {"rank": 4},
        # The legacy backend: torchao's compiles each model for a minute, and quantizes the same Linears.
        "torch.dynamic-int8": {"backend": "torch-ao-legacy"},
    },
)
