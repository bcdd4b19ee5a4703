from __future__ import annotations

from pathlib import Path

import pytest


def _bert(folder: Path, tokenizer_from: Path, *, layers: int, hidden: int, seed: int) -> Path:
    import shutil

    import torch
    from transformers import BertConfig, BertModel

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = BertConfig.from_pretrained(tokenizer_from)  # tiny_bert's, for its vocabulary size
    config.num_hidden_layers, config.hidden_size, config.intermediate_size = layers, hidden, 2 * hidden
    BertModel(config).save_pretrained(folder)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tokenizer_from / name).is_file():
            shutil.copy(tokenizer_from / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def tiny_bert4(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> Path:
    """Like ``tiny_bert`` (same tokenizer) but 4 layers deep, so that a student can keep 2."""
    return _bert(tmp_path_factory.mktemp("tiny-bert4"), tiny_bert, layers=4, hidden=32, seed=1)


@pytest.fixture(scope="session")
def tiny_bert_wide(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> Path:
    """Same tokenizer, 1 layer, width 48: a student whose hidden states need a projection."""
    return _bert(tmp_path_factory.mktemp("tiny-bert-wide"), tiny_bert, layers=1, hidden=48, seed=2)


@pytest.fixture(scope="session")
def tiny_bert_other_vocab(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> Path:
    """A student with its own tokenizer: the same words under other ids (reversed vocabulary)."""
    from transformers import BertTokenizerFast

    folder = _bert(tmp_path_factory.mktemp("tiny-bert-vocab"), tiny_bert, layers=1, hidden=32, seed=3)
    words = (tiny_bert / "vocab.txt").read_text().split()
    special, rest = words[:5], words[5:]
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)
    (folder / "vocab.txt").write_text("\n".join([*special, *reversed(rest)]) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(folder)
    return folder
