from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _isolated(offline_slimkit: None) -> None:
    """Only the plugins a test registers; no hub; caches per test."""


@pytest.fixture
def plugins(register_plugin: Any) -> Any:
    import slimkit_bnb
    import slimkit_transformers

    register_plugin(slimkit_transformers, name="transformers")
    register_plugin(slimkit_bnb, name="bnb")
    return slimkit_bnb


@pytest.fixture(scope="session")
def tiny_llama64(tmp_path_factory: pytest.TempPathFactory, tiny_llama: Path) -> Path:
    """``tiny_llama`` widened to 64 (same tokenizer): bitsandbytes' 4-bit CPU path on avx512_bf16 CPUs
    repacks weights in blocks of 64 input and 32 output features and fails on narrower layers."""
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama-64")
    torch.manual_seed(0)
    config = LlamaConfig.from_pretrained(tiny_llama)
    config.hidden_size, config.intermediate_size, config.head_dim = 64, 128, 16
    LlamaForCausalLM(config).save_pretrained(folder)
    for f in tiny_llama.iterdir():
        if f.name not in ("config.json", "model.safetensors", "generation_config.json"):
            shutil.copy(f, folder / f.name)
    return folder
