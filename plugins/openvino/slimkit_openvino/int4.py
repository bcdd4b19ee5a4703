"""``openvino.int4``: NNCF 4-bit weight compression of an OpenVINO IR.

``nncf.compress_weights`` with INT4_SYM or INT4_ASYM in groups: the weights are stored in 4 bits
with a scale (and zero point) per group and decompressed by the CPU plugin, which quantizes the
activations of those MatMuls to int8 on the fly (its dynamic quantization). With ``all_layers``
the embedding tables are 4-bit too: in a small classifier they are the largest tensor. The
data-aware methods (scale estimation, AWQ, GPTQ) calibrate on the task's training texts. The
classification head stays float unless ``quantize_head``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from slimkit.errors import SlimkitError
from slimkit_openvino import ir
from slimkit_openvino.config import Int4Config
from slimkit_openvino.quantize import finish, ignored_scope, items, low_precision_weights, nothing_quantized
from slimkit_transformers.steps import calibration_inputs

if TYPE_CHECKING:
    import openvino as ov  # type: ignore[import-untyped]

    from slimkit.artifacts import Artifact
    from slimkit.context import StepContext

PRECISION = "int4-weights"
# The options that decide how the weights are rounded, recorded in the artifact's metadata as given.
OPTIONS = ("symmetric", "group_size", "group_size_fallback", "ratio", "all_layers", "scale_estimation", "awq", "gptq")


def _data_aware(config: Int4Config) -> bool:
    """Whether NNCF needs calibration texts: for a data-aware method, or to rank layers when ratio < 1."""
    return config.scale_estimation or config.awq or config.gptq or config.ratio < 1


def _options(config: Int4Config) -> dict[str, Any]:
    import nncf  # type: ignore[import-untyped]
    from nncf.quantization.advanced_parameters import (  # type: ignore[import-untyped]
        AdvancedCompressionParameters,
        GroupSizeFallbackMode,
    )

    mode = nncf.CompressWeightsMode.INT4_SYM if config.symmetric else nncf.CompressWeightsMode.INT4_ASYM
    fallback = GroupSizeFallbackMode(config.group_size_fallback)
    return {
        "mode": mode,
        "group_size": config.group_size,
        "advanced_parameters": AdvancedCompressionParameters(group_size_fallback_mode=fallback),
        "ratio": config.ratio,
        "all_layers": config.all_layers,
        "scale_estimation": config.scale_estimation,
        "awq": config.awq,
        "gptq": config.gptq,
    }


def four_bit_embeddings(model: ov.Model) -> ov.Model:
    """The embedding tables (the Gathers' Constants) with this technique's default rounding (4 bits,
    symmetric, groups of 32, int8 where a table's width is not a multiple of 32); every MatMul left
    as it was, for the int8 quantization that follows (``openvino.int8`` ``embeddings = "int4"``)."""
    import nncf

    ignored = nncf.IgnoredScope(types=["MatMul"], validate=False)
    return nncf.compress_weights(model, ignored_scope=ignored, **_options(Int4Config()))


def compress(step: StepContext[Int4Config]) -> Artifact:
    import nncf
    import openvino as ov

    from slimkit_transformers.models import load_tokenizer

    config = step.config
    manifest = ir.read_manifest(step.input.path)
    model = ov.Core().read_model(str(ir.model_file(step.input.path)))
    facts: dict[str, Any] = config.model_dump(include=set(OPTIONS)) | {
        "head_ignored": None if config.quantize_head else manifest.get("head_ops", []),
    }
    dataset = None
    if _data_aware(config):
        tokenizer = load_tokenizer(ir.folder_of(step.input.path))
        texts = calibration_inputs(step, config.calibration_examples)
        dataset = nncf.Dataset(items(tokenizer, texts, ir.input_names(model), config.max_length))
        facts |= {"calibration_examples": len(texts), "calibration_split": "train"}
    started = time.perf_counter()
    try:
        compressed = nncf.compress_weights(
            model, dataset=dataset, ignored_scope=ignored_scope(manifest, config), **_options(config)
        )
    except (nncf.errors.InvalidGroupSizeError, nncf.ValidationError, nncf.ParameterNotSupportedError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        group = isinstance(exc, nncf.errors.InvalidGroupSizeError)
        raise SlimkitError(
            f"openvino.int4: NNCF could not compress the weights: {first}",
            fix="set group_size_fallback = 'adjust' (another group, or int8, where the width needs it), or a "
            "group_size that divides every layer's input width (-1: one group per channel)"
            if group
            else "check the step's options against NNCF's (docs/plugins/openvino.md)",
        ) from exc
    facts["quantize_seconds"] = round(time.perf_counter() - started, 2)
    if not low_precision_weights(compressed):
        raise nothing_quantized("openvino.int4", compressed)
    facts["four_bit_constants"] = low_precision_weights(compressed, bits=("u4", "i4"))
    return finish(step, manifest, compressed, PRECISION, facts)
