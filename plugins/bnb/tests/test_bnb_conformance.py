"""Every bnb technique against slimkit's conformance kit, on a tiny model of each family it declares."""

from slimkit.testing import conformance

test_conformance = conformance("bnb")
