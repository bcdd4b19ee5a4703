"""A GGUF file of each decoder family, round-tripped through slimkit's GGUF source.

Each test writes a tiny random-weight model of the family as a .gguf file the way llama.cpp's
converter would (its metadata keys, its tensor names, the transforms it applies to some tensors),
then checks that slimkit names the family from the metadata and that ``resolve_source`` turns the
file into a classifier folder holding the same weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

gguf = pytest.importorskip("gguf")
torch = pytest.importorskip("torch")

VOCAB = 300  # 256 bytes, 3 special tokens, the rest merges
CORPUS = ["the quick brown fox jumps over the lazy dog", "I am so happy today", "this is awful"] * 20
LABELS = ["negative", "positive", "neutral"]


@dataclass(frozen=True)
class Spec:
    family: str  # what slimkit.families.family_of must say
    config_class: str
    model_class: str
    arch: str  # general.architecture, as llama.cpp writes it
    name: str = "tiny"  # general.name
    tokenizer: str = "gpt2"  # tokenizer.ggml.model: "gpt2" byte-level BPE, "llama" SentencePiece
    extra: dict[str, Any] = field(default_factory=dict)  # config kwargs beyond the common ones


SPECS = {
    "llama": Spec("llama", "LlamaConfig", "LlamaForCausalLM", "llama"),
    "qwen2": Spec("qwen2", "Qwen2Config", "Qwen2ForCausalLM", "qwen2"),
    # A head width that is neither hidden/heads nor Qwen3Config's default 128: transformers' loader
    # ignores qwen3.attention.key_length, so _gguf_to_folder has to apply it.
    "qwen3": Spec("qwen3", "Qwen3Config", "Qwen3ForCausalLM", "qwen3", extra={"head_dim": 32}),
    # llama.cpp writes Mistral (v0.1-v0.3) as architecture "llama", general.name "Mistral ...".
    "mistral": Spec(
        "mistral", "MistralConfig", "MistralForCausalLM", "llama", name="Mistral Tiny", extra={"sliding_window": None}
    ),
    "phi3": Spec("phi3", "Phi3Config", "Phi3ForCausalLM", "phi3"),
    # Gemma GGUFs carry a SentencePiece vocabulary (tokenizer.ggml.model "llama"), not a byte-level one.
    "gemma3": Spec("gemma3", "Gemma3TextConfig", "Gemma3ForCausalLM", "gemma3", tokenizer="llama",
                   extra={"head_dim": 16, "sliding_window": 32, "query_pre_attn_scalar": 16}),
}  # fmt: skip

# Families whose GGUF does not name the family slimkit knows it by.
NAMING_XFAIL = {
    "mistral": "llama.cpp writes Mistral GGUFs as general.architecture 'llama', so the file names the llama "
    "family; transformers loads it as LlamaForCausalLM (same weights, no sliding window)",
}
# The model_type the converted folder has, where it is not the family's own.
LOADS_AS = {"mistral": "llama"}


@dataclass(frozen=True)
class Vocab:
    """What a GGUF says about its tokenizer: tokens by id, and how llama.cpp marks each."""

    model: str  # tokenizer.ggml.model
    tokens: list[str]
    types: list[int]  # 1 normal, 2 unknown, 3 control, 6 byte
    merges: list[str] | None  # byte-level files list them; SentencePiece (Gemma) files do not
    ids: dict[str, int]  # eos/bos/pad (and unk) token ids
    reference: Any  # the tokenizers.Tokenizer the vocabulary was trained as


def _byte_level_vocab() -> Vocab:
    """A byte-level BPE vocabulary (GPT-2's byte alphabet), as Llama 3, Qwen, SmolLM files carry."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    specials = ["<|endoftext|>", "<|bos|>", "<|pad|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok.train_from_iterator(
        CORPUS, trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=specials, initial_alphabet=alphabet)
    )
    state = json.loads(tok.to_str())["model"]
    tokens = sorted(state["vocab"], key=state["vocab"].__getitem__)
    merges = [m if isinstance(m, str) else " ".join(m) for m in state["merges"]]
    types = [3 if t in specials else 1 for t in tokens]
    ids = {"eos": tokens.index("<|endoftext|>"), "bos": tokens.index("<|bos|>"), "pad": tokens.index("<|pad|>")}
    return Vocab("gpt2", tokens, types, merges, ids, tok)


def _sentencepiece_vocab() -> Vocab:
    """A SentencePiece-style BPE vocabulary ("\u2581" for a space, <0xNN> byte fallback, no merges
    listed), as Gemma files carry: transformers rebuilds merges from the token order."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    specials = ["<pad>", "<eos>", "<bos>", "<unk>"] + [f"<0x{b:02X}>" for b in range(256)]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    tok.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")  # as GemmaTokenizer
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=VOCAB + 256, special_tokens=specials))
    vocab = json.loads(tok.to_str())["model"]["vocab"]
    tokens = sorted(vocab, key=vocab.__getitem__)
    types = [6 if t.startswith("<0x") else 2 if t == "<unk>" else 3 if t in specials else 1 for t in tokens]
    ids = {name: tokens.index(f"<{name}>") for name in ("pad", "eos", "bos", "unk")}
    return Vocab("llama", tokens, types, None, ids, tok)


def _tiny_model(spec: Spec, vocab: Vocab) -> Any:
    import transformers

    ids = {f"{k}_token_id": vocab.ids[k] for k in ("eos", "bos", "pad")}
    vocab_size = len(vocab.tokens)
    config = getattr(transformers, spec.config_class)(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        rms_norm_eps=1e-6, tie_word_embeddings=True, **ids, **spec.extra,
    )  # fmt: skip
    torch.manual_seed(0)
    model = getattr(transformers, spec.model_class)(config).float().eval()
    with torch.no_grad():  # random everywhere, norms included, so a misplaced tensor shows
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model


def _llama_permute(w: Any, n_head: int) -> Any:
    """llama.cpp's q/k row order (the inverse of transformers' ``_reverse_permute_weights``)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _gguf_tensors(spec: Spec, model: Any) -> dict[str, Any]:
    """The model's tensors under llama.cpp's names, transformed as its converter does."""
    arch = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == spec.arch)
    names = gguf.get_tensor_name_map(arch, model.config.num_hidden_layers)
    config, out = model.config, {}
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # llama.cpp writes no output.weight for tied embeddings
        base, suffix = hf_name.rsplit(".", 1)
        name = names.get_name(base)
        assert name is not None, f"{spec.arch}: no GGUF name for {hf_name}"
        w = tensor.detach().float().numpy().copy()
        if spec.arch == "llama" and name.endswith(("attn_q", "attn_k")):
            w = _llama_permute(w, config.num_attention_heads if name.endswith("q") else config.num_key_value_heads)
        if spec.arch == "gemma3" and name.endswith("norm"):
            w = w + 1  # llama.cpp stores Gemma's (1 + weight) norms with the 1 added
        out[f"{name}.{suffix}"] = w
    return out


def write_gguf(spec: Spec, folder: Path) -> tuple[Path, Any, Vocab]:
    """(a .gguf file of a tiny random ``spec`` model, that model, its vocabulary)."""
    vocab = _byte_level_vocab() if spec.tokenizer == "gpt2" else _sentencepiece_vocab()
    model = _tiny_model(spec, vocab)
    c = model.config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    path = folder / f"tiny-{spec.family}.gguf"
    w = gguf.GGUFWriter(path, spec.arch)
    w.add_name(spec.name)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(head_dim)
    if spec.arch in ("qwen3", "gemma3"):
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    if spec.arch == "gemma3":
        w.add_sliding_window(c.sliding_window)
    w.add_tokenizer_model(vocab.model)
    w.add_token_list(vocab.tokens)
    w.add_token_types(vocab.types)
    if vocab.merges is None:
        w.add_token_scores([-float(i) for i in range(len(vocab.tokens))])
        w.add_add_bos_token(False)  # the reference tokenizer adds none either
    else:
        w.add_token_merges(vocab.merges)
    w.add_eos_token_id(vocab.ids["eos"])
    w.add_bos_token_id(vocab.ids["bos"])
    w.add_pad_token_id(vocab.ids["pad"])
    if "unk" in vocab.ids:
        w.add_unk_token_id(vocab.ids["unk"])
    for name, tensor in _gguf_tensors(spec, model).items():
        w.add_tensor(name, tensor)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path, model, vocab


@pytest.fixture(scope="session")
def tiny_ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Any, Vocab]]:
    folder = tmp_path_factory.mktemp("ggufs")
    return {family: write_gguf(spec, folder) for family, spec in SPECS.items()}


def _params(xfails: dict[str, str]) -> list[Any]:
    return [
        pytest.param(f, marks=pytest.mark.xfail(strict=True, reason=xfails[f])) if f in xfails else f for f in SPECS
    ]


@pytest.mark.parametrize("family", _params(NAMING_XFAIL))
def test_gguf_metadata_names_the_family(family: str, tiny_ggufs: Any, tmp_path: Path) -> None:
    from slimkit.families import family_of
    from slimkit_transformers.models import _gguf_config

    path, model, _ = tiny_ggufs[family]
    config = _gguf_config(path, tmp_path / "cache")
    assert family_of(config) == family
    assert config["hidden_size"] == model.config.hidden_size
    assert config["num_hidden_layers"] == model.config.num_hidden_layers
    assert config["num_key_value_heads"] == model.config.num_key_value_heads


@pytest.mark.parametrize("family", list(SPECS))
def test_gguf_converts_to_a_classifier_with_the_same_weights(family: str, tiny_ggufs: Any, tmp_path: Path) -> None:
    import numpy as np

    from slimkit.families import family_name
    from slimkit.spec import pipeline_from_dict
    from slimkit_transformers.models import load_classifier, resolve_source
    from slimkit_transformers.tasks import Split, TaskData

    path, model, vocab = tiny_ggufs[family]
    split = Split(["x"], np.array([0]))
    task = TaskData("tiny", "single_label", LABELS, split, split, split, 0.5, "")
    pipeline = pipeline_from_dict({"model": str(path)}, base_dir=tmp_path)
    artifact = resolve_source(pipeline.model, pipeline, tmp_path / "cache", task)
    assert artifact is not None and artifact.metadata["converted_from"] == "gguf"
    assert artifact.metadata["decoder"] is True
    assert family_name(artifact.metadata["model_type"]) == LOADS_AS.get(family, family)

    classifier, tokenizer = load_classifier(artifact.path)
    got = classifier.state_dict()
    want = {k: v for k, v in model.state_dict().items() if not k.startswith("lm_head.")}
    assert set(want) <= set(got), sorted(set(want) - set(got))
    for name, tensor in want.items():
        torch.testing.assert_close(got[name], tensor, msg=lambda m, name=name: f"{family} {name}: {m}")

    texts = ["the quick brown fox", "I am so happy today"]
    want_ids = [vocab.reference.encode(t).ids for t in texts]
    assert tokenizer(texts, add_special_tokens=False)["input_ids"] == want_ids
    assert tokenizer.decode(want_ids[0]) == texts[0]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        assert classifier(**batch).logits.shape == (2, len(LABELS))
