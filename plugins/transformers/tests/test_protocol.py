"""The measurement protocol's structure (never its timings)."""

from __future__ import annotations

from typing import Any

import numpy as np

from slimkit_transformers import protocol
from slimkit_transformers.tasks import Split, TaskData


class FakePredictor:
    def __init__(self, name: str, log: list[str], logits: np.ndarray | None = None) -> None:
        self.name, self.log, self.logits = name, log, logits
        self.facts = {"params": 10, "nonzero_params": 5, "embedding_share": 0.5}

    def encode(self, texts: list[str], *, max_length: int, pad_to_max: bool) -> Any:
        return texts

    def __call__(self, inputs: Any) -> np.ndarray:
        self.log.append(self.name)
        assert self.logits is not None
        return self.logits[: len(inputs)]


def test_blocks_rotate_and_warm_up() -> None:
    log: list[str] = []
    predictors = {k: FakePredictor(k, log) for k in "ABC"}
    for p in predictors.values():
        p.logits = np.zeros((1, 2))
    ticks = iter(range(0, 10**9, 1_000_000))  # every clock read advances 1 ms
    samples = protocol.time_blocks(
        predictors,
        {k: [["x"]] for k in predictors},
        warmup=2,
        repeats=3,
        rounds=3,
        clock=lambda: next(ticks),
        settle=lambda: log.append("settle"),
    )
    # One untimed warm-up pass over every predictor, then the rounds: round r starts with the r-th
    # predictor; each block is a settle pause, warm-up (2) then timed (3) calls.
    assert log[:6] == ["A", "A", "B", "B", "C", "C"]
    del log[:6]
    assert log[::6] == ["settle"] * 9
    log[:] = [entry for entry in log if entry != "settle"]
    blocks = [log[i] for i in range(0, len(log), 5)]
    assert blocks == ["A", "B", "C", "B", "C", "A", "C", "A", "B"]
    assert all(log[i : i + 5] == [log[i]] * 5 for i in range(0, len(log), 5))
    assert {k: [len(block) for block in v] for k, v in samples.items()} == {k: [3, 3, 3] for k in "ABC"}
    assert samples["A"][0][0] == 1.0


def _task(labels: np.ndarray, multi: bool = False) -> TaskData:
    split = Split([f"t{i}" for i in range(len(labels))], labels)
    return TaskData("t", "multi_label" if multi else "single_label", ["a", "b", "c"], split, split, split, 0.5, "")


def test_accuracy_agreement_and_head_loss_warning() -> None:
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    good = np.eye(3)[labels] * 5.0  # baseline predicts the gold labels
    broken = np.tile([5.0, 0.0, 0.0], (10, 1))  # a "re-initialised head": always class 0
    log: list[str] = []
    predictors = {"base": FakePredictor("base", log, good), "cand": FakePredictor("cand", log, broken)}
    out = protocol.accuracy_metrics(predictors, {"base": 0.5, "cand": 0.5}, _task(labels), "base")
    base = {m.name: m for m in out["base"]}
    cand = {m.name: m for m in out["cand"]}
    assert base["accuracy"].value == 1.0 and base["agreement"].value == 1.0
    assert cand["accuracy"].value == 0.4 and cand["agreement"].value == 0.4
    assert "warning" not in base["agreement"].details
    assert "re-initialised" in cand["agreement"].details["warning"]
    assert "could not be compared" in cand["agreement"].details["warning"]
    assert cand["agreement"].details["chance_level"] == 0.4


def test_head_change_is_reported_when_checksums_exist() -> None:
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    base = FakePredictor("base", [], np.eye(3)[labels] * 5.0)
    cand = FakePredictor("cand", [], np.tile([5.0, 0.0, 0.0], (10, 1)))
    base.facts["head_checksum"], cand.facts["head_checksum"] = 12.5, 3.0
    out = protocol.accuracy_metrics({"base": base, "cand": cand}, {"base": 0.5, "cand": 0.5}, _task(labels), "base")
    agreement = next(m for m in out["cand"] if m.name == "agreement")
    assert agreement.details["head_changed"] is True
    assert "head weights differ" in agreement.details["warning"]


def test_a_source_with_a_new_head_gets_a_note_not_the_alarm() -> None:
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    base = FakePredictor("base", [], np.eye(3)[labels] * 5.0)
    source = FakePredictor("source", [], np.tile([5.0, 0.0, 0.0], (10, 1)))
    thresholds = {"base": 0.5, "source": 0.5}
    out = protocol.accuracy_metrics(
        {"base": base, "source": source}, thresholds, _task(labels), "base", untrained=frozenset({"source"})
    )
    agreement = next(m for m in out["source"] if m.name == "agreement")
    assert "warning" not in agreement.details
    assert "head is new" in agreement.details["note"]


def test_a_baseline_that_learned_nothing_is_flagged_not_its_candidates() -> None:
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    constant = np.tile([5.0, 0.0, 0.0], (10, 1))
    base, cand = FakePredictor("base", [], constant), FakePredictor("cand", [], constant)
    out = protocol.accuracy_metrics({"base": base, "cand": cand}, {"base": 0.5, "cand": 0.5}, _task(labels), "base")
    base_agreement = next(m for m in out["base"] if m.name == "agreement")
    cand_agreement = next(m for m in out["cand"] if m.name == "agreement")
    assert "has not learned the task" in base_agreement.details["warning"]
    assert "warning" not in cand_agreement.details


def test_static_metrics_from_predictor_facts() -> None:
    metrics = {m.name: m.value for m in protocol.static_metrics(FakePredictor("x", []))}
    assert metrics == {"params": 10.0, "nonzero_params": 5.0, "embedding_share": 0.5}
