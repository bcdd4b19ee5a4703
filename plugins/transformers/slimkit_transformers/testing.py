"""pytest fixtures for plugin authors: tiny BERT and Llama models and a tiny labelled task.

Loaded through the ``pytest11`` entry point of slimkit-transformers. Models are built from configs
with random (seeded) weights and a small word-piece vocabulary, so tests run in seconds and need no
hub; they are saved as normal HF folders, the shape real sources take.

- ``tiny_bert``, ``tiny_llama``: folders of base models (no classification head), like hub models.
- ``tiny_task``: a dict for a pipeline's ``task`` table over TSV files whose texts use only the
  tiny vocabulary; 2 labels single-label (``tiny_task``) or 3 labels multi-label
  (``tiny_multilabel_task``); ``tiny_pair_task``, a sentence-pair task over CSV files whose
  label only the second text (``text_pair_column``) decides.
- ``tiny_pipeline``: ``tiny_pipeline(model_dir, task, steps=[...], **fields)`` returns a pipeline
  dict with fast measurement settings.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

WORDS = [
    "i",
    "love",
    "this",
    "so",
    "much",
    "happy",
    "great",
    "joy",
    "fun",
    "good",
    "nice",
    "i",
    "hate",
    "this",
    "so",
    "much",
    "sad",
    "awful",
    "anger",
    "bad",
    "terrible",
    "angry",
    "the",
    "a",
    "is",
    "it",
    "was",
    "and",
    "but",
    "not",
    "very",
    "really",
    "today",
    "movie",
    "food",
    "day",
]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(WORDS)]
POSITIVE = ["love", "happy", "great", "joy", "fun", "good", "nice"]
NEGATIVE = ["hate", "sad", "awful", "anger", "bad", "terrible", "angry"]
FILLER = ["the", "a", "is", "it", "was", "and", "very", "really", "today", "movie", "food", "day", "i", "this"]


def _tokenizer(folder: Path) -> Any:
    from transformers import BertTokenizerFast

    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    # from_pretrained reads vocab.txt in transformers 4 and 5 alike; the constructor does not:
    # transformers 5 ignores `vocab_file` and builds a 5-token vocabulary (every word [UNK]).
    return BertTokenizerFast.from_pretrained(folder, do_lower_case=True)


def build_tiny_bert(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=256, pad_token_id=0,
    )  # fmt: skip
    BertModel(config).save_pretrained(folder)
    _tokenizer(folder).save_pretrained(folder)
    return folder


def build_tiny_llama(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(VOCAB), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        pad_token_id=None, bos_token_id=2, eos_token_id=3,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer = _tokenizer(folder)
    tokenizer.pad_token = None  # decoders come without one; slimkit must set it
    tokenizer.eos_token = "[SEP]"
    tokenizer.save_pretrained(folder)
    return folder


def write_tiny_task(folder: Path, *, multi_label: bool, rows: int = 120, seed: int = 0) -> dict[str, Any]:
    """TSV files (train and eval) whose label follows the words; returns the pipeline's task."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)

    def sample() -> tuple[str, list[int]]:
        pos, neg = rng.random() < 0.5, rng.random() < 0.5
        if not multi_label:
            neg = not pos
        words = (
            rng.sample(FILLER, 3) + (rng.sample(POSITIVE, 2) if pos else []) + (rng.sample(NEGATIVE, 2) if neg else [])
        )
        rng.shuffle(words)
        if multi_label:
            return " ".join(words), [int(pos), int(neg), int(pos and neg)]
        return " ".join(words), [0 if pos else 1]

    for split, n in (("train", rows), ("eval", rows // 3)):
        lines = ["text\tpositive\tnegative\tmixed" if multi_label else "text\tlabel"]
        for _ in range(n):
            text, labels = sample()
            lines.append("\t".join([text, *map(str, labels)]) if multi_label else f"{text}\t{labels[0]}")
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    task: dict[str, Any] = {
        "data_files": {"train": str(folder / "train.tsv"), "eval": str(folder / "eval.tsv")},
        "eval_split": "eval",
        "text_column": "text",
        "validation_fraction": 0.2,
    }
    if multi_label:
        return task | {
            "problem": "multi_label",
            "label_columns": ["positive", "negative", "mixed"],
            "label_format": "binary_columns",
        }
    return task | {"problem": "single_label", "label_column": "label", "label_format": "ids", "labels": ["pos", "neg"]}


def write_tiny_pair_task(folder: Path, *, rows: int = 120, seed: int = 0) -> dict[str, Any]:
    """A sentence-pair task: CSV files (train and eval) with a ``text`` of filler words and a
    ``pair`` whose sentiment words decide the label, so that only a model reading the pair learns
    it; returns the pipeline's task (``text_pair_column = "pair"``)."""
    import csv

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", rows), ("eval", rows // 3)):
        with (folder / f"{split}.csv").open("w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["text", "pair", "label"])
            for _ in range(n):
                pos = rng.random() < 0.5
                pair = rng.sample(FILLER, 2) + rng.sample(POSITIVE if pos else NEGATIVE, 2)
                rng.shuffle(pair)
                out.writerow([" ".join(rng.sample(FILLER, 4)), " ".join(pair), 0 if pos else 1])
    return {
        "data_files": {"train": str(folder / "train.csv"), "eval": str(folder / "eval.csv")},
        "eval_split": "eval",
        "text_column": "text",
        "text_pair_column": "pair",
        "validation_fraction": 0.2,
        "problem": "single_label",
        "label_column": "label",
        "label_format": "ids",
        "labels": ["pos", "neg"],
    }


FAST_MEASURE = {
    "batch_sizes": [1, 4],
    "sequence_lengths": [16],
    "dynamic_length": True,
    "warmup": 1,
    "repeats": 3,
    "rounds": 2,
    "threads": 1,
}


@pytest.fixture
def offline_slimkit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No installed plugin loads (tests register what they need), no hub is asked, and converted
    sources are cached per test. Plugin test suites use it from an autouse fixture."""
    monkeypatch.setenv("SLIMKIT_LOAD_PLUGINS", "")
    monkeypatch.setenv("SLIMKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_task(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return write_tiny_task(tmp_path_factory.mktemp("tiny-task"), multi_label=False)


@pytest.fixture(scope="session")
def tiny_pair_task(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return write_tiny_pair_task(tmp_path_factory.mktemp("tiny-pair-task"))


@pytest.fixture(scope="session")
def tiny_multilabel_task(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return write_tiny_task(tmp_path_factory.mktemp("tiny-ml-task"), multi_label=True)


@pytest.fixture
def tiny_pipeline() -> Any:
    def make(
        model_dir: Path, task: dict[str, Any], steps: list[dict[str, Any]] | None = None, **fields: Any
    ) -> dict[str, Any]:
        return {
            "name": fields.pop("name", "tiny"),
            "model": {"source": str(model_dir)},
            "task": task,
            "steps": steps or [],
            "measure": FAST_MEASURE | fields.pop("measure", {}),
            "device": "cpu",
            **fields,
        }

    return make
