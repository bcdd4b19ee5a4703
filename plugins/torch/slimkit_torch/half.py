"""``torch.half``: bfloat16 or float16 weights and compute, saved as a normal HF folder.

transformers 5 loads a folder saved in bfloat16 back in bfloat16 (``dtype="auto"`` is the
default), so the measurement protocol's TorchPredictor times it in that dtype. The whole model is
cast, the classification head included: its weights are rounded to 16 bits, not re-initialised.
"""

from __future__ import annotations

import time

from slimkit.artifacts import Artifact, disk_size
from slimkit.context import StepContext
from slimkit_torch.common import save_transformers
from slimkit_torch.config import HalfConfig


def half(step: StepContext[HalfConfig]) -> Artifact:
    import torch

    from slimkit.hardware import probe
    from slimkit_transformers.models import load_classifier
    from slimkit_transformers.predictors import head_checksum

    config = step.config
    started = time.perf_counter()
    dtype = getattr(torch, config.dtype)
    model, tokenizer = load_classifier(step.input.path, device=step.device)
    before = head_checksum(model)
    model = model.to(dtype)
    after = head_checksum(model)
    save_transformers(model, tokenizer, step)
    hardware = probe(cuda=False)
    bf16_fast = hardware.has("avx512_bf16") or hardware.has("amx_bf16")
    return step.artifact(
        dtype=config.dtype,
        head="kept, rounded to " + config.dtype,
        head_checksum_relative_change=abs(after - before) / abs(before) if before and after is not None else None,
        # float16 on CPU is fast only with AMX-FP16 / AVX512-FP16, which slimkit does not probe.
        cpu_has_fast_path=bf16_fast if step.device == "cpu" and config.dtype == "bfloat16" else None,
        input_bytes=disk_size(step.input.path),
        seconds=round(time.perf_counter() - started, 2),
    )
