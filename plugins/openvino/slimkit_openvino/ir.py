"""What every step and the predictor share: the folder layout, compiling, encoding and output checks.

An ``openvino`` artifact is a folder: ``openvino_model.xml`` and ``openvino_model.bin`` (the IR,
named as optimum-intel names them), the tokenizer and ``config.json`` (labels, problem type) of
the model it came from, ``slimkit-task.json`` (the tuned threshold) when the fine-tuning step wrote
one, and ``slimkit-openvino.json``, a manifest that later steps and the predictor read (input
names, precision, the inference precision to compile with, the classification head's constants
and checksum, parameter counts).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimkit.errors import SlimkitError
from slimkit_transformers.folders import FolderLayout, folder_of
from slimkit_transformers.predictors import saved_threshold
from slimkit_transformers.steps import HEAD_NAMES

if TYPE_CHECKING:
    import openvino as ov  # type: ignore[import-untyped]
    from numpy.typing import NDArray

    from slimkit.context import StepContext

Inputs = list[str] | list[tuple[str, str]]  # a tokenizer's batch: texts, or (text, pair) tuples
MODEL_FILE = "openvino_model.xml"
WEIGHTS_FILE = "openvino_model.bin"
MANIFEST = "slimkit-openvino.json"
INPUT_ORDER = ("input_ids", "attention_mask", "token_type_ids")
# The INFERENCE_PRECISION_HINT values behind the config's names ('auto' sets none).
PRECISION_HINTS = {"f32": "f32", "bf16": "bf16", "f16": "f16"}
# Ops that run the classification head, as the torch frontend names them: '__module.classifier/...'
# (or '__module.model.classifier/...' inside the export wrapper).
HEAD_OP = re.compile(r"^__module\.(?:model\.)?(?:" + "|".join(re.escape(h) for h in HEAD_NAMES) + r")[/.]")
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
    file_key="xml_file",
    suffix=".xml",
    model_suffixes=(".xml", ".bin"),
    producer="openvino.export",
    described="one OpenVINO IR (.xml)",
)
read_manifest, write_manifest = LAYOUT.read_manifest, LAYOUT.write_manifest
model_file, copy_sidecars = LAYOUT.model_file, LAYOUT.copy_sidecars


def is_multi_label(path: Path) -> bool:
    config = folder_of(path) / "config.json"
    data = json.loads(config.read_text(encoding="utf-8")) if config.is_file() else {}
    return data.get("problem_type") == "multi_label_classification"


def save(model: ov.Model, folder: Path) -> Path:
    """Write the IR with float32 weights (``save_model`` would halve them to fp16 by default)."""
    import openvino as ov

    target = folder / MODEL_FILE
    ov.save_model(model, str(target), compress_to_fp16=False)
    return target


# -- the model ------------------------------------------------------------------------------


def op_counts(model: ov.Model) -> dict[str, int]:
    """Ops by type (Parameter, Result and Constant left out), most frequent first."""
    counts = Counter(op.get_type_name() for op in model.get_ops())
    for skip in ("Parameter", "Result", "Constant"):
        counts.pop(skip, None)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def head_ops(model: ov.Model) -> list[str]:
    """Friendly names of the ops that compute the classification head: left float by int8."""
    return [op.get_friendly_name() for op in model.get_ops() if HEAD_OP.match(op.get_friendly_name())]


def _constants(model: ov.Model) -> dict[str, Any]:
    return {op.get_friendly_name(): op for op in model.get_ops() if op.get_type_name() == "Constant"}


def find_head_constants(model: ov.Model, tensors: dict[str, NDArray[Any]]) -> list[str]:
    """Names of the Constants that hold ``tensors`` (the torch head's parameters, maybe transposed or
    with broadcast axes), the one named after the parameter first; [] when any cannot be found."""
    import numpy as np

    constants = _constants(model)
    found: list[str] = []
    for name, value in tensors.items():
        if not value.any():
            continue  # an all-zero bias is folded away by the converter, and adds nothing to the checksum

        def holds(op: Any, value: NDArray[Any] = value) -> bool:
            shape = tuple(op.get_output_shape(0))
            if int(np.prod(shape)) != value.size or op.get_element_type().get_type_name() != "f32":
                return False
            data = op.get_data()
            # A bias may be stored with broadcast axes ([1, n] for [n]), a weight transposed.
            if np.array_equal(data.reshape(value.shape), value):
                return True
            return value.ndim == 2 and data.shape == value.T.shape and np.array_equal(data, value.T)

        preferred = [n for n in (f"self.{name}", f"self.model.{name}") if n in constants]
        others = [n for n in constants if n not in preferred and n not in found]
        match = next((n for n in [*preferred, *others] if holds(constants[n])), None)
        if match is None:
            return []
        found.append(match)
    return found


def restore_head(original: ov.Model, quantized: ov.Model, names: list[str]) -> int:
    """Give the head ops of ``quantized`` the inputs they had in ``original``; the number of inputs
    restored.

    NNCF's SmoothQuant ignores the ignored scope: it puts a per-channel Multiply on the head's input
    and rescales the head's weights by its inverse, which computes the same but changes the weights
    (and their checksum). Where that Multiply feeds head ops only, it is bypassed and the original
    weight Constants put back; anything else is left as NNCF wrote it."""
    import numpy as np
    import openvino as ov

    head = set(names)
    before = {op.get_friendly_name(): op for op in original.get_ops() if op.get_friendly_name() in head}
    restored = 0
    for op in quantized.get_ops():
        was = before.get(op.get_friendly_name())
        if was is None or was.get_input_size() != op.get_input_size():
            continue
        for now, then in zip(op.inputs(), was.inputs(), strict=True):
            source, original_source = now.get_source_output().get_node(), then.get_source_output().get_node()
            if source.get_type_name() == "Multiply" and "smooth_quant" in source.get_friendly_name():
                consumers = {t.get_node().get_friendly_name() for t in source.output(0).get_target_inputs()}
                if consumers <= head:
                    now.replace_source_output(source.input_value(0))
                    restored += 1
            elif source.get_type_name() == "Constant" and original_source.get_type_name() == "Constant":
                data = original_source.get_data()
                if source.get_output_shape(0) == original_source.get_output_shape(0) and not np.array_equal(
                    source.get_data(), data
                ):
                    constant = ov.op.Constant(data.copy())
                    constant.set_friendly_name(original_source.get_friendly_name())
                    now.replace_source_output(constant.output(0))
                    restored += 1
    if restored:
        quantized.validate_nodes_and_infer_types()
    return restored


def head_checksum(model: ov.Model, names: list[str]) -> float | None:
    """Sum of |w| over the head's Constants, as the torch predictor computes it; None when any is
    missing or no longer float (then the head cannot be compared)."""
    import numpy as np

    if not names:
        return None
    constants = _constants(model)
    total = 0.0
    for name in names:
        op = constants.get(name)
        if op is None or op.get_element_type().get_type_name() != "f32":
            return None
        total += float(np.abs(op.get_data().astype(np.float64)).sum())
    return total


# -- running ----------------------------------------------------------------------------------


def compile_config(threads: int | None, precision: str) -> dict[str, Any]:
    """The CPU plugin's properties: one stream, the latency hint and, with ``threads``, that many
    inference threads; ``precision`` is the config's name ('auto' sets no hint)."""
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
    if threads is not None:
        config["INFERENCE_NUM_THREADS"] = threads
    if precision in PRECISION_HINTS:
        config["INFERENCE_PRECISION_HINT"] = PRECISION_HINTS[precision]
    return config


def compile_model(
    model: ov.Model | Path, *, threads: int | None = None, precision: str = "f32", device: str = "cpu"
) -> ov.CompiledModel:
    import openvino as ov

    if device != "cpu":
        raise SlimkitError(
            f"slimkit-openvino runs OpenVINO models on the CPU only, not on {device!r}",
            fix="measure on device = 'cpu'",
        )
    source = str(model_file(model)) if isinstance(model, Path) else model
    return ov.Core().compile_model(source, "CPU", compile_config(threads, precision))


def input_names(model: ov.Model | ov.CompiledModel) -> list[str]:
    return [port.get_any_name() for port in model.inputs]


def encode(tokenizer: Any, texts: Inputs, names: list[str], *, max_length: int, pad_to_max: bool) -> dict[str, Any]:
    """Token arrays for the IR: int64, exactly its inputs (token types zero if the tokenizer
    gives none). ``texts`` may be (text, pair) tuples, encoded as sentence pairs."""
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
            raise SlimkitError(f"the OpenVINO model wants input {name!r}, which the tokenizer does not produce")
    return out


def runner(compiled: ov.CompiledModel) -> Callable[[dict[str, Any]], NDArray[Any]]:
    """Logits of the compiled model for encoded inputs (copied: the request reuses its buffers)."""
    request = compiled.create_infer_request()
    names = input_names(compiled)

    def run(inputs: dict[str, Any]) -> NDArray[Any]:
        request.infer({n: inputs[n] for n in names})
        return request.get_output_tensor(0).data.copy()  # type: ignore[no-any-return]

    return run


# -- checks -----------------------------------------------------------------------------------


def check_texts(step: StepContext[Any], n: int) -> tuple[Inputs, str]:
    """Up to ``n`` eval inputs of the pipeline's task (texts, or (text, pair) tuples in a
    sentence-pair task), and where they came from."""
    if step.task is None:
        return FALLBACK_TEXTS[:n], "built-in sentences (the pipeline has no task)"
    from slimkit_transformers.steps import step_task

    texts = step_task(step).eval.inputs[:n] or FALLBACK_TEXTS[:n]
    return texts, f"{len(texts)} eval texts of the task"


def check_batches(texts: Inputs, batch_size: int = 16) -> list[Inputs]:
    """A batch of one (the dynamic batch axis at 1), then batches of real, unequal lengths."""
    if not texts:
        return []
    rest = texts[1:]
    return [texts[:1], *[rest[i : i + batch_size] for i in range(0, len(rest), batch_size)]]


def compare_outputs(
    reference: Callable[[dict[str, Any]], NDArray[Any]],
    candidate: Callable[[dict[str, Any]], NDArray[Any]],
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
        facts |= {
            "atol": atol,
            "rtol": rtol,
            "within_tolerance": bool((excess <= 0).all()),
            "worst_example": int(np.unravel_index(np.argmax(excess), excess.shape)[0]),
            "outside_tolerance": int((excess > 0).sum()),
        }
    return facts


def compare_models(
    step: StepContext[Any], before: Path, after: ov.Model, examples: int, *, precision: str = "f32"
) -> dict[str, Any]:
    """The step's input IR and its new model on the same eval texts, both compiled with ``precision``."""
    from slimkit_transformers.models import load_tokenizer

    texts, origin = check_texts(step, examples)
    reference, candidate = compile_model(before, precision=precision), compile_model(after, precision=precision)
    names = input_names(reference)
    tokenizer = load_tokenizer(folder_of(before))
    batches = [encode(tokenizer, b, names, max_length=128, pad_to_max=False) for b in check_batches(texts)]
    facts = compare_outputs(
        runner(reference),
        runner(candidate),
        batches,
        multi_label=is_multi_label(before),
        threshold=saved_threshold(before, 0.5),
    )
    return facts | {"inputs": origin, "inference_precision": precision}


def outside_tolerance_message(what: str, facts: dict[str, Any]) -> str:
    return (
        f"{what} logits differ beyond tolerance on {facts['examples']} texts: max |diff| {facts['max_abs_diff']:.3g} "
        f"(atol {facts['atol']:g}, rtol {facts['rtol']:g}), {facts['outside_tolerance']} logits outside, "
        f"worst on text {facts['worst_example']}; prediction agreement {facts['prediction_agreement']:.1%}"
    )


def versions() -> dict[str, str]:
    import contextlib
    import importlib.metadata as md

    found = {}
    for name in ("openvino", "nncf", "torch", "transformers"):
        with contextlib.suppress(md.PackageNotFoundError):
            found[name] = md.version(name)
    return found
