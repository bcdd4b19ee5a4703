"""``onnx.quantize-dynamic`` and ``onnx.quantize-static``: int8 graphs with onnxruntime.quantization.

- Dynamic: weights stored in int8, activations quantized on the fly per call (MatMulInteger,
  QAttention, QEmbedLayerNormalization). No calibration data.
- Static: QDQ format, activation ranges calibrated on batches of the task's training texts
  (MinMax, Entropy or Percentile); ONNX Runtime fuses the QDQ pairs into integer kernels at load.

Both leave the classification head in float (its nodes are excluded), fail when nothing was
quantized, and record how often the int8 graph's predictions agree with the input graph's.
``onnx.quantize-weight-only`` (weight_only.py) finishes through the same checks.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimkit.errors import SlimkitError
from slimkit_onnx import graph
from slimkit_onnx.config import EMBEDDING_OPS, DynamicQuantConfig, StaticQuantConfig
from slimkit_transformers.steps import calibration_inputs

if TYPE_CHECKING:
    import onnx

    from slimkit.artifacts import Artifact
    from slimkit.context import StepContext


@contextlib.contextmanager
def _quiet_preprocessing_advice() -> Iterator[None]:
    """quantize_dynamic logs advice to run shape inference first on the root logger at every call;
    the static path does run it, and the dynamic one does not need it."""

    def drop(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Please consider")

    root = logging.getLogger()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def _op_types(requested: list[str] | None, default: list[str], embeddings: bool, present: dict[str, int]) -> list[str]:
    if requested is not None:
        return requested
    wanted = default + (EMBEDDING_OPS if embeddings else [])
    return [op for op in wanted if op in present]


def _weights(model: onnx.ModelProto) -> Iterator[tuple[onnx.TensorProto, int]]:
    """Weight initializers (more than one element, not int32/int64 shape data) and their element counts."""
    import numpy as np
    from onnx import TensorProto

    for init in model.graph.initializer:
        n = int(np.prod(init.dims)) if init.dims else 1
        if n > 1 and init.data_type not in (TensorProto.INT64, TensorProto.INT32):
            yield init, n


def int8_weight_share(model: onnx.ModelProto) -> float:
    """Share of weight elements (initializers with more than one element) stored in 8 bits."""
    from onnx import TensorProto

    eight = {TensorProto.INT8, TensorProto.UINT8}
    total = small = 0
    for init, n in _weights(model):
        total += n
        small += n if init.data_type in eight else 0
    return round(small / total, 4) if total else 0.0


def low_bit_weight_share(before: onnx.ModelProto, after: onnx.ModelProto) -> float:
    """Share of the input graph's weight elements that the output stores in MatMulNBits or
    GatherBlockQuantized blocks. Counted from the ops (K x N, the table's shape), not from the
    packed initializers, which hold two 4-bit weights per byte."""
    import numpy as np
    from onnx import TensorProto, helper

    shapes = {i.name: (list(i.dims), i.data_type) for i in after.graph.initializer}
    low = 0
    for node in after.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "MatMulNBits":
            low += int(attrs["K"]) * int(attrs["N"])
        elif node.op_type == "GatherBlockQuantized" and node.input[0] in shapes:
            dims, dtype = shapes[node.input[0]]
            packed = 8 // int(attrs.get("bits", 4)) if dtype == TensorProto.UINT8 else 1
            low += int(np.prod(dims)) * packed
    total = sum(n for _, n in _weights(before))
    return round(low / total, 4) if total else 0.0


def _finish(
    step: StepContext[Any],
    before: onnx.ModelProto,
    manifest: dict[str, Any],
    target: Path,
    precision: str,
    check_examples: int,
    facts: dict[str, Any],
    *,
    fix: str = "set op_types to op types the graph contains",
) -> Artifact:
    """Checks and records shared by the quantizers: int8 ones (integer ops) and weight-only ones
    (low-bit ops), each recording the weight share its ops store."""
    import onnx

    after = onnx.load(str(target))
    counts = graph.op_counts(after)
    integer, low_bit = graph.integer_ops(counts), graph.low_bit_ops(counts)
    if not integer and not low_bit:
        raise SlimkitError(
            f"{step.technique.name}: no op was quantized (op types {facts.get('op_types')}; the graph has "
            f"{', '.join(list(graph.op_counts(before))[:12])})",
            fix=fix,
        )
    shares: dict[str, Any] = {"int8_weight_share": int8_weight_share(after)} if integer else {}
    if low_bit:
        shares |= {"low_bit_ops": low_bit, "low_bit_weight_share": low_bit_weight_share(before, after)}
    graph.copy_sidecars(step.input.path, step.output_dir)
    head = graph.relocate_head(before, after, manifest.get("head_initializers", []))
    agreement = graph.compare_graphs(step, step.input.path, target, check_examples)
    graph.write_manifest(
        step.output_dir,
        manifest
        | {
            "onnx_file": graph.MODEL_FILE,
            "precision": precision,
            "head_initializers": head,
            "head_checksum": graph.head_checksum(after, head),
            "history": [*manifest.get("history", []), step.technique.name],
        },
    )
    return step.artifact(
        onnx_file=graph.MODEL_FILE,
        precision=precision,
        integer_ops=integer,
        op_counts=counts,
        **shares,
        head_kept_float=bool(head) and graph.head_checksum(after, head) is not None,
        agreement_with_input=agreement,
        graph_bytes=target.stat().st_size,
        **facts,
    )


def _input_graph(
    step: StepContext[DynamicQuantConfig] | StepContext[StaticQuantConfig],
) -> tuple[Path, dict[str, Any], Any, list[str], list[str]]:
    """The step's input graph: (file, manifest, loaded model, op types to quantize, head nodes)."""
    import onnx

    config = step.config
    source = graph.model_file(step.input.path)
    manifest = graph.read_manifest(step.input.path)
    before = onnx.load(str(source))
    ops = _op_types(config.op_types, ["MatMul", "Attention"], config.quantize_embeddings, graph.op_counts(before))
    return source, manifest, before, ops, graph.head_nodes(before, manifest.get("head_initializers", []))


def quantize_dynamic(step: StepContext[DynamicQuantConfig]) -> Artifact:
    import onnx
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    config = step.config
    source, manifest, before, ops, head = _input_graph(step)
    # The dynamic quantizer first rewrites each Gemm as <name>_MatMul + <name>_Add; exclude those too.
    excluded = [name + suffix for name in head for suffix in ("", "_MatMul", "_Add")]
    target = step.output_dir / graph.MODEL_FILE
    weight_type = QuantType.QInt8 if config.weight_type == "qint8" else QuantType.QUInt8
    started = time.perf_counter()
    with _quiet_preprocessing_advice():
        ort_quantize_dynamic(
            str(source), str(target), op_types_to_quantize=ops, per_channel=config.per_channel,
            reduce_range=config.reduce_range, weight_type=weight_type,
            nodes_to_exclude=excluded, use_external_data_format=graph.has_external_data(before),
            # The optimiser's contrib ops (e.g. SkipLayerNormalization) carry no type information;
            # without a default the quantizer stops with "Unable to find data type for weight_name".
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )  # fmt: skip
    facts = {
        "op_types": ops,
        "per_channel": config.per_channel,
        "weight_type": config.weight_type,
        "reduce_range": config.reduce_range,
        "quantize_embeddings": config.quantize_embeddings,
        "excluded_nodes": head,
        "quantize_seconds": round(time.perf_counter() - started, 2),
    }
    return _finish(step, before, manifest, target, "int8-dynamic", config.check_examples, facts)


def _calibration_batches(
    step: StepContext[StaticQuantConfig], names: list[str]
) -> tuple[list[dict[str, Any]], int, int]:
    """The seeded calibration sample encoded into equal-shape batches; (batches, texts, padded length)."""
    from slimkit_transformers.models import load_tokenizer

    config = step.config
    tokenizer = load_tokenizer(graph.folder_of(step.input.path))
    texts = calibration_inputs(step, config.calibration_examples)  # (text, pair) tuples in a sentence-pair task
    # Equal shapes in every batch: the histogram calibrators (entropy, percentile) stack them.
    size = min(config.calibration_batch_size, len(texts))
    texts = texts[: len(texts) // size * size]
    longest = max(len(ids) for ids in tokenizer(texts, truncation=True, max_length=config.max_length)["input_ids"])
    batches = [
        graph.encode(tokenizer, texts[i : i + size], names, max_length=longest, pad_to_max=True)
        for i in range(0, len(texts), size)
    ]
    return batches, len(texts), longest


def _shape_inferred(step: StepContext[Any], source: Path, folder: str, large: bool) -> tuple[Path, bool]:
    """The graph with symbolic shape inference applied, written into ``folder``, and whether it
    worked; the graph as it is when inference fails.

    Inference gives the quantizer the activation types of contrib ops (fused Attention,
    SkipLayerNormalization); without it their activations stay in float."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = Path(folder) / "prepared.onnx"
    try:
        # When inference is incomplete ORT dumps the graph (and its weights) into the working
        # directory before raising; keep that litter inside the temporary folder.
        with contextlib.chdir(folder):
            quant_pre_process(
                str(source.resolve()), str(prepared.resolve()), skip_optimization=True, save_as_external_data=large
            )
    except Exception as exc:  # shape inference does not know every op; quantize the graph as it is
        step.log(f"shape inference failed ({type(exc).__name__}: {exc}); quantizing without it")
        return source, False
    return prepared, True


def quantize_static(step: StepContext[StaticQuantConfig]) -> Artifact:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as ort_quantize_static

    config = step.config
    source, manifest, before, ops, excluded = _input_graph(step)
    batches, n_texts, longest = _calibration_batches(step, [i.name for i in before.graph.input])

    class Batches(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.pending = iter(batches)

        def get_next(self) -> dict[str, Any] | None:
            return next(self.pending, None)

        def rewind(self) -> None:
            self.pending = iter(batches)

    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[config.calibration_method]
    large = graph.has_external_data(before)
    target = step.output_dir / graph.MODEL_FILE
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="onnx-static-", dir=step.run_dir) as tmp:
        prepared, preprocessed = _shape_inferred(step, source, tmp, large)
        with _quiet_preprocessing_advice():
            ort_quantize_static(
                str(prepared), str(target), Batches(), quant_format=QuantFormat.QDQ, op_types_to_quantize=ops,
                per_channel=config.per_channel, reduce_range=config.reduce_range,
                activation_type=QuantType.QUInt8 if config.activation_type == "quint8" else QuantType.QInt8,
                weight_type=QuantType.QInt8, nodes_to_exclude=excluded, use_external_data_format=large,
                calibrate_method=method,
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "CalibPercentile": config.percentile},
            )  # fmt: skip
    facts = {
        "op_types": ops,
        "calibration_method": config.calibration_method,
        "calibration_examples": n_texts,
        "calibration_batches": len(batches),
        "calibration_length": longest,
        "calibration_split": "train",
        "per_channel": config.per_channel,
        "activation_type": config.activation_type,
        "reduce_range": config.reduce_range,
        "quantize_embeddings": config.quantize_embeddings,
        "shape_inference": preprocessed,
        "excluded_nodes": excluded,
        "quantize_seconds": round(time.perf_counter() - started, 2),
    }
    return _finish(step, before, manifest, target, "int8-static-qdq", config.check_examples, facts)
