"""``torch.dynamic-int8``: int8 Linear weights, activations quantized per batch at run time, on CPU.

Two backends:

- ``torchao`` (default): torchao's ``quantize_`` with ``Int8DynamicActivationInt8WeightConfig``,
  the maintained path. In eager mode it ran slower than fp32 on CPU (its int8 matmul is not fused
  until ``torch.compile``), so its predictor compiles the model when ``compile`` is set (default).
  Compiled, it was the faster and more accurate of the two on MiniLM (bench/torch_techniques.py).
- ``torch-ao-legacy``: ``torch.ao.quantization.quantize_dynamic``, fbgemm kernels. Fast in eager
  mode, no compile time; deprecated by PyTorch in favour of torchao, but still shipped and working.

Neither result round-trips through ``save_pretrained``/``from_pretrained``, so the step writes the
``torch-int8`` format: the HF config and tokenizer, ``slimkit-int8.json`` (backend and quantized
modules) and ``model-int8.pt`` (the quantized state dict). Loading rebuilds the float model from
the config, quantizes the same modules the same way and loads the state dict with
``torch.load(weights_only=True)``, which builds tensors only and runs no pickled code.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

from slimkit.artifacts import Artifact, disk_size
from slimkit.context import StepContext
from slimkit.errors import SlimkitError
from slimkit_torch.config import DynamicInt8Config
from slimkit_transformers.predictors import TorchPredictor
from slimkit_transformers.steps import carry_task_file, head_module_names, is_head

MANIFEST = "slimkit-int8.json"
WEIGHTS = "model-int8.pt"


def linear_names(model: Any, quantize_head: bool) -> list[str]:
    import torch

    heads = [] if quantize_head else head_module_names(model)
    return [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and not is_head(n, heads)]


def apply(model: Any, names: list[str], backend: str, per_channel: bool) -> Any:
    """Quantize the named Linear modules in place (the same call builds and reloads an artifact)."""
    import torch

    if backend == "torch-ao-legacy":
        from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

        qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
        with warnings.catch_warnings():  # the deprecation notice, once per model, says nothing new
            warnings.simplefilter("ignore")
            return quantize_dynamic(model, dict.fromkeys(names, qconfig), dtype=torch.qint8, inplace=True)
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    wanted = set(names)
    quantize_(model, Int8DynamicActivationInt8WeightConfig(), filter_fn=lambda m, fqn: fqn in wanted)
    return model


def dynamic_int8(step: StepContext[DynamicInt8Config]) -> Artifact:
    import torch

    from slimkit_transformers.models import load_classifier

    config = step.config
    if step.device != "cpu":
        raise SlimkitError(f"step {step.name!r}: torch.dynamic-int8 runs on CPU only, not {step.device}")
    started = time.perf_counter()
    model, tokenizer = load_classifier(step.input.path, device="cpu", dtype=torch.float32)
    names = linear_names(model, config.quantize_head)
    if not names:
        raise SlimkitError(f"step {step.name!r}: {type(model).__name__} has no Linear layer to quantize")
    quantized_params = sum(model.get_submodule(n).weight.numel() for n in names)
    total_params = sum(p.numel() for p in model.parameters())
    apply(model, names, config.backend, config.per_channel)
    torch.save(model.state_dict(), step.output_dir / WEIGHTS)
    model.config.save_pretrained(step.output_dir)
    tokenizer.save_pretrained(step.output_dir)
    carry_task_file(step)
    manifest = {
        "backend": config.backend,
        "per_channel": config.per_channel or config.backend == "torchao",
        "compile": config.compile and config.backend == "torchao",
        "modules": names,
        "torch": torch.__version__,
        "quantized_engine": torch.backends.quantized.engine,
    }
    (step.output_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return step.artifact(
        backend=config.backend,
        path_used=(
            "torch.ao.quantization.quantize_dynamic (deprecated, fbgemm kernels)"
            if config.backend == "torch-ao-legacy"
            else "torchao.quantization.quantize_ + Int8DynamicActivationInt8WeightConfig"
            + (" under torch.compile" if manifest["compile"] else " (eager)")
        ),
        weights_per_channel=manifest["per_channel"],
        quantized_engine=manifest["quantized_engine"],
        quantized_modules=len(names),
        quantized_share_of_params=round(quantized_params / total_params, 4),
        head="float32 (kept)" if not config.quantize_head else "int8",
        input_bytes=disk_size(step.input.path),
        seconds=round(time.perf_counter() - started, 2),
    )


def load_int8(path: Path) -> tuple[Any, Any, dict[str, Any]]:
    """(model in eval mode, tokenizer, manifest) from a torch-int8 folder."""
    import torch
    from transformers import AutoConfig

    from slimkit_transformers.models import classifier_from_config, load_tokenizer

    manifest = json.loads((path / MANIFEST).read_text())
    config = AutoConfig.from_pretrained(path)
    model = classifier_from_config(config, dtype=torch.float32).eval()
    apply(model, manifest["modules"], manifest["backend"], manifest["per_channel"])
    with warnings.catch_warnings():  # quantized tensors are rebuilt through the deprecated TypedStorage
        warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
        state = torch.load(path / WEIGHTS, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True, assign=manifest["backend"] == "torchao")
    tokenizer = load_tokenizer(path)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer, manifest


def param_counts(model: Any) -> tuple[int, int]:
    """(all weights, embedding weights); quantize_dynamic's packed weights are no parameters."""
    total = sum(p.numel() for p in model.parameters())
    for module in model.modules():
        if callable(getattr(module, "weight", None)) and hasattr(module, "_packed_params"):
            total += module.weight().numel() + (module.bias().numel() if module.bias() is not None else 0)
    embed = model.get_input_embeddings()  # parameters(): a low-rank table has two
    return total, sum(p.numel() for p in embed.parameters()) if embed is not None else 0


class Int8Predictor(TorchPredictor):
    """A ``torch-int8`` artifact behind the predictor interface (encode and call as TorchPredictor)."""

    runtime = "torch-int8"

    def __init__(self, path: Path, device: str = "cpu") -> None:
        import torch

        from slimkit_transformers.predictors import head_checksum

        if device != "cpu":
            raise SlimkitError(f"torch-int8 artifacts run on CPU only, not {device}")
        self.path, self.device, self._torch = path, device, torch
        self.model, self.tokenizer, manifest = load_int8(path)
        total, embed = param_counts(self.model)
        self.facts: dict[str, Any] = {
            "runtime": f"torch-int8 ({manifest['backend']}{', compiled' if manifest['compile'] else ''})",
            "dtype": "int8 Linear weights, float32 activations quantized per batch",
            "params": total,
            "embedding_share": embed / total if total else 0.0,
            "head_checksum": head_checksum(self.model),
        }
        if manifest["compile"]:
            self.model = torch.compile(self.model)
