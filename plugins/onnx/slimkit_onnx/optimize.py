"""``onnx.optimize``: ONNX Runtime graph optimisation, with the transformer fusions for BERT-class models.

BERT-class encoders go through ``onnxruntime.transformers.optimizer`` (fused Attention,
EmbedLayerNormalization, SkipLayerNormalization, BiasGelu); other models get ONNX Runtime's own
graph optimisations, saved offline. The fused op counts are recorded: whether attention fused
decides int8 speed later (docs/plugins/onnx.md). The optimised graph must give the input graph's
logits within the tolerance.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimkit.errors import SlimkitError
from slimkit_onnx import graph
from slimkit_onnx.config import BERT_FUSED_FAMILIES, OptimizeConfig

if TYPE_CHECKING:
    from slimkit.artifacts import Artifact
    from slimkit.context import StepContext

# HF model types whose graphs onnxruntime.transformers' BERT optimiser knows how to fuse.
GENERIC = "generic"


def pick_model_type(requested: str, hf_config: dict[str, Any]) -> str:
    if requested != "auto":
        return requested
    return "bert" if hf_config.get("model_type") in BERT_FUSED_FAMILIES else GENERIC


def _heads_and_hidden(hf_config: dict[str, Any]) -> tuple[int, int]:
    """The optimiser cannot always read these from the graph; without them attention does not fuse."""
    heads = hf_config.get("num_attention_heads") or hf_config.get("n_heads") or hf_config.get("n_head") or 0
    hidden = hf_config.get("hidden_size") or hf_config.get("dim") or hf_config.get("n_embd") or 0
    return int(heads), int(hidden)


def _ort_offline(source: Path, target: Path, level: int) -> None:
    """ONNX Runtime's own optimisations at ``level``, written to ``target`` by a throwaway session."""
    import onnxruntime as ort

    options, _ = graph.session_options(1)
    options.graph_optimization_level = {
        0: ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        1: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        2: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    }[level]
    options.optimized_model_filepath = str(target)
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])


def optimize(step: StepContext[OptimizeConfig]) -> Artifact:
    import onnx

    config = step.config
    source = graph.model_file(step.input.path)
    manifest = graph.read_manifest(step.input.path)
    hf_config = graph.load_hf_config(step.input.path)
    model_type = pick_model_type(config.model_type, hf_config)
    before = onnx.load(str(source))
    target = step.output_dir / graph.MODEL_FILE
    warnings: list[str] = []
    fused: dict[str, int] = {}
    started = time.perf_counter()
    if model_type == GENERIC:
        level = 2 if config.opt_level is None else config.opt_level
        _ort_offline(source, target, level)
        optimiser = f"onnxruntime graph optimisation, level {level}"
    else:
        optimiser, fused = _fuse(step, source, target, model_type, hf_config, graph.has_external_data(before))
        if model_type == "bert" and not (fused.get("Attention") or fused.get("MultiHeadAttention")):
            warnings.append(
                f"attention was not fused (exporter {manifest.get('exporter', '?')}, attention "
                f"{manifest.get('attn_implementation', '?')}); unfused int8 graphs ran 1.5-1.6x slower: export with "
                "exporter = 'torchscript' and attn_implementation = 'eager'"
            )
    seconds = time.perf_counter() - started
    graph.copy_sidecars(step.input.path, step.output_dir)
    parity = graph.compare_graphs(
        step, step.input.path, target, config.check_examples, atol=config.atol, rtol=config.rtol
    )
    if not parity["within_tolerance"]:
        raise SlimkitError(
            graph.outside_tolerance_message("onnx.optimize: the optimised and input graphs'", parity),
            fix="set model_type = 'generic' (no transformer fusions) or loosen atol",
        )
    after = onnx.load(str(target))
    head = graph.relocate_head(before, after, manifest.get("head_initializers", []))
    if manifest.get("head_initializers") and not head:
        warnings.append("the classification head's initializers were rewritten; its checksum cannot be compared")
    for warning in warnings:
        step.log(f"warning: {warning}")
    graph.write_manifest(
        step.output_dir,
        manifest
        | {
            "onnx_file": graph.MODEL_FILE,
            "head_initializers": head,
            "head_checksum": graph.head_checksum(after, head),
            "optimizer": optimiser,
            "fused_ops": fused,
            "history": [*manifest.get("history", []), step.technique.name],
        },
    )
    return step.artifact(
        onnx_file=graph.MODEL_FILE,
        optimizer=optimiser,
        model_type=model_type,
        fused_ops=fused,
        op_counts=graph.op_counts(after),
        parity=parity,
        precision=manifest.get("precision", "float32"),
        optimize_seconds=round(seconds, 2),
        graph_bytes=target.stat().st_size,
        warnings=warnings,
    )


def _fuse(
    step: StepContext[OptimizeConfig],
    source: Path,
    target: Path,
    model_type: str,
    hf_config: dict[str, Any],
    large: bool,
) -> tuple[str, dict[str, int]]:
    """onnxruntime.transformers' optimiser for ``model_type``; returns (what ran, fused op counts)."""
    from onnxruntime.transformers.optimizer import MODEL_TYPES, optimize_model

    opt_level = step.config.opt_level
    if model_type not in MODEL_TYPES:
        raise SlimkitError(
            f"onnx.optimize: model_type {model_type!r} is not an onnxruntime.transformers model type",
            fix=f"use 'auto', '{GENERIC}' or one of {', '.join(sorted(MODEL_TYPES))}",
        )
    heads, hidden = _heads_and_hidden(hf_config)
    optimised = optimize_model(
        str(source), model_type=model_type, num_heads=heads, hidden_size=hidden, opt_level=opt_level, use_gpu=False
    )
    fused = {k: int(v) for k, v in optimised.get_fused_operator_statistics().items() if v}
    optimised.save_model_to_file(str(target), use_external_data_format=large)
    level = MODEL_TYPES[model_type][2] if opt_level is None else opt_level
    return f"onnxruntime.transformers optimizer, model_type {model_type}, opt_level {level}", fused
