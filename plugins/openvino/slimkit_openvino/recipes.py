"""The recipes slimkit-openvino recommends: OpenVINO IR with NNCF's own post-training int8, or its 4-bit weights."""

from __future__ import annotations

from slimkit import Recipe

RECIPES = [
    # What NNCF's and OpenVINO's guides give for BERT-class classifiers: convert to IR, then
    # nncf.quantize with model_type=TRANSFORMER (mixed preset, SmoothQuant, fast bias correction),
    # calibrated on 300 training texts; the head stays float.
    Recipe(
        name="openvino.int8",
        summary="OpenVINO IR and NNCF post-training int8 (nncf.quantize, transformer preset, 300 calibration "
        "texts), run by OpenVINO's CPU plugin: NNCF's own int8 beside ONNX Runtime's.",
        goals=["speed", "size"],
        # Measured on MiniLM-L6 (encoder) and SmolLM2-135M (decoder: 4.96x faster, +0.40 points).
        kinds=["encoder", "decoder"],
        cost=1,
        steps=[
            {"name": "ov-export", "technique": "openvino.export"},
            {"name": "ov-int8", "technique": "openvino.int8", "config": {"mode": "ptq"}},
        ],
    ),
    # For size: 4-bit weights in groups of 32, embeddings included, AWQ and scale estimation on 128
    # training texts (on the MiniLM students they kept more accuracy than the data-free rounding).
    Recipe(
        name="openvino.int4",
        summary="OpenVINO IR with NNCF 4-bit weights (groups of 32, embeddings included, AWQ and scale "
        "estimation on training texts): smallest on disk; on encoders slower than int8 kernels.",
        goals=["size", "memory"],
        kinds=["encoder", "decoder"],
        cost=1,
        steps=[
            {"name": "ov-export", "technique": "openvino.export"},
            {"name": "ov-int4", "technique": "openvino.int4", "config": {"awq": True, "scale_estimation": True}},
        ],
    ),
]
