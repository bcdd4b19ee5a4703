"""bitsandbytes quantization through transformers, with the classification head checked bit for bit."""

from __future__ import annotations

import importlib.metadata as md
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slimkit.artifacts import Artifact, disk_size
from slimkit.context import StepContext
from slimkit.errors import SlimkitError
from slimkit_bnb.config import FourBitConfig, Int8Config
from slimkit_transformers.predictors import TorchPredictor, head_checksum
from slimkit_transformers.steps import carry_task_file, head_module_names, is_head


def head_tensors(model: Any, heads: list[str]) -> dict[str, Any]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if is_head(k, heads)}


def changed_tensors(before: dict[str, Any], model: Any) -> list[str]:
    """Head tensors that are missing, re-typed or not bit-identical in ``model``."""
    import torch

    after = model.state_dict()
    return [
        k
        for k, v in before.items()
        if k not in after or after[k].dtype != v.dtype or not torch.equal(v, after[k].cpu())
    ]


def load_quantized(path: Path, device: str, qconfig: Any = None) -> Any:
    import torch

    from slimkit_transformers.models import classifier_from_pretrained

    kwargs: dict[str, Any] = {"device_map": device, "dtype": torch.float32}
    if qconfig is not None:
        kwargs["quantization_config"] = qconfig
    return classifier_from_pretrained(path, **kwargs).eval()


def quantized_linears(model: Any) -> int:
    import bitsandbytes as bnb

    return sum(isinstance(m, bnb.nn.Linear8bitLt | bnb.nn.Linear4bit) for m in model.modules())


def int8(step: StepContext[Int8Config]) -> Artifact:
    """``bnb.int8``: LLM.int8 weights, outlier activation columns kept in 16 bits."""
    from transformers import BitsAndBytesConfig

    config = step.config

    def quantization(skip: list[str]) -> Any:
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=config.threshold, llm_int8_skip_modules=skip)

    return _quantize(step, quantization, config.skip_modules, method="LLM.int8", bits=8)


def four_bit(step: StepContext[FourBitConfig]) -> Artifact:
    """``bnb.4bit``: NF4 or FP4 blocks, optional double quantization, a chosen compute dtype."""
    import torch
    from transformers import BitsAndBytesConfig

    config = step.config

    def quantization(skip: list[str]) -> Any:
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=config.quant_type,
            bnb_4bit_use_double_quant=config.double_quant,
            bnb_4bit_compute_dtype=getattr(torch, config.compute_dtype),
            llm_int8_skip_modules=skip,  # transformers reads the skip list of 4-bit configs from this field too
        )

    return _quantize(step, quantization, config.skip_modules, method=config.quant_type, bits=4)


def _quantize(
    step: StepContext[Any], quantization: Callable[[list[str]], Any], skip_modules: list[str], *, method: str, bits: int
) -> Artifact:
    """Quantize with the BitsAndBytesConfig that ``quantization(skip)`` builds, keeping the head (and
    ``skip_modules``) out; check the head bit for bit after quantizing and after a save/reload."""
    from slimkit_transformers.models import load_classifier

    started = time.perf_counter()
    reference, tokenizer = load_classifier(step.input.path, device="cpu")
    heads = head_module_names(reference)
    if not heads:
        raise SlimkitError(f"step {step.name!r}: {type(reference).__name__} has no classification head to protect")
    before = head_tensors(reference, heads)
    checksum = head_checksum(reference)
    del reference
    skip = list(dict.fromkeys([*heads, *skip_modules]))
    model = load_quantized(step.input.path, step.device, quantization(skip))
    model.config.pad_token_id = tokenizer.pad_token_id
    count = quantized_linears(model)
    if count == 0:
        raise SlimkitError(f"step {step.name!r}: bitsandbytes quantized no Linear layer")
    if changed := changed_tensors(before, model):
        raise SlimkitError(f"step {step.name!r}: the classification head was changed by quantization: {changed}")
    model.save_pretrained(step.output_dir)
    tokenizer.save_pretrained(step.output_dir)
    carry_task_file(step)
    del model
    reloaded = load_quantized(step.output_dir, step.device)
    if changed := changed_tensors(before, reloaded):
        raise SlimkitError(f"step {step.name!r}: the classification head did not survive save and reload: {changed}")
    if head_checksum(reloaded) != checksum:
        raise SlimkitError(f"step {step.name!r}: the head checksum changed after save and reload")
    return step.artifact(
        method=method,
        bits=bits,
        quantized_linears=count,
        kept_full_precision=skip,
        head="kept float32, bit-identical after quantization and after save/reload",
        head_checksum=checksum,
        bitsandbytes=md.version("bitsandbytes"),
        input_bytes=disk_size(step.input.path),
        seconds=round(time.perf_counter() - started, 2),
        **step.config.model_dump(exclude={"skip_modules"}),
    )


def logical_params(model: Any) -> int:
    """Parameters as the unquantized model counts them (packed 4-bit storage holds two per byte)."""
    import bitsandbytes as bnb

    total = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear8bitLt | bnb.nn.Linear4bit):
            total += module.in_features * module.out_features + (module.bias.numel() if module.bias is not None else 0)
        else:
            total += sum(p.numel() for p in module.parameters(recurse=False))
    return total


class BnbPredictor(TorchPredictor):
    """A bitsandbytes-quantized classifier: transformers reloads it from the saved quantization config."""

    runtime = "torch+bitsandbytes"

    def __init__(self, path: Path, device: str = "cpu") -> None:
        super().__init__(path, device=device)
        qc = self.model.config.quantization_config
        qc = qc if isinstance(qc, dict) else qc.to_dict()
        params = logical_params(self.model)
        self.facts |= {
            "runtime": self.runtime,
            "dtype": "int8" if qc.get("load_in_8bit") else str(qc.get("bnb_4bit_quant_type", "4bit")),
            "params": params,
            "nonzero_params": params,  # dense weights: packed 4-bit bytes cannot be counted as zeros
            "embedding_share": self.model.get_input_embeddings().weight.numel() / params,
        }
