"""What every step shares: the folder layout, ONNX Runtime sessions, op counts and output checks.

An ONNX artifact is a folder: ``model.onnx``, the tokenizer and ``config.json`` (labels) of the
model it came from, ``slimkit-task.json`` (the tuned threshold) when the fine-tuning step wrote
one, and ``slimkit-onnx.json``, a manifest that later steps and the predictor read (input names,
precision, the names of the classification head's initializers, parameter counts).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimkit.errors import SlimkitError
from slimkit_transformers.folders import FolderLayout, folder_of
from slimkit_transformers.predictors import saved_threshold

if TYPE_CHECKING:
    import numpy as np
    import onnx
    import onnxruntime

    from slimkit.context import StepContext

Inputs = list[str] | list[tuple[str, str]]  # a tokenizer's batch: texts, or (text, pair) tuples
MODEL_FILE = "model.onnx"
MANIFEST = "slimkit-onnx.json"
# Ops that compute in integers (or hold integer weights): a quantized graph must contain some.
INTEGER_OPS = frozenset(
    {
        "MatMulInteger", "DynamicQuantizeLinear", "QAttention", "QEmbedLayerNormalization", "QGemm",
        "QLinearMatMul", "QLinearConv", "ConvInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
        "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLSTM", "QLinearAdd", "QLinearMul",
    }
)  # fmt: skip
# ORT's weight-only ops: block-quantized 4/8-bit weights, float activations outside the kernel.
LOW_BIT_OPS = frozenset({"MatMulNBits", "GatherBlockQuantized"})
# Texts for the output checks when a pipeline has no task (real eval texts are used otherwise).
FALLBACK_TEXTS = [
    "I am so happy today, this is wonderful news!",
    "This is the worst service I have ever had.",
    "Not sure how I feel about the new update.",
    "What a surprise to see you here after all these years",
    "ok",
    "The meeting was moved to Thursday afternoon because the room was booked by another team.",
]


# -- folder layout --------------------------------------------------------------------------


LAYOUT = FolderLayout(
    manifest=MANIFEST,
    file_key="onnx_file",
    suffix=".onnx",
    model_suffixes=(".onnx", ".data"),
    producer="onnx.export",
    described="one .onnx file",
)
read_manifest, write_manifest = LAYOUT.read_manifest, LAYOUT.write_manifest
model_file, copy_sidecars = LAYOUT.model_file, LAYOUT.copy_sidecars


def load_hf_config(path: Path) -> dict[str, Any]:
    config = folder_of(path) / "config.json"
    return json.loads(config.read_text(encoding="utf-8")) if config.is_file() else {}


def is_multi_label(path: Path) -> bool:
    return load_hf_config(path).get("problem_type") == "multi_label_classification"


# -- graphs ---------------------------------------------------------------------------------


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    """Nodes of the main graph by op type, most frequent first."""
    counts = Counter(node.op_type for node in model.graph.node)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def integer_ops(counts: dict[str, int]) -> dict[str, int]:
    return {op: n for op, n in counts.items() if op in INTEGER_OPS}


def low_bit_ops(counts: dict[str, int]) -> dict[str, int]:
    return {op: n for op, n in counts.items() if op in LOW_BIT_OPS}


def load_graph(path: Path, *, weights: bool = True) -> onnx.ModelProto:
    import onnx

    return onnx.load(str(model_file(path)), load_external_data=weights)


def head_checksum(model: onnx.ModelProto, names: Iterable[str]) -> float | None:
    """Sum of |w| over the head's initializers, as the torch predictor computes it; None when any
    of them is missing or no longer a float tensor (then the head cannot be compared)."""
    import numpy as np
    from onnx import numpy_helper

    wanted = set(names)
    if not wanted:
        return None
    found = {i.name: i for i in model.graph.initializer if i.name in wanted}
    if set(found) != wanted:
        return None
    total = 0.0
    for init in found.values():
        array = numpy_helper.to_array(init)
        if not np.issubdtype(array.dtype, np.floating):
            return None
        total += float(np.abs(array.astype(np.float64)).sum())
    return total


def head_nodes(model: onnx.ModelProto, names: Iterable[str]) -> list[str]:
    """Names of the nodes that read the head's initializers: excluded from quantization."""
    wanted = set(names)
    return [node.name for node in model.graph.node if node.name and wanted.intersection(node.input)]


# -- running ----------------------------------------------------------------------------------


SPINNING_ENV = "SLIMKIT_ORT_SPINNING"


def session_options(threads: int) -> tuple[onnxruntime.SessionOptions, dict[str, Any]]:
    """Options shared by every session slimkit opens, and the facts that describe them.

    One intra-op pool of ``threads`` threads, no inter-op parallelism, sequential execution, and no
    spinning: a spinning ORT pool keeps cores busy for tens of ms after a call and slows whatever
    runs next (docs/measurement.md). ``SLIMKIT_ORT_SPINNING=1`` turns spinning on.
    """
    import onnxruntime as ort

    spinning = "1" if os.environ.get(SPINNING_ENV, "0") == "1" else "0"

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    options.add_session_config_entry("session.inter_op.allow_spinning", spinning)
    options.log_severity_level = 3
    facts = {
        "intra_op_num_threads": threads,
        "inter_op_num_threads": 1,
        "execution_mode": "sequential",
        "allow_spinning": spinning,
        "graph_optimization_level": "ORT_ENABLE_ALL",
    }
    return options, facts


def providers_for(device: str) -> list[str]:
    import onnxruntime as ort

    if device == "cpu":
        return ["CPUExecutionProvider"]
    wanted = {"cuda": "CUDAExecutionProvider"}.get(device)
    if wanted is None or wanted not in ort.get_available_providers():
        raise SlimkitError(
            f"ONNX Runtime here has no execution provider for {device!r} "
            f"(available: {', '.join(ort.get_available_providers())})",
            fix="install onnxruntime-gpu for CUDA, or measure on device = 'cpu'",
        )
    return [wanted, "CPUExecutionProvider"]


def open_session(path: Path, *, threads: int = 1, device: str = "cpu") -> onnxruntime.InferenceSession:
    import onnxruntime as ort

    options, _ = session_options(threads)
    return ort.InferenceSession(str(model_file(path)), options, providers=providers_for(device))


def encode(tokenizer: Any, texts: Inputs, names: list[str], *, max_length: int, pad_to_max: bool) -> dict[str, Any]:
    """Token arrays for a graph: int64, exactly the graph's inputs (token types zero if the
    tokenizer gives none). ``texts`` may be (text, pair) tuples, encoded as sentence pairs."""
    import numpy as np

    encoded = tokenizer(
        texts,
        padding="max_length" if pad_to_max else True,
        truncation=True,
        max_length=max_length,
        return_tensors="np",
    )
    out = {}
    for name in names:
        if name in encoded:
            out[name] = np.ascontiguousarray(encoded[name], dtype=np.int64)
        elif name == "token_type_ids":
            out[name] = np.zeros_like(encoded["input_ids"], dtype=np.int64)
        else:
            raise SlimkitError(f"the graph wants input {name!r}, which the tokenizer does not produce")
    return out


def check_batches(texts: Inputs, batch_size: int = 16) -> list[Inputs]:
    """A batch of one (the dynamic batch axis at 1), then batches of real, unequal lengths."""
    if not texts:
        return []
    rest = texts[1:]
    return [texts[:1], *[rest[i : i + batch_size] for i in range(0, len(rest), batch_size)]]


def compare_outputs(
    reference: Callable[[dict[str, Any]], np.ndarray],
    candidate: Callable[[dict[str, Any]], np.ndarray],
    batches: list[dict[str, Any]],
    *,
    multi_label: bool,
    threshold: float,
    atol: float | None = None,
    rtol: float = 0.0,
) -> dict[str, Any]:
    """Logit differences and prediction agreement of two models over the same encoded batches.

    With ``atol`` given, ``within_tolerance`` says whether every logit meets
    |candidate - reference| <= atol + rtol * |reference|.
    """
    import numpy as np

    from slimkit_transformers import scores

    ref = np.concatenate([np.asarray(reference(b), dtype=np.float64) for b in batches])
    got = np.concatenate([np.asarray(candidate(b), dtype=np.float64) for b in batches])
    if ref.shape != got.shape:
        raise SlimkitError(f"output shapes differ: reference {ref.shape}, candidate {got.shape}")
    diff = np.abs(got - ref)
    same = scores.agreement(scores.predict(got, multi_label, threshold), scores.predict(ref, multi_label, threshold))
    facts: dict[str, Any] = {
        "examples": int(ref.shape[0]),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "prediction_agreement": round(float(same), 6),
    }
    if atol is not None:
        excess = diff - (atol + rtol * np.abs(ref))
        worst = int(np.unravel_index(np.argmax(excess), excess.shape)[0])
        facts |= {
            "atol": atol,
            "rtol": rtol,
            "within_tolerance": bool((excess <= 0).all()),
            "worst_example": worst,
            "outside_tolerance": int((excess > 0).sum()),
        }
    return facts


def check_texts(step: StepContext[Any], n: int) -> tuple[Inputs, str]:
    """Up to ``n`` eval inputs of the pipeline's task (what the check runs on: texts, or (text,
    pair) tuples in a sentence-pair task), and where they came from."""
    if step.task is None:
        return FALLBACK_TEXTS[:n], "built-in sentences (the pipeline has no task)"
    from slimkit_transformers.steps import step_task

    texts = step_task(step).eval.inputs[:n] or FALLBACK_TEXTS[:n]
    return texts, f"{len(texts)} eval texts of the task"


def session_runner(session: onnxruntime.InferenceSession) -> Callable[[dict[str, Any]], np.ndarray]:
    names = [i.name for i in session.get_inputs()]

    def run(inputs: dict[str, Any]) -> np.ndarray:
        return session.run(None, {n: inputs[n] for n in names})[0]  # type: ignore[no-any-return]

    return run


def input_names(session: onnxruntime.InferenceSession) -> list[str]:
    return [i.name for i in session.get_inputs()]


def compare_graphs(
    step: StepContext[Any], before: Path, after: Path, examples: int, *, atol: float | None = None, rtol: float = 0.0
) -> dict[str, Any]:
    """Run the input and output graphs of a step on the same eval texts; see compare_outputs."""
    from slimkit_transformers.models import load_tokenizer

    texts, origin = check_texts(step, examples)
    reference, candidate = open_session(before), open_session(after)
    names = input_names(reference)
    if set(names) != set(input_names(candidate)):
        raise SlimkitError(f"the new graph's inputs {input_names(candidate)} differ from the input graph's {names}")
    tokenizer = load_tokenizer(folder_of(before))
    batches = [encode(tokenizer, b, names, max_length=128, pad_to_max=False) for b in check_batches(texts)]
    facts = compare_outputs(
        session_runner(reference),
        session_runner(candidate),
        batches,
        multi_label=is_multi_label(before),
        threshold=saved_threshold(before, 0.5),
        atol=atol,
        rtol=rtol,
    )
    return facts | {"inputs": origin}


def file_sizes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}


def find_initializer(
    inits: dict[str, onnx.TensorProto], value: np.ndarray, *, prefer: str, taken: list[str]
) -> str | None:
    """The initializer holding ``value`` (or its transpose, as exporters fold Linear weights):
    ``prefer`` if it still does, else the first other one not already ``taken``."""
    import numpy as np
    from onnx import numpy_helper

    def holds(init: onnx.TensorProto) -> bool:
        if int(np.prod(init.dims)) != value.size:
            return False
        array = numpy_helper.to_array(init)
        if array.shape == value.shape and np.array_equal(array, value):
            return True
        return value.ndim == 2 and array.shape == value.T.shape and np.array_equal(array, value.T)

    if prefer in inits and holds(inits[prefer]):
        return prefer
    return next((name for name, init in inits.items() if name not in taken and holds(init)), None)


def relocate_head(before: onnx.ModelProto, after: onnx.ModelProto, names: list[str]) -> list[str]:
    """The head's initializer names in a rewritten graph: the same names if they still hold the same
    values, else initializers with equal (or transposed) values; [] when it cannot be found."""
    from onnx import numpy_helper

    old = {i.name: i for i in before.graph.initializer}
    new = {i.name: i for i in after.graph.initializer}
    located: list[str] = []
    for name in names:
        if name not in old:
            return []
        match = find_initializer(new, numpy_helper.to_array(old[name]), prefer=name, taken=located)
        if match is None:
            return []
        located.append(match)
    return located


def has_external_data(model: onnx.ModelProto) -> bool:
    from onnx.external_data_helper import uses_external_data

    return any(uses_external_data(i) for i in model.graph.initializer)


def outside_tolerance_message(what: str, facts: dict[str, Any]) -> str:
    return (
        f"{what} logits differ beyond tolerance on {facts['examples']} texts: max |diff| {facts['max_abs_diff']:.3g} "
        f"(atol {facts['atol']:g}, rtol {facts['rtol']:g}), {facts['outside_tolerance']} logits outside, "
        f"worst on text {facts['worst_example']}; prediction agreement {facts['prediction_agreement']:.1%}"
    )
