from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _isolated(offline_slimkit: None) -> None:
    """Only the plugins a test registers; no hub; caches per test."""


@pytest.fixture
def plugins(register_plugin: Any) -> Any:
    import slimkit_torch
    import slimkit_transformers

    register_plugin(slimkit_transformers, name="transformers")
    register_plugin(slimkit_torch, name="torch")
    return slimkit_torch


@pytest.fixture(scope="session")
def tiny_llama_mha(tmp_path_factory: pytest.TempPathFactory, tiny_llama: Path) -> Path:
    """Like ``tiny_llama`` (same tokenizer) but without grouped-query attention (4 heads, 4 key/value heads)."""
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama-mha")
    torch.manual_seed(1)
    config = LlamaConfig.from_pretrained(tiny_llama)
    config.num_key_value_heads = 4
    LlamaForCausalLM(config).save_pretrained(folder)
    for f in tiny_llama.iterdir():
        if f.name not in ("config.json", "model.safetensors", "generation_config.json"):
            shutil.copy(f, folder / f.name)
    return folder
