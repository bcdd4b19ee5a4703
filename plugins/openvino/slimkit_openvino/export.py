"""``openvino.export``: a transformers classifier to OpenVINO IR, checked against torch on real texts.

``openvino.convert_model`` traces the classifier (wrapped to take the tokenizer's arrays and return
logits, no KV cache) with dynamic batch and sequence axes; the IR is saved with float32 weights.
OpenVINO (compiled in f32) and torch then run the same eval texts; logits that differ beyond the
tolerance fail the step with the figures. Tokenizer, label config and task facts are saved beside
the IR.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimkit.errors import SlimkitError
from slimkit_openvino import ir
from slimkit_openvino.config import ExportConfig
from slimkit_transformers.predictors import saved_threshold
from slimkit_transformers.steps import HEAD_NAMES, carry_task_file

if TYPE_CHECKING:
    import openvino as ov  # type: ignore[import-untyped]
    import torch
    from numpy.typing import NDArray

    from slimkit.artifacts import Artifact
    from slimkit.context import StepContext


def _load(path: Path, attn_implementation: str) -> tuple[Any, Any]:
    import torch

    from slimkit_transformers.models import classifier_from_pretrained, load_tokenizer

    chosen: dict[str, Any] = {} if attn_implementation == "default" else {"attn_implementation": attn_implementation}
    model = classifier_from_pretrained(path, dtype=torch.float32, **chosen)
    tokenizer = load_tokenizer(path)
    model.config.pad_token_id = tokenizer.pad_token_id
    if hasattr(model.config, "use_cache"):
        model.config.use_cache = False
    return model.eval(), tokenizer


def model_inputs(model: Any, tokenizer: Any, pairs: bool) -> list[str]:
    """The tokenizer outputs that the model's forward accepts, in the wrapper's argument order; for
    a sentence pair when the task has them, so token types are an input wherever a pair gives them."""
    produced = set((tokenizer("a", "b") if pairs else tokenizer("a")).keys())
    accepted = set(inspect.signature(model.forward).parameters)
    names = [n for n in ir.INPUT_ORDER if n in produced and n in accepted]
    if names[:2] != ["input_ids", "attention_mask"]:
        raise SlimkitError(f"openvino.export: the tokenizer must give input_ids and attention_mask (gives {names})")
    return names


def _wrapper(model: Any) -> torch.nn.Module:
    """The classifier as (input_ids, attention_mask[, token_type_ids]) -> logits, without a KV cache."""
    import torch

    takes_cache = "use_cache" in inspect.signature(model.forward).parameters

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
        ) -> torch.Tensor:
            kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                kwargs["token_type_ids"] = token_type_ids
            if takes_cache:
                kwargs["use_cache"] = False
            return self.model(**kwargs).logits  # type: ignore[no-any-return]

    return Logits().eval()


def convert(module: torch.nn.Module, example: dict[str, torch.Tensor], names: list[str]) -> ov.Model:
    """openvino.convert_model with every input's batch and sequence axes dynamic, output named logits."""
    import openvino as ov
    import torch

    shapes = [(name, ov.PartialShape([-1, -1]), ov.Type.i64) for name in names]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.inference_mode():
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow on shapes
        model = ov.convert_model(module, example_input=example, input=shapes)
    got = ir.input_names(model)
    if got != names:
        raise SlimkitError(f"openvino.export: the converted model's inputs are {got}, expected {names}")
    model.outputs[0].get_tensor().set_names({"logits"})
    return model


def _head_tensors(model: Any) -> dict[str, NDArray[Any]]:
    """The head's float parameters, chosen exactly as the torch predictor's head checksum does."""
    for attr in HEAD_NAMES:
        head = getattr(model, attr, None)
        if head is None:
            continue
        found = {f"{attr}.{n}": p.detach().float().numpy() for n, p in head.named_parameters() if p.is_floating_point()}
        if found:
            return found
    return {}


def export(step: StepContext[ExportConfig]) -> Artifact:
    from slimkit_transformers.models import is_decoder, saved_size_facts

    config = step.config
    model, tokenizer = _load(step.input.path, config.attn_implementation)
    texts, origin = ir.check_texts(step, config.check_examples)
    names = model_inputs(model, tokenizer, pairs=isinstance(texts[0], tuple))
    size = saved_size_facts(model)
    sample = tokenizer(texts[:2], padding=True, truncation=True, max_length=config.max_length, return_tensors="pt")
    started = time.perf_counter()
    try:
        ov_model = convert(_wrapper(model), {n: sample[n] for n in names}, names)
    except SlimkitError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise SlimkitError(
            f"openvino.export: openvino.convert_model failed: {type(exc).__name__}: {first}",
            fix="try attn_implementation = 'eager' (or 'sdpa')",
        ) from exc
    convert_seconds = time.perf_counter() - started
    attention = str(getattr(model.config, "_attn_implementation", None) or config.attn_implementation)
    head = ir.find_head_constants(ov_model, _head_tensors(model))
    ir.save(ov_model, step.output_dir)
    tokenizer.save_pretrained(step.output_dir)
    model.config.save_pretrained(step.output_dir)
    carry_task_file(step)
    parity = _check_parity(step, model, tokenizer, names, texts) | {"inputs": origin}
    counts = ir.op_counts(ov_model)
    manifest = {
        "xml_file": ir.MODEL_FILE,
        "input_names": names,
        "output_names": ["logits"],
        "precision": "float32",
        "inference_precision": config.inference_precision,
        "attn_implementation": attention,
        "model_type": model.config.model_type,
        "decoder": is_decoder(model.config),
        "params": size["params"],
        "embedding_share": size["embedding_share"],
        "head_ops": ir.head_ops(ov_model),
        "head_constants": head,
        "head_checksum": ir.head_checksum(ov_model, head),
        "history": ["openvino.export"],
    }
    ir.write_manifest(step.output_dir, manifest)
    return step.artifact(
        xml_file=ir.MODEL_FILE,
        attn_implementation=attention,
        inference_precision=config.inference_precision,
        input_names=names,
        precision="float32",
        convert_seconds=round(convert_seconds, 2),
        parity=parity,
        op_counts=counts,
        head_constants=head,
        ir_bytes=(step.output_dir / ir.WEIGHTS_FILE).stat().st_size,
        versions=ir.versions(),
    )


def _check_parity(
    step: StepContext[ExportConfig], model: Any, tokenizer: Any, names: list[str], texts: ir.Inputs
) -> dict[str, Any]:
    """OpenVINO (f32) against torch on ``texts``: the facts, or a SlimkitError beyond the tolerance."""
    import torch

    config, out = step.config, step.output_dir
    module = _wrapper(model)
    compiled = ir.compile_model(out / ir.MODEL_FILE, precision="f32")

    def reference(inputs: dict[str, Any]) -> NDArray[Any]:
        with torch.inference_mode():
            return module(*(torch.from_numpy(inputs[n]) for n in names)).numpy()  # type: ignore[no-any-return]

    batches = [
        ir.encode(tokenizer, b, names, max_length=config.max_length, pad_to_max=False) for b in ir.check_batches(texts)
    ]
    parity = ir.compare_outputs(
        reference, ir.runner(compiled), batches, multi_label=ir.is_multi_label(out),
        threshold=saved_threshold(out, 0.5), atol=config.atol, rtol=config.rtol,
    )  # fmt: skip
    del compiled
    if not parity["within_tolerance"]:
        raise SlimkitError(
            ir.outside_tolerance_message("openvino.export: OpenVINO and torch", parity),
            fix="try attn_implementation = 'eager', or loosen atol",
        )
    return parity
