"""The recipes slimkit-distill recommends: a half-depth student distilled from the baseline, with the
task's vocabulary, FFN pruning with recovery and ONNX or OpenVINO int8 around it (the MiniLM study's winners)."""

from __future__ import annotations

from typing import Any

from slimkit import Recipe

VOCAB = {"name": "vocab", "technique": "textpruner.vocabulary", "config": {"min_count": 2}, "optional": True}
# Every second layer of the teacher, trained on its logits and hidden states.
HALF_DEPTH: dict[str, Any] = {
    "name": "distill",
    "technique": "distill.kd",
    "config": {
        "student": {"keep_every": 2}, "alpha": 0.5, "temperature": 1.0, "hidden_weight": 1.0, "epochs": 5,
        "learning_rate": 1e-4, "batch_size": 32, "max_length": 128, "early_stopping_patience": 2,
    },
}  # fmt: skip
# Half the FFN neurons of every layer, then recovery by distillation from the baseline (logits only:
# after vocabulary pruning the two models tokenize differently).
FFN_PRUNE: list[dict[str, Any]] = [
    {
        "name": "prune",
        "technique": "torch.structured-prune",
        "config": {
            "ffn_ratio": 0.5, "importance": "gradient", "calibration_examples": 512, "calibration_batch_size": 32,
            "max_length": 128,
        },
    },
    {
        "name": "recover",
        "technique": "distill.kd",
        "config": {
            "teacher": "baseline", "student": {"from_step": "prune"}, "alpha": 0.5, "temperature": 1.0,
            "epochs": 3, "learning_rate": 8e-5, "batch_size": 32, "max_length": 128, "early_stopping_patience": 2,
        },
    },
]  # fmt: skip
# The same with half the attention heads of every layer removed in the prune step (a share, so that it
# serves any head count: 6 of 12, 8 of 16), saved as slimkit's compact class. On the MiniLM-L6
# student it was 1.34x faster at batch 1 than with all heads, and 17.58x instead of 14.99x smaller,
# at no cost in micro-F1 (bench/minilm-heads.toml). MPNet and DeBERTa-v2 keep their heads: the step
# refuses them, and the other recipes go on.
FFN_HEADS_PRUNE: list[dict[str, Any]] = [
    {**FFN_PRUNE[0], "config": {**FFN_PRUNE[0]["config"], "heads_ratio": 0.5}},
    FFN_PRUNE[1],
]
# The word-embedding table of that student as a rank-r product (r = half the width: 192 of 384), from its
# truncated SVD, recovered by distillation from the student it was cut from: the same tokenization,
# so every layer's output is matched too, for 6 epochs (its validation F1 still rose at epoch 3). On
# the MiniLM-L6 student: 20.79x instead of 17.58x smaller at the same speed, +0.23 points where the
# full table lost 0.27 (+0.03 in the median of three training seeds; 3 epochs: -0.08; from the
# baseline's logits: -0.89; bench/minilm-lowrank.toml).
LOW_RANK: list[dict[str, Any]] = [
    {"name": "low-rank", "technique": "torch.low-rank-embeddings", "config": {"rank_ratio": 0.5}},
    {
        "name": "recover-rank",
        "technique": "distill.kd",
        "config": {
            **FFN_PRUNE[1]["config"], "teacher": "recover", "student": {"from_step": "low-rank"},
            "hidden_weight": 1.0, "epochs": 6,
        },
    },
]  # fmt: skip
# slimkit-onnx's recipe for the export, fusions and int8, named rather than copied.
ONNX_INT8 = {"recipe": "onnx.int8"}
# slimkit-openvino's: OpenVINO IR and NNCF's post-training int8 or 4-bit weights (left out where it is
# not installed).
OPENVINO_INT4 = {"recipe": "openvino.int4"}
# NNCF's int8 with the embedding tables in 4 bits: the student's tables (45 % of its parameters
# after vocabulary pruning) shrink at no cost in speed; measured on the MiniLM students, 14.99x
# smaller instead of 12.04x, 10.30x against 10.79x at batch 1 (within the sessions' ranges) and
# 0.10 points more micro-F1 (bench/minilm-students.toml). Without slimkit-openvino the recipe is
# left out, as an included one would be.
OPENVINO_INT8_EMB4: list[dict[str, Any]] = [
    {"name": "ov-export", "technique": "openvino.export"},
    {"name": "ov-int8", "technique": "openvino.int8", "config": {"mode": "ptq", "embeddings": "int4"}},
]

RECIPES = [
    Recipe(
        name="distill.half-depth-onnx-int8",
        summary="The task's vocabulary, a half-depth student distilled from the baseline, ONNX int8: about 6x "
        "faster for MiniLM-L6, within half a point.",
        goals=["speed", "size", "memory"],
        kinds=["encoder"],
        cost=3,
        steps=[VOCAB, HALF_DEPTH, ONNX_INT8],
    ),
    Recipe(
        name="distill.half-depth-ffn-onnx-int8",
        summary="As distill.half-depth-onnx-int8 with half the FFN neurons pruned and recovered: the MiniLM study's "
        "choice (8.8x faster, 12x smaller, -0.9 points).",
        goals=["speed", "size", "memory"],
        kinds=["encoder"],
        cost=4,
        steps=[VOCAB, HALF_DEPTH, *FFN_PRUNE, ONNX_INT8],
    ),
    Recipe(
        name="distill.half-depth-ffn-openvino-int8",
        summary="The same student as distill.half-depth-ffn-onnx-int8, converted to OpenVINO IR and quantized by "
        "NNCF (int8 weights and activations, SmoothQuant; embedding tables in 4 bits), run by OpenVINO's CPU plugin.",
        goals=["speed", "size", "memory"],
        kinds=["encoder"],
        cost=4,
        steps=[VOCAB, HALF_DEPTH, *FFN_PRUNE, *OPENVINO_INT8_EMB4],
    ),
    Recipe(
        name="distill.half-depth-ffn-heads-openvino-int8",
        summary="The half-depth student with half its FFN neurons and half its attention heads removed and recovered, "
        "OpenVINO IR and NNCF int8 with 4-bit embedding tables: the MiniLM heads study's choice (12.9x faster, "
        "17.6x smaller, -0.3 points with a transfer set).",
        goals=["speed", "size", "memory"],
        kinds=["encoder"],
        cost=4,
        steps=[VOCAB, HALF_DEPTH, *FFN_HEADS_PRUNE, *OPENVINO_INT8_EMB4],
    ),
    Recipe(
        name="distill.half-depth-ffn-heads-lowrank-openvino-int8",
        summary="As distill.half-depth-ffn-heads-openvino-int8 with the word-embedding table factorised at half the "
        "width (truncated SVD) and recovered from the student it was cut from: 12.9x faster, 20.8x smaller, no loss "
        "(median of three seeds) on the MiniLM-L6 student distilled with a transfer set.",
        goals=["size", "speed", "memory"],
        kinds=["encoder"],
        cost=5,
        steps=[VOCAB, HALF_DEPTH, *FFN_HEADS_PRUNE, *LOW_RANK, *OPENVINO_INT8_EMB4],
    ),
    Recipe(
        name="distill.half-depth-ffn-openvino-int4",
        summary="The same student with NNCF 4-bit weights, embeddings included (AWQ and scale estimation): for "
        "size, slower than the int8 recipe.",
        goals=["size", "memory"],
        kinds=["encoder"],
        cost=4,
        steps=[VOCAB, HALF_DEPTH, *FFN_PRUNE, OPENVINO_INT4],
    ),
]
