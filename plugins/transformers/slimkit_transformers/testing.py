"""pytest fixtures for plugin authors: tiny BERT and Llama models and a tiny labelled task.

Loaded through the ``pytest11`` entry point of slimkit-transformers. Models are built from configs
with random (seeded) weights and a small word-piece vocabulary, so tests run in seconds and need no
hub; they are saved as normal HF folders, the shape real sources take.

- ``tiny_bert``, ``tiny_llama``: folders of base models (no classification head), like hub models.
- ``build_tiny_model(family, folder)``: the same for each of ``FAMILIES`` (BERT, RoBERTa, DistilBERT,
  ELECTRA, DeBERTa-v2, XLM-R, MPNet, ModernBERT; Llama, Qwen2/3, Gemma 3, Mistral, Phi-3), each with
  the tokenizer kind its real models use (WordPiece, byte-level BPE or Unigram) over the tiny words.
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


# --- Tiny models of many Hugging Face families ------------------------------------------------
# Each family gets the tokenizer kind its real models use, trained in memory on the tiny words,
# with that family's special tokens (in id order) and its template for one text and a pair.

FAMILIES = (
    "bert", "roberta", "distilbert", "electra", "deberta-v2", "xlm-roberta", "mpnet", "modernbert",
    "llama", "qwen2", "qwen3", "gemma3", "mistral", "phi3",
)  # fmt: skip

_BERT_SPECIALS = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
_ROBERTA_SPECIALS = {"bos": "<s>", "pad": "<pad>", "eos": "</s>", "unk": "<unk>", "cls": "<s>", "sep": "</s>"}
_LLAMA_SPECIALS = {"bos": "<s>", "eos": "</s>", "unk": "<unk>"}
# family -> (tokenizer kind, special tokens by role (id order; mask comes last), template kind)
_TOKENIZERS: dict[str, tuple[str, dict[str, str], str]] = {
    "bert": ("wordpiece", _BERT_SPECIALS, "bert"),
    "distilbert": ("wordpiece", _BERT_SPECIALS, "bert"),
    "electra": ("wordpiece", _BERT_SPECIALS, "bert"),
    "mpnet": ("wordpiece", _ROBERTA_SPECIALS | {"unk": "[UNK]", "mask": "<mask>"}, "roberta"),
    "roberta": ("bytelevel", _ROBERTA_SPECIALS | {"mask": "<mask>"}, "roberta"),
    "modernbert": ("bytelevel", _BERT_SPECIALS, "bert"),
    "deberta-v2": (
        "unigram",
        {"pad": "[PAD]", "cls": "[CLS]", "sep": "[SEP]", "unk": "[UNK]", "mask": "[MASK]"},
        "bert",
    ),
    "xlm-roberta": ("unigram", _ROBERTA_SPECIALS | {"mask": "<mask>"}, "roberta"),
    "llama": ("bytelevel", {"bos": "<|begin_of_text|>", "eos": "<|end_of_text|>"}, "bos"),
    "qwen2": ("bytelevel", {"eos": "<|endoftext|>", "im_start": "<|im_start|>", "im_end": "<|im_end|>"}, "none"),
    "qwen3": ("bytelevel", {"eos": "<|endoftext|>", "im_start": "<|im_start|>", "im_end": "<|im_end|>"}, "none"),
    "gemma3": ("unigram", {"pad0": "<pad>", "eos": "<eos>", "bos": "<bos>", "unk": "<unk>"}, "bos"),
    "mistral": ("bytelevel", _LLAMA_SPECIALS, "bos"),
    "phi3": ("bytelevel", _LLAMA_SPECIALS | {"eot": "<|endoftext|>"}, "bos"),
}


def _train_tokenizer(kind: str, specials: list[str], unk: str | None) -> Any:
    """A `tokenizers.Tokenizer` of `kind` trained on the tiny words (each alone and after a space)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    words = list(dict.fromkeys(WORDS))
    corpus = [" ".join(words)] * 4 + words + [f"{a} {b}" for a in words for b in words]
    if kind == "wordpiece":
        tokenizer = Tokenizer(models.WordPiece(unk_token=unk or "[UNK]"))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        trainer: Any = trainers.WordPieceTrainer(vocab_size=200, special_tokens=specials)
    elif kind == "bytelevel":
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials, show_progress=False)
    else:  # SentencePiece-like unigram: each word one piece (after the ▁ word mark), letters as fallback
        letters = sorted({c for w in words for c in w})
        pieces = [(t, 0.0) for t in specials] + [(f"▁{w}", -2.0) for w in words]
        pieces += [(p, -8.0) for p in ["▁", *letters] if p not in {q for q, _ in pieces}]
        tokenizer = Tokenizer(models.Unigram(pieces, unk_id=specials.index(unk) if unk else None))
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
        return tokenizer
    tokenizer.train_from_iterator(corpus, trainer)
    return tokenizer


def _family_tokenizer(family: str) -> Any:
    """The family's fast tokenizer (special tokens, template) over the tiny words."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    kind, roles, template = _TOKENIZERS[family]
    specials = list(dict.fromkeys(v for k, v in roles.items() if k != "mask"))
    specials += [roles["mask"]] if "mask" in roles else []
    tokenizer = _train_tokenizer(kind, specials, roles.get("unk"))
    if template != "none":
        first, last = (roles.get("cls", roles.get("bos")), roles.get("sep"))
        single = f"{first} $A" + (f" {last}" if last else "")
        pair = {"bert": f"{single} $B:1 {last}:1", "roberta": f"{single} {last} $B {last}", "bos": f"{single} $B:1"}
        tokenizer.post_processor = processors.TemplateProcessing(
            single=single,
            pair=pair[template],
            special_tokens=[(t, tokenizer.token_to_id(t)) for t in {first, last} if t],
        )
    named = {f"{k}_token": v for k, v in roles.items() if k in ("bos", "eos", "unk", "pad", "cls", "sep", "mask")}
    extra = [v for k, v in roles.items() if f"{k}_token" not in named]
    fast: Any = PreTrainedTokenizerFast  # untyped in transformers 5
    wrapped = fast(tokenizer_object=tokenizer, extra_special_tokens=extra, **named)
    if family in ("distilbert", "modernbert", "roberta", "xlm-roberta", "mpnet"):
        wrapped.model_input_names = ["input_ids", "attention_mask"]
    return wrapped


def _family_config(family: str, tokenizer: Any) -> Any:
    """A tiny config (hidden 64, 2 layers) shaped like the family's real ones, ids from `tokenizer`.

    64 wide, since bitsandbytes' 4-bit blocks hold 64 values: narrower layers do not quantize."""
    import transformers

    tf: Any = transformers
    ids: dict[str, Any] = {f"{r}_token_id": tokenizer.convert_tokens_to_ids(getattr(tokenizer, f"{r}_token"))
           if getattr(tokenizer, f"{r}_token", None) else None for r in ("pad", "bos", "eos")}  # fmt: skip
    common: dict[str, Any] = {"vocab_size": len(tokenizer), "hidden_size": 64, "num_hidden_layers": 2,
                              "num_attention_heads": 2, "intermediate_size": 128,
                              "max_position_embeddings": 256}  # fmt: skip
    decoder: dict[str, Any] = common | {"num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16} | ids
    if family == "gemma3":
        sliding = ["sliding_attention", "full_attention"]
        return tf.Gemma3TextConfig(**decoder, query_pre_attn_scalar=16, sliding_window=16, layer_types=sliding)
    if family in ("llama", "qwen2", "qwen3", "mistral", "phi3"):
        cls = {"llama": tf.LlamaConfig, "qwen2": tf.Qwen2Config, "qwen3": tf.Qwen3Config,
               "mistral": tf.MistralConfig, "phi3": tf.Phi3Config}[family]  # fmt: skip
        if family in ("qwen2", "phi3"):
            decoder.pop("head_dim")  # hidden / heads
        return cls(**decoder, tie_word_embeddings=family in ("qwen2", "qwen3"))
    ids = {k: v for k, v in ids.items() if v is not None}
    if family == "distilbert":
        return tf.DistilBertConfig(vocab_size=len(tokenizer), dim=64, n_layers=2, n_heads=2, hidden_dim=128,
                                   max_position_embeddings=256, pad_token_id=ids["pad_token_id"])  # fmt: skip
    if family == "modernbert":
        cls_sep = {"cls_token_id": tokenizer.cls_token_id, "sep_token_id": tokenizer.sep_token_id}
        return tf.ModernBertConfig(**common, **ids, **cls_sep, bos_token_id=tokenizer.cls_token_id,
                                   eos_token_id=tokenizer.sep_token_id, local_attention=16,
                                   layer_types=["full_attention", "sliding_attention"])  # fmt: skip
    if family == "deberta-v2":  # as DeBERTa-v3 configs set it
        return tf.DebertaV2Config(**common, **ids, type_vocab_size=0, relative_attention=True, position_buckets=64,
                                  max_relative_positions=-1, norm_rel_ebd="layer_norm", share_att_key=True,
                                  pos_att_type=["p2c", "c2p"], position_biased_input=False)  # fmt: skip
    if family in ("roberta", "xlm-roberta", "mpnet"):
        common |= {"max_position_embeddings": 258}  # positions start after the padding index
        if family != "mpnet":
            common |= {"type_vocab_size": 1}
    cls = {"bert": tf.BertConfig, "electra": tf.ElectraConfig, "roberta": tf.RobertaConfig,
           "xlm-roberta": tf.XLMRobertaConfig, "mpnet": tf.MPNetConfig}[family]  # fmt: skip
    return cls(**common, **ids, **({"embedding_size": 64} if family == "electra" else {}))


def build_tiny_model(family: str, folder: Path, seed: int = 0) -> Path:
    """A tiny random-weight model of `family` (one of FAMILIES) saved like a hub model in `folder`:
    encoders as their base model class, decoders as *ForCausalLM, with the family's tokenizer kind
    trained on the tiny words."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    if family not in _TOKENIZERS:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = _family_tokenizer(family)
    config = _family_config(family, tokenizer)
    decoder = FAMILIES.index(family) >= FAMILIES.index("llama")
    auto: Any = AutoModelForCausalLM if decoder else AutoModel
    model = auto.from_config(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


FAST_MEASURE = {
    "batch_sizes": [1, 4],
    "sequence_lengths": [16],
    "dynamic_length": True,
    "warmup": 1,
    "repeats": 3,
    "rounds": 2,
    "threads": 1,
}


@pytest.fixture(autouse=True)
def _no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never ask the hub: a model or dataset that is not local fails at once."""
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
