"""``onnx.export``: a transformers classifier to an ONNX graph, checked against torch on real texts.

The graph takes the tokenizer's arrays (``input_ids``, ``attention_mask`` and, for BERT-class
models, ``token_type_ids``) with dynamic batch and sequence axes, and returns ``logits``. After
export, ONNX Runtime and torch run the same eval texts; logits that differ beyond the tolerance
fail the step with the figures. Tokenizer, label config and task facts are saved beside the graph.
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
from slimkit_onnx import graph
from slimkit_onnx.config import ExportConfig
from slimkit_transformers.predictors import saved_threshold
from slimkit_transformers.steps import HEAD_NAMES, carry_task_file

if TYPE_CHECKING:
    import numpy as np
    import onnx
    import torch

    from slimkit.artifacts import Artifact
    from slimkit.context import StepContext

INPUT_ORDER = ("input_ids", "attention_mask", "token_type_ids")
LARGE_BYTES = 1_800_000_000  # protobuf's 2 GiB limit, with margin: larger weights go to external data


def _load(path: Path, attn_implementation: str) -> tuple[Any, Any]:
    import torch

    from slimkit_transformers.models import classifier_from_pretrained, load_tokenizer

    model = classifier_from_pretrained(path, attn_implementation=attn_implementation, dtype=torch.float32)
    tokenizer = load_tokenizer(path)
    model.config.pad_token_id = tokenizer.pad_token_id
    if hasattr(model.config, "use_cache"):
        model.config.use_cache = False
    return model.eval(), tokenizer


def graph_inputs(model: Any, tokenizer: Any, pairs: bool) -> list[str]:
    """The tokenizer outputs that the model's forward accepts, in the wrapper's argument order;
    for a sentence pair (``pairs``) when the task has them, so that token types are an input
    wherever the tokenizer gives them for a pair."""
    produced = set((tokenizer("a", "b") if pairs else tokenizer("a")).keys())
    accepted = set(inspect.signature(model.forward).parameters)
    names = [n for n in INPUT_ORDER if n in produced and n in accepted]
    if names[:2] != ["input_ids", "attention_mask"]:
        raise SlimkitError(f"onnx.export: the tokenizer must give input_ids and attention_mask (gives {names})")
    return names


def _wrapper(model: Any) -> torch.nn.Module:
    """The classifier as positional (input_ids, attention_mask[, token_type_ids]) -> logits."""
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


def export_graph(
    module: torch.nn.Module, args: tuple[Any, ...], path: Path, names: list[str], exporter: str, opset: int, large: bool
) -> None:
    """torch.onnx.export with dynamic batch and sequence axes on every input."""
    import torch

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow on shapes
        if exporter == "torchscript":
            axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}}
            torch.onnx.export(
                module, args, str(path), input_names=names, output_names=["logits"], dynamic_axes=axes,
                opset_version=opset, do_constant_folding=True, dynamo=False,
            )  # fmt: skip
        else:
            dim = torch.export.Dim.DYNAMIC
            shapes = {n: {0: dim, 1: dim} for n in names}
            program = torch.onnx.export(
                module, args, input_names=names, output_names=["logits"], dynamic_shapes=shapes,
                opset_version=opset, dynamo=True, optimize=True, verbose=False,
            )  # fmt: skip
            if program is None:
                raise SlimkitError("onnx.export: the dynamo exporter returned no program")
            program.save(str(path), external_data=large)


def _head_tensors(model: Any) -> dict[str, Any]:
    """The head's float parameters, chosen exactly as the torch predictor's head checksum does."""
    for attr in HEAD_NAMES:
        head = getattr(model, attr, None)
        if head is None:
            continue
        found = {f"{attr}.{n}": p.detach().float().numpy() for n, p in head.named_parameters() if p.is_floating_point()}
        if found:
            return found
    return {}


def head_initializers(model: Any, onnx_model: onnx.ModelProto) -> list[str]:
    """Names of the graph initializers that hold the classification head (same values, maybe transposed)."""
    inits = {i.name: i for i in onnx_model.graph.initializer}
    names: list[str] = []
    for name, value in _head_tensors(model).items():
        match = graph.find_initializer(inits, value, prefer=name, taken=names)
        if match is None:
            return []
        names.append(match)
    return names


def export(step: StepContext[ExportConfig]) -> Artifact:
    from slimkit_transformers.models import saved_size_facts

    config = step.config
    opset = config.opset or (17 if config.exporter == "torchscript" else 18)
    model, tokenizer = _load(step.input.path, config.attn_implementation)
    texts, origin = graph.check_texts(step, config.check_examples)
    names = graph_inputs(model, tokenizer, pairs=isinstance(texts[0], tuple))
    size = saved_size_facts(model)
    large = size["params"] * 4 > LARGE_BYTES
    export_seconds = _write_graph(step, model, tokenizer, names, texts[:2], opset, large)
    tokenizer.save_pretrained(step.output_dir)
    model.config.save_pretrained(step.output_dir)
    carry_task_file(step)
    parity = _check_parity(step, model, tokenizer, names, texts) | {"inputs": origin}
    counts, head = _write_manifest(step, model, names, opset, large, size)
    return step.artifact(
        onnx_file=graph.MODEL_FILE,
        exporter=config.exporter,
        opset=opset,
        attn_implementation=config.attn_implementation,
        input_names=names,
        precision="float32",
        export_seconds=round(export_seconds, 2),
        parity=parity,
        op_counts=counts,
        head_initializers=head,
        graph_bytes=(step.output_dir / graph.MODEL_FILE).stat().st_size,
        versions=_versions(),
    )


def _write_graph(
    step: StepContext[ExportConfig],
    model: Any,
    tokenizer: Any,
    names: list[str],
    sample_texts: graph.Inputs,
    opset: int,
    large: bool,
) -> float:
    """Export the model to ``model.onnx`` in the step's folder (weights in external data when
    ``large``); returns the seconds it took."""
    config = step.config
    sample = tokenizer(sample_texts, padding=True, truncation=True, max_length=config.max_length, return_tensors="pt")
    args = tuple(sample[n] for n in names)
    started = time.perf_counter()
    try:
        export_graph(_wrapper(model), args, step.output_dir / graph.MODEL_FILE, names, config.exporter, opset, large)
    except SlimkitError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise SlimkitError(
            f"onnx.export: torch.onnx.export ({config.exporter}, opset {opset}) failed: {type(exc).__name__}: {first}",
            fix="try exporter = 'dynamo' or 'torchscript', or another opset",
        ) from exc
    return time.perf_counter() - started


def _check_parity(
    step: StepContext[ExportConfig], model: Any, tokenizer: Any, names: list[str], texts: graph.Inputs
) -> dict[str, Any]:
    """ONNX Runtime against torch on ``texts``: the facts, or a SlimkitError beyond the tolerance."""
    import torch

    config, out = step.config, step.output_dir
    module = _wrapper(model)
    session = graph.open_session(out / graph.MODEL_FILE)
    if graph.input_names(session) != names:
        raise SlimkitError(f"onnx.export: the graph's inputs are {graph.input_names(session)}, expected {names}")

    def reference(inputs: dict[str, Any]) -> np.ndarray:
        with torch.inference_mode():
            return module(*(torch.from_numpy(inputs[n]) for n in names)).numpy()  # type: ignore[no-any-return]

    batches = [
        graph.encode(tokenizer, b, names, max_length=config.max_length, pad_to_max=False)
        for b in graph.check_batches(texts)
    ]
    parity = graph.compare_outputs(
        reference, graph.session_runner(session), batches, multi_label=graph.is_multi_label(out),
        threshold=saved_threshold(out, 0.5), atol=config.atol, rtol=config.rtol,
    )  # fmt: skip
    del session
    if not parity["within_tolerance"]:
        raise SlimkitError(
            graph.outside_tolerance_message("onnx.export: ONNX Runtime and torch", parity),
            fix="export with exporter = 'torchscript' and attn_implementation = 'eager', or loosen atol",
        )
    return parity


def _write_manifest(
    step: StepContext[ExportConfig], model: Any, names: list[str], opset: int, large: bool, size: dict[str, Any]
) -> tuple[dict[str, int], list[str]]:
    """The manifest later steps and the predictor read; returns (op counts, head initializers)."""
    import onnx

    from slimkit_transformers.models import is_decoder

    config = step.config
    onnx_model = onnx.load(str(step.output_dir / graph.MODEL_FILE), load_external_data=not large)
    head = head_initializers(model, onnx_model) if not large else []
    manifest = {
        "onnx_file": graph.MODEL_FILE,
        "input_names": names,
        "output_names": ["logits"],
        "precision": "float32",
        "exporter": config.exporter,
        "opset": opset,
        "attn_implementation": config.attn_implementation,
        "model_type": model.config.model_type,
        "decoder": is_decoder(model.config),
        "params": size["params"],
        "embedding_share": size["embedding_share"],
        "head_initializers": head,
        "head_checksum": graph.head_checksum(onnx_model, head),
        "history": ["onnx.export"],
    }
    graph.write_manifest(step.output_dir, manifest)
    return graph.op_counts(onnx_model), head


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    found = {}
    for name in ("torch", "onnx", "onnxruntime", "onnxscript", "transformers"):
        with contextlib.suppress(md.PackageNotFoundError):
            found[name] = md.version(name)
    return found
