"""``openvino.int8``: NNCF post-training int8 of an OpenVINO IR.

- ``ptq``: ``nncf.quantize`` with ``model_type=TRANSFORMER``: FakeQuantize ops on the MatMul inputs
  (weights and activations), activation ranges calibrated on a seeded sample of the task's
  training texts (one text per item, unpadded), SmoothQuant and fast bias correction as NNCF
  applies them to transformers. The CPU plugin runs the quantized MatMuls as int8 kernels.
- ``accuracy-control``: ``nncf.quantize_with_accuracy_control``: the same, then NNCF ranks the
  quantized layers on a validation sample of the task and reverts the most harmful to float until
  the task's metric drops by at most ``max_drop``.
- ``weights-only``: ``nncf.compress_weights`` (INT8_ASYM): int8 weights, float activations.

The classification head stays float unless ``quantize_head``; the step records how often the new
model's predictions agree with its input's on eval texts.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from slimkit.errors import SlimkitError
from slimkit_openvino import ir
from slimkit_openvino.config import Int4Config, Int8Config
from slimkit_transformers.steps import calibration_inputs, step_task

if TYPE_CHECKING:
    import openvino as ov  # type: ignore[import-untyped]

    from slimkit.artifacts import Artifact
    from slimkit.context import StepContext

PRECISION = {"ptq": "int8", "accuracy-control": "int8-accuracy-control", "weights-only": "int8-weights"}
# Ops that hold or compute integers after quantization: a quantized model must contain some.
FAKE_QUANTIZE = "FakeQuantize"


def items(tokenizer: Any, texts: ir.Inputs, names: list[str], max_length: int) -> list[dict[str, Any]]:
    """One encoded item per text, unpadded: the statistics see no padding tokens."""
    return [
        ir.encode(tokenizer, texts[i : i + 1], names, max_length=max_length, pad_to_max=False)
        for i in range(len(texts))
    ]


def ignored_scope(manifest: dict[str, Any], config: Int8Config | Int4Config) -> Any:
    import nncf  # type: ignore[import-untyped]

    names = [] if config.quantize_head else list(manifest.get("head_ops", []))
    # validate=False: many head ops (Add, Convert) are not quantizable and NNCF would refuse them.
    return nncf.IgnoredScope(names=names, validate=False) if names else None


def _advanced(config: Int8Config) -> Any:
    from nncf.quantization.advanced_parameters import (  # type: ignore[import-untyped]
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
    )

    if config.smooth_quant:
        return None
    return AdvancedQuantizationParameters(smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=-1))


def _metric(multi_label: bool) -> str:
    return "micro_f1" if multi_label else "accuracy"


def _validation(step: StepContext[Int8Config], tokenizer: Any, names: list[str]) -> tuple[Any, Any, str]:
    """(validation dataset, validation_fn, metric name): the task's validation slice, one text per
    item, scored as slimkit scores the eval split (micro-F1 at the saved threshold, or accuracy)."""
    import nncf
    import numpy as np

    from slimkit_transformers import scores
    from slimkit_transformers.predictors import saved_threshold

    config = step.config
    task = step_task(step)
    split = task.validation.head(config.validation_examples)
    if not len(split):
        raise SlimkitError(
            f"step {step.name!r}: openvino.int8 mode 'accuracy-control' needs the task's validation slice, which is "
            "empty",
            fix="give the task more training rows, or use mode = 'ptq'",
        )
    inputs = items(tokenizer, split.inputs, names, config.max_length)
    pairs = list(zip(inputs, list(split.labels), strict=True))
    threshold = saved_threshold(step.input.path, task.threshold)
    metric = _metric(task.multi_label)

    def validate(compiled: Any, data: Any) -> tuple[float, None]:
        run = ir.runner(compiled)
        logits, labels = [], []
        for encoded, label in data:
            logits.append(run(encoded))
            labels.append(label)
        predicted = scores.predict(np.concatenate(logits), task.multi_label, threshold)
        found = scores.classification_scores(np.asarray(labels), predicted, task.multi_label)
        return found[metric], None

    return nncf.Dataset(pairs, lambda item: item[0]), validate, metric


def quantize(step: StepContext[Int8Config]) -> Artifact:
    import nncf
    import openvino as ov

    from slimkit_transformers.models import load_tokenizer

    config = step.config
    source = ir.model_file(step.input.path)
    manifest = ir.read_manifest(step.input.path)
    model = ov.Core().read_model(str(source))
    names = ir.input_names(model)
    tokenizer = load_tokenizer(ir.folder_of(step.input.path))
    facts: dict[str, Any] = {"mode": config.mode, "embeddings": config.embeddings}
    started = time.perf_counter()
    if config.embeddings == "int4":
        from slimkit_openvino.int4 import four_bit_embeddings

        model = four_bit_embeddings(model)
    if config.mode == "weights-only":
        quantized = nncf.compress_weights(
            model, mode=nncf.CompressWeightsMode.INT8_ASYM, ignored_scope=ignored_scope(manifest, config)
        )
        facts["head_ignored"] = None if config.quantize_head else manifest.get("head_ops", [])
    else:
        texts = calibration_inputs(step, config.calibration_examples)  # (text, pair) tuples in a pair task
        calibration = nncf.Dataset(items(tokenizer, texts, names, config.max_length))
        common: dict[str, Any] = {
            "preset": nncf.QuantizationPreset.MIXED
            if config.preset == "mixed"
            else nncf.QuantizationPreset.PERFORMANCE,
            "model_type": nncf.ModelType.TRANSFORMER,
            "subset_size": len(texts),
            "fast_bias_correction": config.fast_bias_correction,
            "ignored_scope": ignored_scope(manifest, config),
            "advanced_quantization_parameters": _advanced(config),
        }
        facts |= {
            "preset": config.preset,
            "calibration_examples": len(texts),
            "calibration_split": "train",
            "smooth_quant": config.smooth_quant,
            "fast_bias_correction": config.fast_bias_correction,
            "head_ignored": None if config.quantize_head else manifest.get("head_ops", []),
        }
        if config.mode == "ptq":
            quantized = nncf.quantize(model, calibration, **_renamed(common))
        else:
            from nncf.quantization.advanced_parameters import (
                AdvancedAccuracyRestorerParameters,
            )

            validation, validate, metric = _validation(step, tokenizer, names)
            quantized = nncf.quantize_with_accuracy_control(
                model, calibration, validation, validate, max_drop=config.max_drop,
                drop_type=nncf.DropType.ABSOLUTE,
                advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
                    max_num_iterations=config.max_iterations
                ),
                **common,
            )  # fmt: skip
            facts |= {
                "metric": metric,
                "max_drop": config.max_drop,
                "validation_examples": min(config.validation_examples, len(step_task(step).validation)),
                "validation_split": "validation",
            }
    facts["quantize_seconds"] = round(time.perf_counter() - started, 2)
    quantized_something = low_precision_weights(quantized) if config.mode == "weights-only" else _fake(quantized)
    if not quantized_something:
        raise nothing_quantized(f"openvino.int8 in mode {config.mode!r}", quantized)
    return finish(step, manifest, quantized, PRECISION[config.mode], facts)


def _renamed(common: dict[str, Any]) -> dict[str, Any]:
    """nncf.quantize calls the advanced parameters ``advanced_parameters``."""
    out = dict(common)
    out["advanced_parameters"] = out.pop("advanced_quantization_parameters")
    return out


def low_precision_weights(model: ov.Model, bits: tuple[str, ...] = ("i8", "u8", "i4", "u4")) -> int:
    """Constants stored in the given element types: by default 8 bits or fewer (the weights of a
    compressed or quantized model)."""
    return sum(
        1
        for op in model.get_ops()
        if op.get_type_name() == "Constant" and op.get_element_type().get_type_name() in bits
    )


def _fake(model: ov.Model) -> int:
    return ir.op_counts(model).get(FAKE_QUANTIZE, 0)


def nothing_quantized(what: str, model: ov.Model) -> SlimkitError:
    """The one-line error for a model NNCF left as it was; ``what`` names the technique and mode."""
    ops = ", ".join(list(ir.op_counts(model))[:12])
    return SlimkitError(
        f"{what}: NNCF quantized nothing (ops: {ops})",
        fix="check that the input is an IR of a transformer classifier written by openvino.export",
    )


def finish(
    step: StepContext[Any], manifest: dict[str, Any], quantized: ov.Model, precision: str, facts: dict[str, Any]
) -> Artifact:
    """Put the head back as it was, save the IR with its sidecars and manifest, record what changed."""
    import openvino as ov

    config = step.config
    counts = ir.op_counts(quantized)
    restored = 0
    if not config.quantize_head:
        original = ov.Core().read_model(str(ir.model_file(step.input.path)))
        restored = ir.restore_head(original, quantized, list(manifest.get("head_ops", [])))
    ir.save(quantized, step.output_dir)
    ir.copy_sidecars(step.input.path, step.output_dir)
    # The head Constants keep their names when NNCF leaves the head float.
    head = list(manifest.get("head_constants", []))
    checksum = ir.head_checksum(quantized, head)
    compute = manifest.get("inference_precision", "f32")
    agreement = ir.compare_models(step, step.input.path, quantized, config.check_examples, precision=compute)
    ir.write_manifest(
        step.output_dir,
        manifest
        | {
            "xml_file": ir.MODEL_FILE,
            "precision": precision,
            "head_constants": head if checksum is not None else [],
            "head_checksum": checksum,
            "history": [*manifest.get("history", []), step.technique.name],
        },
    )
    return step.artifact(
        xml_file=ir.MODEL_FILE,
        precision=precision,
        fake_quantize_ops=counts.get(FAKE_QUANTIZE, 0),
        low_precision_constants=low_precision_weights(quantized),
        op_counts=counts,
        head_kept_float=checksum is not None,
        head_inputs_restored=restored,
        agreement_with_input=agreement,
        ir_bytes=(step.output_dir / ir.WEIGHTS_FILE).stat().st_size,
        versions=ir.versions(),
        **facts,
    )
