"""The OpenVINO predictor that slimkit-transformers' measurement protocol times.

One compiled model per artifact, on the CPU plugin: ``INFERENCE_NUM_THREADS`` = the protocol's
thread count, the latency performance hint and one stream (one request at a time, as the protocol
calls it), and the inference precision the export step chose (f32 unless told otherwise, so the
CPU plugin does not silently compute in bf16). ``encode`` uses the tokenizer saved beside the IR
and returns int64 arrays named as the model's inputs; it is never timed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimkit_openvino import ir

if TYPE_CHECKING:
    from numpy.typing import NDArray


class OpenVinoPredictor:
    runtime = "openvino"

    def __init__(self, path: Path, *, device: str = "cpu", threads: int = 1) -> None:
        import openvino as ov  # type: ignore[import-untyped]

        from slimkit_transformers.models import load_tokenizer

        self.path = path
        manifest = ir.read_manifest(path)
        precision = str(manifest.get("inference_precision", "f32"))
        self.compiled = ir.compile_model(path, threads=threads, precision=precision, device=device)
        self.input_names = ir.input_names(self.compiled)
        self.request = self.compiled.create_infer_request()
        self.tokenizer = load_tokenizer(ir.folder_of(path))
        self.facts: dict[str, Any] = {
            "runtime": "openvino",
            "openvino": ov.get_version().split("-")[0],
            "device": "CPU",
            "dtype": manifest.get("precision", "float32"),
            "inference_num_threads": int(self.compiled.get_property("INFERENCE_NUM_THREADS")),
            "num_streams": int(self.compiled.get_property("NUM_STREAMS")),
            "performance_hint": str(self.compiled.get_property("PERFORMANCE_HINT")),
            "inference_precision": _type_name(self.compiled.get_property("INFERENCE_PRECISION_HINT")),
        }
        # How the CPU plugin quantizes activations on the fly for compressed (4- or 8-bit) weights.
        if "DYNAMIC_QUANTIZATION_GROUP_SIZE" in self.compiled.get_property("SUPPORTED_PROPERTIES"):
            group = self.compiled.get_property("DYNAMIC_QUANTIZATION_GROUP_SIZE")
            self.facts["dynamic_quantization_group_size"] = int(group)
        for key in ("params", "embedding_share"):
            if key in manifest:
                self.facts[key] = manifest[key]
        # Summed from the IR's own head Constants when the step wrote it (reading the model again
        # here would add its size to the memory probe's peak).
        if manifest.get("head_constants") and manifest.get("head_checksum") is not None:
            self.facts["head_checksum"] = manifest["head_checksum"]

    def encode(self, texts: list[str], *, max_length: int, pad_to_max: bool) -> dict[str, Any]:
        return ir.encode(self.tokenizer, texts, self.input_names, max_length=max_length, pad_to_max=pad_to_max)

    def __call__(self, inputs: dict[str, Any]) -> NDArray[Any]:
        self.request.infer(inputs)
        # The request reuses its output buffer on the next call: hand out a copy.
        return self.request.get_output_tensor(0).data.copy()  # type: ignore[no-any-return]

    def close(self) -> None:
        del self.request
        del self.compiled


def _type_name(value: Any) -> str:
    """'f32' for OpenVINO's <Type: 'float32'> (a property the compiled model reports as a Type)."""
    name = getattr(value, "get_type_name", None)
    return str(name()) if callable(name) else str(value)
