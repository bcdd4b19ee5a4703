"""Every openvino technique against slimkit's conformance kit, on a tiny model of each family it declares."""

from slimkit.testing import conformance

test_conformance = conformance("openvino", configs={"openvino.int8": {"calibration_examples": 32}})
