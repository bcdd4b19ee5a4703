"""The versions of the libraries that produced a run's figures, as results.json records them."""

from __future__ import annotations

import functools
import importlib.metadata as md

LIBRARIES = (
    "slimkit",
    "torch",
    "transformers",
    "datasets",
    "onnx",
    "onnxruntime",
    "optimum",
    "accelerate",
    "bitsandbytes",
    "gptqmodel",
    "torch-pruning",
    "torchao",
    "openvino",
    "nncf",
    "neural-compressor-pt",
    "textpruner",
    "numpy",
    "pydantic",
    "pluggy",
)


@functools.cache  # versions do not change while a process runs; read once, not at every write
def library_versions() -> dict[str, str]:
    """Each installed distribution of ``LIBRARIES`` with its version; those not installed are left out."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return versions
