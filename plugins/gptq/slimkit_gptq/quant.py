"""GPTQ through GPTQModel on a sequence classifier; the head checked bit for bit after reloading."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from slimkit.artifacts import Artifact, disk_size
from slimkit.context import StepContext
from slimkit.errors import SlimkitError
from slimkit_transformers.predictors import TorchPredictor, head_checksum

HEAD_NAMES = ("score", "classifier")


def input_widths(model_config: dict[str, Any]) -> dict[str, int]:
    """Input widths of a decoder's quantized Linear layers, read from its config.json."""
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
    hidden = int(model_config["hidden_size"])
    # GPTQModel's CPU kernel (torch _weight_int4pack_mm) takes groups of 32, 64, 128 or 256 only.
    fits = [g for g in (32, 64, 128, 256) if all(w % g == 0 for w in input_widths(model_config).values())]
    what = ", ".join(f"{k} {v}" for k, v in bad.items())
    return f"{group_size} does not divide the model's {what} (fits: {', '.join(map(str, fits)) or 'none'} or -1)" + (
        f"; hidden size {hidden}" if "hidden_size" not in bad else ""
    )


def check_group_size(step: StepContext) -> None:
    config = json.loads((step.input.path / "config.json").read_text())
    problem = group_size_problem(step.config.group_size, config)  # type: ignore[attr-defined]
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


def calibration_texts(step: StepContext, tokenizer: Any) -> list[str]:
    """Seeded training texts joined into sequences of at least ``calibration_tokens`` tokens."""
    from slimkit_transformers.tasks import load_task

    cfg = step.config
    if step.task is None:
        raise SlimkitError(f"step {step.name!r}: gptq.quantize needs the pipeline's 'task' for calibration texts")
    texts = list(load_task(step.task, step.pipeline.resolve_path).train.texts)
    step.rng().shuffle(texts)
    samples: list[str] = []
    current: list[str] = []
    for text in texts:
        current.append(text)
        joined = "\n".join(current)
        if len(tokenizer(joined)["input_ids"]) >= cfg.calibration_tokens:  # type: ignore[attr-defined]
            samples.append(joined)
            current = []
            if len(samples) == cfg.calibration_samples:  # type: ignore[attr-defined]
                break
    if not samples:
        raise SlimkitError(f"step {step.name!r}: the training texts give no calibration sequence")
    return samples


def load_gptq(path: Path, device: str) -> Any:
    import torch

    model_type = json.loads((path / "config.json").read_text())["model_type"]
    loaded = classifier_definition(model_type).from_quantized(str(path), device=device, dtype=torch.float32)
    return loaded.model.eval()


def quantized_modules(model: Any) -> list[str]:
    from gptqmodel.nn_modules.qlinear import BaseQuantLinear

    return [n for n, m in model.named_modules() if isinstance(m, BaseQuantLinear)]


def _log_into(folder: Path) -> None:
    """GPTQModel 7.6 writes per-layer quantization logs to ``./logs`` under whatever the working
    directory is, with no option to move them; point that module constant at the run folder."""
    from gptqmodel.looper import loop_processor

    if hasattr(loop_processor, "_PROJECT_LOG_DIR"):
        loop_processor._PROJECT_LOG_DIR = folder.resolve()


def gptq_quantize(step: StepContext) -> Artifact:
    import torch

    from slimkit_transformers.finetune import TASK_FILE
    from slimkit_transformers.models import load_classifier

    started = time.perf_counter()
    check_group_size(step)
    cfg = step.config
    if cfg.bits != 4 and step.device == "cpu":  # type: ignore[attr-defined]
        # Seen with GPTQModel 7.6: its CPU kernel for 2/3/8 bits (TorchLinear) refuses float32 models.
        raise SlimkitError(
            f"step {step.index} ({step.name}): config.bits: {cfg.bits}-bit GPTQ runs on CPU only through "  # type: ignore[attr-defined]
            "GPTQModel's TorchLinear kernel, which takes float16/bfloat16 models; slimkit quantizes in float32 "
            "so that the classification head is not rounded",
            fix="use bits = 4 on CPU, or device = 'cuda'",
        )
    reference, tokenizer = load_classifier(step.input.path, device="cpu")
    heads = [n for n in HEAD_NAMES if getattr(reference, n, None) is not None]
    before = {k: v.clone() for k, v in reference.state_dict().items() if k.split(".")[0] in heads}
    checksum = head_checksum(reference)
    model_type = reference.config.model_type
    del reference
    samples = calibration_texts(step, tokenizer)

    from gptqmodel import QuantizeConfig

    qconfig = QuantizeConfig(
        bits=cfg.bits,  # type: ignore[attr-defined]
        group_size=cfg.group_size,  # type: ignore[attr-defined]
        desc_act=cfg.desc_act,  # type: ignore[attr-defined]
        sym=cfg.sym,  # type: ignore[attr-defined]
        damp_percent=cfg.damp_percent,  # type: ignore[attr-defined]
        offload_to_disk=False,  # a classifier fits in memory; no temporary folder left behind
    )
    definition = classifier_definition(model_type)
    # float32 throughout: GPTQModel's CPU default (bfloat16) would round the head's weights.
    model = definition.from_pretrained(str(step.input.path), quantize_config=qconfig, dtype=torch.float32)
    _log_into(step.run_dir / "gptq-logs")
    model.quantize(samples, batch_size=cfg.batch_size)  # type: ignore[attr-defined]
    model.save(str(step.output_dir))
    tokenizer.save_pretrained(step.output_dir)  # with slimkit's pad token
    if (step.input.path / TASK_FILE).is_file():
        shutil.copy(step.input.path / TASK_FILE, step.output_dir / TASK_FILE)
    del model

    reloaded = load_gptq(step.output_dir, step.device)
    after = reloaded.state_dict()
    changed = [k for k, v in before.items() if k not in after or not torch.equal(v, after[k].cpu())]
    if changed:
        raise SlimkitError(f"step {step.name!r}: the classification head did not survive quantization: {changed}")
    modules = quantized_modules(reloaded)
    if not modules:
        raise SlimkitError(f"step {step.name!r}: GPTQModel quantized no Linear layer")
    return step.artifact(
        bits=cfg.bits,  # type: ignore[attr-defined]
        group_size=cfg.group_size,  # type: ignore[attr-defined]
        desc_act=cfg.desc_act,  # type: ignore[attr-defined]
        sym=cfg.sym,  # type: ignore[attr-defined]
        calibration_sequences=len(samples),
        quantized_linears=len(modules),
        kernel=type(reloaded.get_submodule(modules[0])).__name__,
        head="kept float32, bit-identical after quantization and reload",
        head_checksum=checksum,
        gptqmodel=_version("gptqmodel"),
        input_bytes=disk_size(step.input.path),
        seconds=round(time.perf_counter() - started, 2),
    )


def _version(dist: str) -> str:
    import importlib.metadata as md

    return md.version(dist)


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
        quant = json.loads((path / "config.json").read_text()).get("quantization_config", {})
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
