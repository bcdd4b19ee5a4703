"""textpruner.vocabulary on a tiny BERT whose tokenizer has a 37-token word-piece vocabulary."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from packaging.version import Version

from slimkit_transformers.models import load_classifier
from slimkit_transformers.testing import VOCAB

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
NO_MEASURE = {"enabled": False}


def _step(**config: Any) -> dict[str, Any]:
    return {"name": "vocab", "technique": "textpruner.vocabulary", "config": config}


def _column(task: dict[str, Any], split: str) -> list[str]:
    with open(task["data_files"][split], encoding="utf-8") as fh:
        return [row["text"] for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)]


def _run(run_pipeline: Any, pipeline: dict[str, Any]) -> Any:
    result = run_pipeline(pipeline)
    assert result.exit_code == 0, [s.error for s in result.steps]
    return result


def _logits(folder: Path, texts: list[str]) -> torch.Tensor:
    model, tokenizer = load_classifier(folder)
    with torch.inference_mode():
        return model(**tokenizer(texts, padding=True, return_tensors="pt")).logits


def test_vocabulary_shrinks_to_the_tokens_of_the_given_texts(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_task: dict[str, Any]
) -> None:
    texts = ["i love this movie", "the food was bad"]
    steps = [_step(splits=[], texts=texts)]
    result = _run(run_pipeline, tiny_pipeline(tiny_bert, tiny_task, steps, measure=NO_MEASURE))
    artifact = result.steps[0].artifact
    kept_words = {"i", "love", "this", "movie", "the", "food", "was", "bad"}
    expected = [t for t in VOCAB if t in SPECIAL or t in kept_words]  # original order, specials included
    vocab_file = (artifact.path / "vocab.txt").read_text(encoding="utf-8").split()
    assert vocab_file == expected
    meta = artifact.metadata
    assert (meta["vocab_size_before"], meta["vocab_size_after"]) == (37, 13)
    assert meta["kept_token_share"] == pytest.approx(13 / 37)
    assert meta["texts_used"] == {"splits": {}, "texts": 2, "text_files": {}, "total": 2}
    assert meta["params_before"] - meta["params_after"] == (37 - 13) * 32  # hidden size 32


def test_predictions_on_kept_tokens_are_identical_and_the_folder_reloads(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_task: dict[str, Any]
) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    steps = [_step(splits=[], texts=["i love this movie", "the food was bad"], tokens=["happy"])]
    result = _run(run_pipeline, tiny_pipeline(tiny_bert, tiny_task, steps, measure=NO_MEASURE))
    source, pruned = result.source.path, result.steps[0].artifact.path
    assert not list(pruned.glob("*.bin")) and (pruned / "model.safetensors").is_file()  # nothing pickled

    texts = ["i love this movie", "the food was bad", "happy happy movie", "was the movie bad i love food"]
    assert torch.equal(_logits(source, texts), _logits(pruned, texts))

    model = AutoModelForSequenceClassification.from_pretrained(pruned)
    original = AutoModelForSequenceClassification.from_pretrained(source)
    assert model.config.vocab_size == 14 and model.get_input_embeddings().num_embeddings == 14
    assert torch.equal(model.classifier.weight, original.classifier.weight)  # head intact
    assert torch.equal(model.classifier.bias, original.classifier.bias)

    old, new = AutoTokenizer.from_pretrained(source), AutoTokenizer.from_pretrained(pruned)
    kept = [old.convert_tokens_to_ids(t) for t in new.convert_ids_to_tokens(list(range(len(new))))]
    remap = {o: n for n, o in enumerate(kept)}
    for text in texts:
        assert new(text)["input_ids"] == [remap[i] for i in old(text)["input_ids"]]
    # A pruned word that no kept pieces spell (this vocabulary has no ## pieces) becomes [UNK].
    assert new("i hate pizza")["input_ids"] == [new.cls_token_id, remap[old.convert_tokens_to_ids("i")],
                                                new.unk_token_id, new.unk_token_id, new.sep_token_id]  # fmt: skip
    assert new.pad_token_id == remap[old.pad_token_id] and model.config.pad_token_id == new.pad_token_id


def test_task_texts_choose_the_tokens_and_eval_tokens_outside_are_counted(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_task: dict[str, Any]
) -> None:
    steps = [_step()]
    result = _run(run_pipeline, tiny_pipeline(tiny_bert, tiny_task, steps, measure=NO_MEASURE))
    meta = result.steps[0].artifact.metadata
    train_words = {w for text in _column(tiny_task, "train") for w in text.split()}
    assert meta["vocab_size_after"] == len(SPECIAL) + len(train_words)
    assert meta["texts_used"]["splits"] == {"train": 96, "validation": 24}  # the validation slice is train data
    eval_words = [w for text in _column(tiny_task, "eval") for w in text.split()]
    outside = [w for w in eval_words if w not in train_words]
    assert meta["eval_tokens"] == len(eval_words) == 40 * 5  # 3 filler words and 2 emotion words a text
    assert meta["eval_tokens_outside_vocab"] == len(outside)
    assert meta["tokenizer_check"]["in_vocabulary"] >= 120  # every training text, checked id by id


def test_a_sentence_pair_task_keeps_the_tokens_of_both_texts(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_pair_task: dict[str, Any]
) -> None:
    result = _run(run_pipeline, tiny_pipeline(tiny_bert, tiny_pair_task, [_step()], measure=NO_MEASURE))
    meta = result.steps[0].artifact.metadata
    rows = {split: list(csv.DictReader(Path(tiny_pair_task["data_files"][split]).read_text().splitlines()))
            for split in ("train", "eval")}  # fmt: skip
    train_words = {w for row in rows["train"] for column in ("text", "pair") for w in row[column].split()}
    assert train_words - {w for row in rows["train"] for w in row["text"].split()}  # words only the pairs hold
    assert meta["vocab_size_after"] == len(SPECIAL) + len(train_words)
    assert meta["texts_used"]["splits"] == {"train": 2 * 96, "validation": 2 * 24}  # two texts a row
    assert meta["eval_texts"] == 2 * 40 and meta["eval_tokens"] == 40 * (4 + 4)


def test_eval_tokens_outside_the_kept_vocabulary(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_task: dict[str, Any], tmp_path: Path
) -> None:
    extra = tmp_path / "extra.txt"
    extra.write_text("happy day\n\nsad day\n", encoding="utf-8")
    steps = [_step(splits=[], texts=["i love this"], text_files=[str(extra)], tokens=["movie"])]
    result = _run(run_pipeline, tiny_pipeline(tiny_bert, tiny_task, steps, measure=NO_MEASURE))
    meta = result.steps[0].artifact.metadata
    kept = {"i", "love", "this", "happy", "day", "sad", "movie"}
    assert meta["vocab_size_after"] == len(SPECIAL) + len(kept)
    assert meta["texts_used"] == {"splits": {}, "texts": 1, "text_files": {str(extra): 2}, "total": 3}
    eval_texts = _column(tiny_task, "eval")
    words = [text.split() for text in eval_texts]
    outside = sum(1 for ws in words for w in ws if w not in kept)
    assert meta["eval_texts"] == len(eval_texts) == 40
    assert meta["eval_tokens_outside_vocab"] == outside
    assert meta["eval_tokens_outside_share"] == pytest.approx(outside / sum(map(len, words)))
    assert meta["eval_texts_affected"] == sum(any(w not in kept for w in ws) for ws in words)
    assert (meta["eval_unk_tokens_before"], meta["eval_unk_tokens_after"]) == (0, outside)


@pytest.mark.skipif(
    Version(transformers.__version__).major < 5,
    reason="transformers.finetune passes warmup_steps as a ratio, which transformers 4 refuses",
)
def test_finetuned_model_keeps_its_accuracy_threshold_and_head(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_bert: Path, tiny_multilabel_task: dict[str, Any]
) -> None:
    steps = [
        {"name": "finetune", "technique": "transformers.finetune",
         "config": {"epochs": 1, "batch_size": 16, "learning_rate": 1e-3, "max_length": 16}},
        _step(),
    ]  # fmt: skip
    result = run_pipeline(tiny_pipeline(tiny_bert, tiny_multilabel_task, steps, baseline="finetune"))
    assert result.exit_code == 0, [s.error for s in result.steps]
    tuned, pruned = (s.artifact for s in result.steps)
    assert json.loads((pruned.path / "slimkit-task.json").read_text()) == json.loads(
        (tuned.path / "slimkit-task.json").read_text()
    )
    assert pruned.metadata["task_file_copied"] is True
    assert pruned.metadata["eval_tokens_outside_vocab"] == 0  # the tiny task's eval words all occur in train
    base = {m.name: m.value for m in result.metrics[tuned.key]}
    after = {m.name: m.value for m in result.metrics[pruned.key]}
    for name in ("micro_f1", "macro_f1", "jaccard"):
        assert after[name] == base[name]
    assert after["agreement"] == 1.0
    assert after["size_bytes"] < base["size_bytes"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"splits": [], "tokens": ["happy"]}, "has no texts to choose tokens from"),
        ({"splits": [], "texts": ["i love"], "tokens": ["happy", "zebra"]}, "not in the vocabulary: zebra"),
        ({"text_files": ["missing.txt"]}, "config.text_files: no such file"),
    ],
)
def test_bad_configs_fail_the_step(
    plugins: Any,
    run_pipeline: Any,
    tiny_pipeline: Any,
    tiny_bert: Path,
    tiny_task: dict[str, Any],
    config: dict[str, Any],
    message: str,
) -> None:
    result = run_pipeline(tiny_pipeline(tiny_bert, tiny_task, [_step(**config)], measure=NO_MEASURE))
    assert result.exit_code == 1
    assert message in result.steps[0].error


def test_a_decoder_is_refused(
    plugins: Any, run_pipeline: Any, tiny_pipeline: Any, tiny_llama: Path, tiny_task: dict[str, Any]
) -> None:
    from slimkit.errors import PlanRefused

    # Refused at plan time, from the declared families, before any compute.
    with pytest.raises(PlanRefused) as refused:
        run_pipeline(tiny_pipeline(tiny_llama, tiny_task, [_step()], measure=NO_MEASURE))
    assert refused.value.problems == [
        "step 1 (vocab): textpruner.vocabulary does not support model family 'llama' (it supports bert, electra; "
        "fix: drop the step, or use transformers.vocabulary instead; see docs/compatibility.md)"
    ]
