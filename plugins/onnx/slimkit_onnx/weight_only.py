"""``onnx.quantize-weight-only``: MatMul weights in 4-bit (or 8-bit) blocks with ONNX Runtime's
``MatMulNBitsQuantizer``; activations stay float.

Each MatMul with a constant weight becomes a ``MatMulNBits`` node: ``block_size`` consecutive
weights along the input dimension share a scale (and a zero point when asymmetric). With
``accuracy_level`` 4 ORT's CPU kernel quantizes each activation block to int8 and uses integer dot
products (VNNI/AMX); otherwise it dequantizes the weights and computes in float. Embedding tables
can become ``GatherBlockQuantized`` lookups, which need opset 21: the graph is converted first
(``onnx.version_converter``) or, where the converter does not know an op of the graph (ORT's
fused ops), the quantizer raises the opset number itself and the result must load in ORT.

The head stays float and the step ends with the int8 quantizers' checks (``quantize._finish``).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import time
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from slimkit.errors import SlimkitError
from slimkit_onnx import graph
from slimkit_onnx.config import WeightOnlyQuantConfig
from slimkit_onnx.quantize import _finish

if TYPE_CHECKING:
    from types import ModuleType

    import onnx

    from slimkit.artifacts import Artifact
    from slimkit.context import StepContext

QUANTIZER = "onnxruntime.quantization.matmul_nbits_quantizer"
GATHER_OPSET = 21  # GatherBlockQuantized keeps its tables in int4, a type that needs opset 21 (and IR 10)


def _quantizer() -> ModuleType:
    """ORT's weight-only quantizer module. It calls ``logging.basicConfig(level=INFO)`` when first
    imported, which would print every later INFO record of the process; that is undone here."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    module = importlib.import_module(QUANTIZER)
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)
    return module


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The quantizer logs every node at INFO; numpy warns about all-zero blocks (a padding row's
    scale is 0, which the quantizer handles); torch warns that HQQ reads read-only arrays."""
    import numpy as np

    logger = logging.getLogger(QUANTIZER)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            yield
    finally:
        logger.setLevel(level)


def default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def embedding_gathers(model: onnx.ModelProto, head: set[str]) -> tuple[list[str], list[str]]:
    """The tables that Gather nodes look up (float initializers of rank 2: the embeddings), and the
    names of the other Gather nodes (shape arithmetic), which the quantizer must leave alone."""
    from onnx import TensorProto

    floats = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16}
    tables = {
        i.name for i in model.graph.initializer if len(i.dims) == 2 and i.data_type in floats and i.name not in head
    }
    gathers = [node for node in model.graph.node if node.op_type == "Gather"]
    looked_up = list(dict.fromkeys(n.input[0] for n in gathers if n.input[0] in tables))
    return looked_up, [n.name for n in gathers if n.name and n.input[0] not in tables]


def _to_gather_opset(step: StepContext[Any], model: onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    from onnx import version_converter

    try:
        converted = version_converter.convert_version(model, GATHER_OPSET)
    except Exception as exc:  # ORT's fused ops have no schema the converter knows
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        step.log(f"onnx.version_converter cannot convert the graph ({type(exc).__name__}: {reason}); "
                 f"the quantizer raises its opset to {GATHER_OPSET}")  # fmt: skip
        return model, "the quantizer (opset number only)"
    # The converter stores the shapes it inferred (value_info): optional, and larger than the tiny
    # test models' weights; keep the graph as the exporter wrote it.
    converted.graph.ClearField("value_info")
    converted.graph.value_info.extend(model.graph.value_info)
    return converted, "onnx.version_converter"


def _set_accuracy_level(model: onnx.ModelProto, level: int) -> None:
    """HQQ's MatMulNBits nodes carry no accuracy_level; give every node the configured one."""
    from onnx import helper

    if not level:
        return
    for node in model.graph.node:
        if node.op_type == "MatMulNBits" and not any(a.name == "accuracy_level" for a in node.attribute):
            node.attribute.append(helper.make_attribute("accuracy_level", level))


def quantize_weight_only(step: StepContext[WeightOnlyQuantConfig]) -> Artifact:
    import onnx

    nbits = _quantizer()
    config = step.config
    source = graph.model_file(step.input.path)
    manifest = graph.read_manifest(step.input.path)
    before = onnx.load(str(source))
    head_initializers = manifest.get("head_initializers", [])
    head = graph.head_nodes(before, head_initializers)
    embeddings = config.quantize_embeddings
    tables, other_gathers = embedding_gathers(before, set(head_initializers)) if embeddings else ([], [])
    ops = ["MatMul", "Gather"] if tables else ["MatMul"]
    model = onnx.load(str(source))  # the quantizer edits its model in place; `before` stays the reference
    opset, raised_by = default_opset(model), None
    if tables and opset < GATHER_OPSET:
        model, raised_by = _to_gather_opset(step, model)
    if config.algorithm == "hqq":
        algo = nbits.HQQWeightOnlyQuantConfig(
            block_size=config.block_size, bits=config.bits, op_types_to_quantize=tuple(ops)
        )
    else:
        algo = nbits.DefaultWeightOnlyQuantConfig(
            block_size=config.block_size, is_symmetric=config.symmetric, accuracy_level=config.accuracy_level or None,
            op_types_to_quantize=tuple(ops), bits=config.bits,
        )  # fmt: skip
    target = step.output_dir / graph.MODEL_FILE
    started = time.perf_counter()
    quantizer = nbits.MatMulNBitsQuantizer(
        model, bits=config.bits, block_size=config.block_size, nodes_to_exclude=head + other_gathers,
        op_types_to_quantize=tuple(ops), algo_config=algo,
    )  # fmt: skip
    with _quiet():
        quantizer.process()
    _set_accuracy_level(quantizer.model.model, config.accuracy_level)
    # Read from the file without its weights: onnx.load marks the tensors it loaded as internal.
    large = graph.has_external_data(graph.load_graph(source, weights=False))
    quantizer.model.save_model_to_file(str(target), use_external_data_format=large)
    seconds = round(time.perf_counter() - started, 2)
    if raised_by is not None:
        try:
            graph.open_session(target)
        except Exception as exc:
            reason = (str(exc).strip().splitlines() or [""])[0][:300]
            raise SlimkitError(
                f"{step.technique.name}: with 4-bit embedding tables (opset {opset} raised to {GATHER_OPSET} by "
                f"{raised_by}) the graph does not load in ONNX Runtime: {reason}",
                fix="set quantize_embeddings = false",
            ) from exc
    facts: dict[str, Any] = {
        "op_types": ops,
        "weight_bits": config.bits,
        "block_size": config.block_size,
        "algorithm": config.algorithm,
        "symmetric": config.symmetric and config.algorithm == "rtn",  # HQQ always fits a zero point
        "accuracy_level": config.accuracy_level,
        # What ORT's CPU kernel computes in: int8 only at level 4 with integer zero points (not HQQ's).
        "kernel_compute": "int8" if config.accuracy_level == 4 and config.algorithm == "rtn" else "float",
        "quantize_embeddings": config.quantize_embeddings,
        "embedding_tables": tables,
        "opset": default_opset(quantizer.model.model),
        "opset_raised_by": raised_by,
        "excluded_nodes": head,
        "quantize_seconds": seconds,
    }
    fix = "quantize a graph whose MatMul weights are initializers (as onnx.export and onnx.optimize write them)"
    precision = f"int{config.bits}-weight-only"
    return _finish(step, before, manifest, target, precision, config.check_examples, facts, fix=fix)
