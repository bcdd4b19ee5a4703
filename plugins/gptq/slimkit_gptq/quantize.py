"""GPTQ through GPTQModel on a sequence classifier; the head checked bit for bit after reloading."""

from __future__ import annotations

import importlib.metadata as md
import os
import time
from pathlib import Path
from typing import Any

from slimkit.artifacts import Artifact, disk_size
from slimkit.context import StepContext
from slimkit.errors import SlimkitError
from slimkit_gptq.config import GptqConfig
from slimkit_transformers.models import read_config_json
from slimkit_transformers.predictors import TorchPredictor, head_checksum
from slimkit_transformers.steps import calibration_texts, carry_task_file, head_module_names, is_head


def input_widths(model_config: dict[str, Any]) -> dict[str, int]:
    """Input widths of a decoder's quantized Linear layers, read from its config.json (none for a config
    without hidden_size, e.g. DistilBERT's: the quantize step then says which model types it supports)."""
    if not model_config.get("hidden_size"):
        return {}
    hidden = int(model_config["hidden_size"])
    heads = int(model_config.get("num_attention_heads") or 0)
    head_dim = model_config.get("head_dim") or (hidden // heads if heads else hidden)
    widths = {"hidden_size": hidden, "attention width (num_attention_heads * head_dim)": heads * int(head_dim)}
    if model_config.get("intermediate_size"):
        widths["intermediate_size"] = int(model_config["intermediate_size"])
    return {k: v for k, v in widths.items() if v}


def group_size_problem(group_size: int, model_config: dict[str, Any]) -> str | None:
    """Why ``group_size`` cannot be used on this model, or None. Meant for plan time (see docs)."""
    if group_size == -1:
        return None
    bad = {k: v for k, v in input_widths(model_config).items() if v % group_size}
    if not bad:
        return None
    hidden = model_config.get("hidden_size")
    # GPTQModel's CPU kernel (torch _weight_int4pack_mm) takes groups of 32, 64, 128 or 256 only.
    fits = [g for g in (32, 64, 128, 256) if all(w % g == 0 for w in input_widths(model_config).values())]
    what = ", ".join(f"{k} {v}" for k, v in bad.items())
    return f"{group_size} does not divide the model's {what} (fits: {', '.join(map(str, fits)) or 'none'} or -1)" + (
        f"; hidden size {hidden}" if "hidden_size" not in bad else ""
    )


def check_group_size(step: StepContext[GptqConfig]) -> None:
    config = read_config_json(step.input.path / "config.json")
    problem = group_size_problem(step.config.group_size, config)
    if problem:
        raise SlimkitError(f"step {step.index} ({step.name}): config.group_size: {problem}")


def _workers() -> None:
    # GPTQModel sizes its CPU worker pool from this variable; unset it oversubscribes small machines,
    # and it refuses fewer than 2 workers (a 1-core machine still gets 2).
    from slimkit.hardware import probe

    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(max(2, probe(cuda=False).physical_cores)))


def classifier_definition(model_type: str) -> Any:
    """GPTQModel's definition for this architecture, loading sequence classifiers instead of causal LMs."""
    _workers()
    from gptqmodel.models.auto import MODEL_MAP
    from transformers import AutoModelForSequenceClassification

    if model_type not in MODEL_MAP:
        raise SlimkitError(f"GPTQModel has no model definition for model_type {model_type!r} (decoders only)")
    base = MODEL_MAP[model_type]
    return type(f"{base.__name__}ForClassification", (base,), {"loader": AutoModelForSequenceClassification})


def calibration_sequences(step: StepContext[GptqConfig], tokenizer: Any) -> list[str]:
    """The seeded calibration texts (``calibration_examples`` of them), consecutive ones joined
    until a sequence has at least ``calibration_tokens`` tokens; a shorter remainder joins the last
    sequence, so that every sampled text is used."""
    config = step.config
    sequences: list[str] = []
    current: list[str] = []
    for text in calibration_texts(step, config.calibration_examples):
        current.append(text)
        joined = "\n".join(current)
        if len(tokenizer(joined)["input_ids"]) >= config.calibration_tokens:
            sequences.append(joined)
            current = []
    if not sequences:
        raise SlimkitError(
            f"step {step.name!r}: {config.calibration_examples} training texts do not make one calibration "
            f"sequence of {config.calibration_tokens} tokens",
            fix="raise calibration_examples or lower calibration_tokens",
        )
    if current:
        sequences[-1] = "\n".join([sequences[-1], *current])
    return sequences


def load_gptq(path: Path, device: str) -> Any:
    import torch

    model_type = read_config_json(path / "config.json")["model_type"]
    loaded = classifier_definition(model_type).from_quantized(str(path), device=device, dtype=torch.float32)
    return loaded.model.eval()


def quantized_modules(model: Any) -> list[str]:
    from gptqmodel.nn_modules.qlinear import BaseQuantLinear

    return [n for n, m in model.named_modules() if isinstance(m, BaseQuantLinear)]


def reload_checked(step: StepContext[Any], head: dict[str, Any], device: str) -> tuple[Any, list[str]]:
    """The saved checkpoint reloaded on GPTQModel's kernel, and its quantized layers; the step fails
    unless the classification head (``head``: its tensors before quantizing) is bit for bit the same
    and at least one Linear layer is quantized."""
    import torch

    reloaded = load_gptq(step.output_dir, device)
    after = reloaded.state_dict()
    changed = [k for k, v in head.items() if k not in after or not torch.equal(v, after[k].cpu())]
    if changed:
        raise SlimkitError(f"step {step.name!r}: the classification head did not survive quantization: {changed}")
    modules = quantized_modules(reloaded)
    if not modules:
        raise SlimkitError(f"step {step.name!r}: the checkpoint has no quantized Linear layer")
    return reloaded, modules


def _log_into(folder: Path) -> None:
    """GPTQModel 7.6 writes per-layer quantization logs to ``./logs`` under whatever the working
    directory is, with no option to move them; point that module constant at the run folder."""
    from gptqmodel.looper import loop_processor

    if hasattr(loop_processor, "_PROJECT_LOG_DIR"):
        loop_processor._PROJECT_LOG_DIR = folder.resolve()


def gptq_quantize(step: StepContext[GptqConfig]) -> Artifact:
    import torch

    from slimkit_transformers.models import load_classifier

    started = time.perf_counter()
    check_group_size(step)
    config = step.config
    if config.bits != 4 and step.device == "cpu":
        # Seen with GPTQModel 7.6: its CPU kernel for 2/3/8 bits (TorchLinear) refuses float32 models.
        raise SlimkitError(
            f"step {step.index} ({step.name}): config.bits: {config.bits}-bit GPTQ runs on CPU only through "
            "GPTQModel's TorchLinear kernel, which takes float16/bfloat16 models; slimkit quantizes in float32 "
            "so that the classification head is not rounded",
            fix="use bits = 4 on CPU, or device = 'cuda'",
        )
    reference, tokenizer = load_classifier(step.input.path, device="cpu")
    heads = head_module_names(reference)
    before = {k: v.clone() for k, v in reference.state_dict().items() if is_head(k, heads)}
    checksum = head_checksum(reference)
    model_type = reference.config.model_type
    del reference
    sequences = calibration_sequences(step, tokenizer)

    from gptqmodel import QuantizeConfig  # after the checks above: refusals cost no import

    qconfig = QuantizeConfig(
        bits=config.bits,
        group_size=config.group_size,
        desc_act=config.desc_act,
        sym=config.sym,
        damp_percent=config.damp_percent,
        offload_to_disk=False,  # a classifier fits in memory; no temporary folder left behind
    )
    # float32 throughout: GPTQModel's CPU default (bfloat16) would round the head's weights.
    model = classifier_definition(model_type).from_pretrained(
        str(step.input.path), quantize_config=qconfig, dtype=torch.float32
    )
    _log_into(step.run_dir / "gptq-logs")
    model.quantize(sequences, batch_size=config.calibration_batch_size)
    model.save(str(step.output_dir))
    tokenizer.save_pretrained(step.output_dir)  # with slimkit's pad token
    carry_task_file(step)
    del model

    reloaded, modules = reload_checked(step, before, step.device)
    return step.artifact(
        bits=config.bits,
        group_size=config.group_size,
        desc_act=config.desc_act,
        sym=config.sym,
        calibration_examples=config.calibration_examples,
        calibration_sequences=len(sequences),
        quantized_linears=len(modules),
        kernel=type(reloaded.get_submodule(modules[0])).__name__,
        head="kept float32, bit-identical after quantization and reload",
        head_checksum=checksum,
        gptqmodel=md.version("gptqmodel"),
        input_bytes=disk_size(step.input.path),
        seconds=round(time.perf_counter() - started, 2),
    )


class GptqPredictor(TorchPredictor):
    """A GPTQModel checkpoint of a sequence classifier, on GPTQModel's kernels for the device."""

    runtime = "torch+gptqmodel"

    def __init__(self, path: Path, device: str = "cpu", threads: int = 1) -> None:
        import torch

        from slimkit_transformers.models import load_tokenizer

        self.path, self.device, self._torch = path, device, torch
        self.model = load_gptq(path, device)
        self.tokenizer = load_tokenizer(path)
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        torch.set_num_threads(threads)  # GPTQModel's loader may change the thread count
        quant = read_config_json(path / "config.json").get("quantization_config", {})
        modules = quantized_modules(self.model)
        logical = sum(
            self.model.get_submodule(n).in_features * self.model.get_submodule(n).out_features for n in modules
        )
        plain = sum(
            p.numel() for n, p in self.model.named_parameters() if not any(n.startswith(m + ".") for m in modules)
        )
        embed = self.model.get_input_embeddings().weight.numel()
        self.facts = {
            "runtime": self.runtime,
            "dtype": f"int{quant.get('bits', '?')} g{quant.get('group_size', '?')}",
            "params": logical + plain,
            "nonzero_params": logical + plain,
            "embedding_share": embed / (logical + plain),
            "kernel": type(self.model.get_submodule(modules[0])).__name__ if modules else None,
            "head_checksum": head_checksum(self.model),
        }
