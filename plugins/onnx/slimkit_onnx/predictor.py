"""The ONNX Runtime predictor that slimkit-transformers' measurement protocol times.

One InferenceSession per artifact: ``intra_op_num_threads`` = the protocol's thread count, one
inter-op thread, sequential execution, spinning off (so ORT threads do not eat into the next
block's time). ``encode`` uses the tokenizer saved beside the graph and returns int64 arrays named
as the graph's inputs; it is never timed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimkit_onnx import graph

if TYPE_CHECKING:
    import numpy as np


class OnnxPredictor:
    runtime = "onnxruntime"

    def __init__(self, path: Path, *, device: str = "cpu", threads: int = 1) -> None:
        import onnxruntime as ort

        from slimkit_transformers.models import load_tokenizer

        self.path = path
        file = graph.model_file(path)
        options, session_facts = graph.session_options(threads)
        self.session = ort.InferenceSession(str(file), options, providers=graph.providers_for(device))
        self.input_names = graph.input_names(self.session)
        self.output_name = self.session.get_outputs()[0].name
        self.tokenizer = load_tokenizer(graph.folder_of(path))
        manifest = graph.read_manifest(path)
        self.facts: dict[str, Any] = {
            "runtime": "onnxruntime",
            "onnxruntime": ort.__version__,
            "providers": self.session.get_providers(),
            "dtype": manifest.get("precision", "float32"),
            **session_facts,
        }
        for key in ("params", "embedding_share"):
            if key in manifest:
                self.facts[key] = manifest[key]
        # Summed from the graph's own initializers when the step wrote it (loading the graph again
        # here would add its size to the memory probe's peak).
        if manifest.get("head_initializers") and manifest.get("head_checksum") is not None:
            self.facts["head_checksum"] = manifest["head_checksum"]

    def encode(self, texts: list[str], *, max_length: int, pad_to_max: bool) -> dict[str, Any]:
        return graph.encode(self.tokenizer, texts, self.input_names, max_length=max_length, pad_to_max=pad_to_max)

    def __call__(self, inputs: dict[str, Any]) -> np.ndarray:
        return self.session.run([self.output_name], inputs)[0]  # type: ignore[no-any-return]

    def close(self) -> None:
        del self.session
