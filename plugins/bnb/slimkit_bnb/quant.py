"""bitsandbytes quantization through transformers, with the classification head checked bit for bit."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from slimkit.artifacts import Artifact, disk_size
from slimkit.context import StepContext
from slimkit.errors import SlimkitError
from slimkit_transformers.predictors import TorchPredictor, head_checksum

HEAD_NAMES = ("classifier", "score", "pre_classifier")


def head_names(model: Any) -> list[str]:
    """Module names of the classification head and the pooler that feeds it."""
    names = [n for n in HEAD_NAMES if getattr(model, n, None) is not None]
    prefix = getattr(model, "base_model_prefix", "")
    base = getattr(model, prefix, None) if prefix else None
    if base is not None and getattr(base, "pooler", None) is not None:
        names.append(f"{prefix}.pooler")
    return names


def head_tensors(model: Any, heads: list[str]) -> dict[str, Any]:
    return {
        k: v.detach().cpu().clone()
        for k, v in model.state_dict().items()
        if any(k == h or k.startswith(h + ".") for h in heads)
    }


def changed_tensors(before: dict[str, Any], model: Any) -> list[str]:
    """Head tensors that are missing, re-typed or not bit-identical in ``model``."""
    import torch

    after = model.state_dict()
    return [
        k
        for k, v in before.items()
        if k not in after or after[k].dtype != v.dtype or not torch.equal(v, after[k].cpu())
    ]


def quantization_config(step: StepContext, skip: list[str]) -> Any:
    import torch
    from transformers import BitsAndBytesConfig

    cfg = step.config
    if step.owns("bnb.int8"):
        return BitsAndBytesConfig(
            load_in_8bit=True,
            llm_int8_threshold=cfg.threshold,
            llm_int8_skip_modules=skip,  # type: ignore[attr-defined]
        )
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=cfg.quant_type,  # type: ignore[attr-defined]
        bnb_4bit_use_double_quant=cfg.double_quant,  # type: ignore[attr-defined]
        bnb_4bit_compute_dtype=getattr(torch, cfg.compute_dtype),  # type: ignore[attr-defined]
        llm_int8_skip_modules=skip,  # transformers reads the skip list of 4-bit configs from this field too
    )


def load_quantized(path: Path, device: str, qconfig: Any = None) -> Any:
    import torch
    from transformers import AutoModelForSequenceClassification

    kwargs: dict[str, Any] = {"device_map": device, "dtype": torch.float32}
    if qconfig is not None:
        kwargs["quantization_config"] = qconfig
    return AutoModelForSequenceClassification.from_pretrained(path, **kwargs).eval()


def quantized_linears(model: Any) -> int:
    import bitsandbytes as bnb

    return sum(isinstance(m, bnb.nn.Linear8bitLt | bnb.nn.Linear4bit) for m in model.modules())


def bnb_quantize(step: StepContext) -> Artifact:
    from slimkit_transformers.finetune import TASK_FILE
    from slimkit_transformers.models import load_classifier

    started = time.perf_counter()
    reference, tokenizer = load_classifier(step.input.path, device="cpu")
    heads = head_names(reference)
    if not heads:
        raise SlimkitError(f"step {step.name!r}: {type(reference).__name__} has no classification head to protect")
    before = head_tensors(reference, heads)
    checksum = head_checksum(reference)
    del reference
    skip = list(dict.fromkeys([*heads, *step.config.skip_modules]))  # type: ignore[attr-defined]
    qconfig = quantization_config(step, skip)
    model = load_quantized(step.input.path, step.device, qconfig)
    model.config.pad_token_id = tokenizer.pad_token_id
    count = quantized_linears(model)
    if count == 0:
        raise SlimkitError(f"step {step.name!r}: bitsandbytes quantized no Linear layer")
    if changed := changed_tensors(before, model):
        raise SlimkitError(f"step {step.name!r}: the classification head was changed by quantization: {changed}")
    model.save_pretrained(step.output_dir)
    tokenizer.save_pretrained(step.output_dir)
    if (step.input.path / TASK_FILE).is_file():
        shutil.copy(step.input.path / TASK_FILE, step.output_dir / TASK_FILE)
    del model
    reloaded = load_quantized(step.output_dir, step.device)
    if changed := changed_tensors(before, reloaded):
        raise SlimkitError(f"step {step.name!r}: the classification head did not survive save and reload: {changed}")
    if head_checksum(reloaded) != checksum:
        raise SlimkitError(f"step {step.name!r}: the head checksum changed after save and reload")
    cfg = step.config.model_dump()
    return step.artifact(
        method="LLM.int8" if step.owns("bnb.int8") else cfg["quant_type"],
        bits=8 if step.owns("bnb.int8") else 4,
        quantized_linears=count,
        kept_full_precision=skip,
        head="kept float32, bit-identical after quantization and after save/reload",
        head_checksum=checksum,
        bitsandbytes=_version("bitsandbytes"),
        input_bytes=disk_size(step.input.path),
        seconds=round(time.perf_counter() - started, 2),
        **{k: v for k, v in cfg.items() if k != "skip_modules"},
    )


def _version(dist: str) -> str:
    import importlib.metadata as md

    return md.version(dist)


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
