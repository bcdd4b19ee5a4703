"""transformers.vocabulary on tiny random-weight decoders of each declared family.

The tiny families use the tokenizer kinds of their real models (byte-level BPE, Unigram; see
slimkit_transformers.testing); a SentencePiece-style BPE with byte fallback (Llama 2, Mistral 7B
v0.1, Gemma, Phi-3) is built here with the tokenizers library.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers

from slimkit.errors import SlimkitError
from slimkit_transformers import DECODER_FAMILIES
from slimkit_transformers.models import load_classifier
from slimkit_transformers.testing import WORDS, build_tiny_model
from slimkit_transformers.vocabulary import prune_tokenizer_json, select_tokens

NO_MEASURE = {"enabled": False}
FEW_TEXTS = ["i love this movie", "the food was bad", "really happy today"]
UNSEEN = ["terrible angry day", "a very nice joy", "not fun but good", "zebra quiz ü 🙂"]


def _step(**config: Any) -> dict[str, Any]:
    return {"name": "vocab", "technique": "transformers.vocabulary", "config": config}


def _train_texts(task: dict[str, Any]) -> list[str]:
    with open(task["data_files"]["train"], encoding="utf-8") as fh:
        return [row["text"] for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)]


def _run(run_pipeline: Any, pipeline: dict[str, Any]) -> Any:
    result = run_pipeline(pipeline)
    assert result.exit_code == 0, [s.error for s in result.steps]
    return result


def _logits(folder: Path, texts: list[str]) -> torch.Tensor:
    model, tokenizer = load_classifier(folder)
    with torch.inference_mode():
        logits: torch.Tensor = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    return logits


def _check_pruned(source: Path, pruned: Path, texts: list[str], unseen: list[str]) -> None:
    """Same ids (remapped) and same logits on ``texts``; ``unseen`` tokenize without new unknowns;
    the folder reloads with the Auto classes, its sizes agree."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    old, new = AutoTokenizer.from_pretrained(source), AutoTokenizer.from_pretrained(pruned)
    ids: Any = old.convert_tokens_to_ids(new.convert_ids_to_tokens(list(range(len(new)))))
    kept = [int(i) for i in ids]
    assert kept == sorted(kept) and len(set(kept)) == len(kept)
    remap = {o: n for n, o in enumerate(kept)}
    for text in texts:
        assert new(text)["input_ids"] == [remap[i] for i in old(text)["input_ids"]], text
    for text in unseen:
        before, after = old(text)["input_ids"], new(text)["input_ids"]
        if old.unk_token_id is None or old.unk_token_id not in before:
            assert new.unk_token_id is None or new.unk_token_id not in after, (text, after)
        assert new.decode(after, skip_special_tokens=True) == old.decode(before, skip_special_tokens=True)

    model = AutoModelForSequenceClassification.from_pretrained(pruned)
    assert model.config.vocab_size == model.get_input_embeddings().num_embeddings == len(new) == len(kept)
    original = AutoModelForSequenceClassification.from_pretrained(source)
    assert torch.equal(model.get_input_embeddings().weight, original.get_input_embeddings().weight[kept])
    assert torch.equal(model.score.weight, original.score.weight)  # head intact
    for attr in ("pad_token_id", "bos_token_id", "eos_token_id"):
        before = getattr(original.config, attr)
        if isinstance(before, int):
            assert getattr(model.config, attr) == remap[before]
    assert (_logits(pruned, texts) - _logits(source, texts)).abs().max() < 1e-5


@pytest.mark.parametrize("family", DECODER_FAMILIES)
def test_each_decoder_family_keeps_tokens_and_logits(
    family: str, plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_task: dict[str, Any], tmp_path: Path
) -> None:
    model_dir = build_tiny_model(family, tmp_path / family)
    extra = tmp_path / "extra.txt"
    extra.write_text("\n".join(FEW_TEXTS) + "\n", encoding="utf-8")
    steps = [_step(splits=[], extra_texts_file=str(extra))]
    result = _run(run_pipeline, tiny_pipeline(model_dir, tiny_task, steps, measure=NO_MEASURE))
    artifact = result.steps[0].artifact
    meta = artifact.metadata
    assert meta["vocab_size_after"] < meta["vocab_size_before"]
    assert meta["embedding_params_after"] == meta["vocab_size_after"] * 64  # hidden size 64
    assert (
        meta["embedding_params_before"] - meta["embedding_params_after"] == meta["params_before"] - meta["params_after"]
    )
    assert meta["texts_used"] == {"splits": {}, "extra_texts_file": 3, "total": 3}
    check = meta["training_texts_check"]
    assert check["identical"] == check["texts"] == 3 and check["identical_share"] == 1.0
    assert meta["logits_check"]["max_abs_diff"] < 1e-5
    assert meta["eval_texts_check"]["new_unk_texts"] == 0  # unseen words split into kept pieces
    assert meta["eval_texts_check"]["changed"] > 0  # words of the eval texts the three texts lack
    _check_pruned(result.source.path, artifact.path, FEW_TEXTS, UNSEEN)
    assert sorted(p.name for p in artifact.path.iterdir() if p.name.startswith("tokenizer")) == [
        "tokenizer.json",
        "tokenizer_config.json",
    ]


def test_the_task_training_texts_tokenize_exactly_as_before(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_task: dict[str, Any], tmp_path: Path
) -> None:
    model_dir = build_tiny_model("qwen2", tmp_path / "qwen2")
    result = _run(run_pipeline, tiny_pipeline(model_dir, tiny_task, [_step()], measure=NO_MEASURE))
    meta = result.steps[0].artifact.metadata
    assert meta["texts_used"]["splits"] == {"train": 96, "validation": 24}
    assert meta["training_texts_check"]["identical"] == 120
    assert meta["logits_check"]["texts"] == 64
    train = _train_texts(tiny_task)
    _check_pruned(result.source.path, result.steps[0].artifact.path, train, UNSEEN)


def _sentencepiece_bpe(folder: Path) -> Path:
    """A tiny Mistral whose tokenizer is a SentencePiece-style BPE (▁ word marks, byte fallback
    through 256 <0x..> tokens, <unk>), as Llama 2, Mistral 7B v0.1 and Gemma ship it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from slimkit_transformers.testing import _family_config

    specials = ["<unk>", "<s>", "</s>"]
    words = list(dict.fromkeys(WORDS))
    trained = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    trained.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=specials, show_progress=False)
    trained.train_from_iterator([" ".join(words)] * 4 + [f"{a} {b}" for a in words for b in words], trainer)
    data = json.loads(trained.to_str())
    ordered = specials + [f"<0x{b:02X}>" for b in range(256)]
    ordered += [t for t, _ in sorted(data["model"]["vocab"].items(), key=lambda kv: kv[1]) if t not in specials]
    data["model"]["vocab"] = {t: i for i, t in enumerate(ordered)}
    tokenizer = Tokenizer.from_str(json.dumps(data))
    tokenizer.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse(), decoders.Metaspace()])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", 1)]
    )
    fast: Any = PreTrainedTokenizerFast
    wrapped = fast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    torch.manual_seed(0)
    causal: Any = transformers.AutoModelForCausalLM  # untyped in transformers 5
    causal.from_config(_family_config("mistral", wrapped)).save_pretrained(folder)
    wrapped.save_pretrained(folder)
    return folder


def test_sentencepiece_bpe_keeps_its_byte_fallback(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_task: dict[str, Any], tmp_path: Path
) -> None:
    model_dir = _sentencepiece_bpe(tmp_path / "sp-bpe")
    steps = [_step(min_count=1)]
    result = _run(run_pipeline, tiny_pipeline(model_dir, tiny_task, steps, measure=NO_MEASURE))
    meta = result.steps[0].artifact.metadata
    assert meta["tokenizer_model"] == "BPE" and meta["kept_tokens"]["byte_fallback"] == 256
    pruned = result.steps[0].artifact.path
    vocab = json.loads((pruned / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    assert all(f"<0x{b:02X}>" in vocab for b in range(256))
    _check_pruned(result.source.path, pruned, _train_texts(tiny_task), UNSEEN)
    from transformers import AutoTokenizer

    new = AutoTokenizer.from_pretrained(pruned)
    ids = new("zebra ü")["input_ids"]
    assert new.unk_token_id not in ids and new.convert_tokens_to_ids("<0xC3>") in ids  # ü in bytes


def test_merge_parts_of_kept_tokens_are_kept() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {c: i for i, c in enumerate("helopwd")}
    merges = [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), ("w", "o"), ("l", "d"), ("wo", "r")]
    vocab |= {"r": len(vocab)}
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    data = json.loads(tokenizer.to_str())
    ids = tokenizer.encode("hello").ids
    assert [tokenizer.id_to_token(i) for i in ids] == ["hello"]
    chosen = select_tokens(data, Counter(ids), 1, [])
    kept_tokens = {tokenizer.id_to_token(i) for i in chosen["kept"]}
    # hello, the parts that make it (hell, he, ll), and the alphabet; not wo, ld or wor
    assert kept_tokens == set("helopwdr") | {"hello", "hell", "he", "ll"}
    assert chosen["groups"]["merge_parts"] == 3
    pruned, merges_count = prune_tokenizer_json(data, chosen["kept"])
    assert merges_count == {"merges_before": 7, "merges_after": 4}
    rebuilt = Tokenizer.from_str(json.dumps(pruned))
    assert [rebuilt.id_to_token(i) for i in rebuilt.encode("hello").ids] == ["hello"]
    assert [rebuilt.id_to_token(i) for i in rebuilt.encode("world").ids] == list("world")


def test_min_count_drops_rare_tokens_and_they_split_into_kept_pieces(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_task: dict[str, Any], tmp_path: Path
) -> None:
    model_dir = build_tiny_model("llama", tmp_path / "llama")
    extra = tmp_path / "extra.txt"
    extra.write_text("\n".join(["i love this movie"] * 3 + ["the food was bad"]) + "\n", encoding="utf-8")
    steps = [_step(splits=[], extra_texts_file=str(extra), min_count=2)]
    result = _run(run_pipeline, tiny_pipeline(model_dir, tiny_task, steps, measure=NO_MEASURE))
    meta = result.steps[0].artifact.metadata
    check = meta["training_texts_check"]
    assert (check["texts"], check["in_vocabulary"], check["identical"]) == (4, 3, 3)
    assert check["unk_tokens_after"] == 0
    from transformers import AutoTokenizer

    new = AutoTokenizer.from_pretrained(result.steps[0].artifact.path)
    assert new.decode(new("the food was bad")["input_ids"], skip_special_tokens=True) == "the food was bad"


def test_bad_config_is_refused_in_one_line_naming_step_and_field(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_task: dict[str, Any], tmp_path: Path
) -> None:
    model_dir = build_tiny_model("llama", tmp_path / "llama")
    for config, field in (
        ({"min_count": 0}, "min_count"),
        ({"splits": ["eval"]}, "splits"),
        ({"min_cnt": 2}, "min_cnt"),
    ):
        with pytest.raises(SlimkitError) as refused:
            run_pipeline(tiny_pipeline(model_dir, tiny_task, [_step(**config)], measure=NO_MEASURE))
        problem = str(refused.value)
        assert "\n" not in problem and "step 1 (vocab)" in problem and f"config.{field}" in problem, problem


def test_missing_extra_texts_file_fails_in_one_line(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_task: dict[str, Any], tmp_path: Path
) -> None:
    model_dir = build_tiny_model("llama", tmp_path / "llama")
    steps = [_step(extra_texts_file=str(tmp_path / "none.txt"))]
    result = run_pipeline(tiny_pipeline(model_dir, tiny_task, steps, measure=NO_MEASURE))
    error = result.steps[0].error
    assert result.exit_code != 0 and "\n" not in error
    assert "'vocab'" in error and "config.extra_texts_file" in error and "none.txt" in error


def test_a_wordpiece_decoder_and_an_encoder_are_refused(
    plugins: Any,
    run_pipeline: Any,
    tiny_pipeline: Any,
    tiny_task: dict[str, Any],
    tiny_llama: Path,
    tmp_path: Path,
) -> None:
    # tiny_llama carries a BERT word-piece tokenizer: refused when the step reads it.
    result = run_pipeline(tiny_pipeline(tiny_llama, tiny_task, [_step()], measure=NO_MEASURE))
    error = result.steps[0].error
    assert result.exit_code != 0 and "\n" not in error, error
    assert "'vocab'" in error and "transformers.vocabulary" in error and "WordPiece" in error
    # An encoder is refused at plan time (the declared families are decoders).
    bert = build_tiny_model("roberta", tmp_path / "roberta")
    with pytest.raises(SlimkitError, match=r"step 1 \(vocab\): transformers.vocabulary does not support model "
                       "family 'roberta'"):  # fmt: skip
        run_pipeline(tiny_pipeline(bert, tiny_task, [_step()], measure=NO_MEASURE))
