"""Every onnx technique against slimkit's conformance kit, on a tiny model of each family it declares."""

from slimkit.testing import conformance

test_conformance = conformance("onnx", configs={"onnx.quantize-static": {"calibration_examples": 32}})
