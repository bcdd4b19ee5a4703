"""The engines a package's model runs on: ONNX Runtime for ``onnx`` packages, OpenVINO for
``openvino`` ones. Each is built from the package folder and its manifest, names the model's
inputs, and turns a dict of int64 arrays into the first output (the logits)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# The INFERENCE_PRECISION_HINT slimkit measured an OpenVINO model with (f32 unless the export step
# chose otherwise); 'auto' leaves the CPU plugin its own default.
OPENVINO_HINTS = {"f32", "bf16", "f16"}


class OnnxBackend:
    def __init__(self, model: Path, *, threads: int | None, providers: Sequence[str] | None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.inter_op_num_threads = 1
        if threads is not None:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(model), options, providers=list(providers or ["CPUExecutionProvider"]))
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_name = self.session.get_outputs()[0].name

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run([self.output_name], inputs)[0]  # type: ignore[no-any-return]


class OpenVinoBackend:
    """One compiled model on OpenVINO's CPU plugin, set up as slimkit timed it: the latency hint,
    one stream, and the inference precision recorded in the manifest."""

    def __init__(self, model: Path, *, threads: int | None, precision: str) -> None:
        import openvino as ov  # type: ignore[import-untyped]

        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = threads
        if precision in OPENVINO_HINTS:
            config["INFERENCE_PRECISION_HINT"] = precision
        self.compiled = ov.Core().compile_model(str(model), "CPU", config)
        self.input_names = [port.get_any_name() for port in self.compiled.inputs]
        self.request = self.compiled.create_infer_request()

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        self.request.infer(inputs)
        # The request reuses its output buffer on the next call: hand out a copy.
        return self.request.get_output_tensor(0).data.copy()  # type: ignore[no-any-return]
