"""``slimkit compress`` with the installed first-party plugins, on tiny models: the real recipes
and declarations decide what is tried, for an encoder and a decoder, and a short run ends with the
chosen model's path."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from slimkit.cli import cli

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("slimkit_onnx") is None or importlib.util.find_spec("slimkit_distill") is None,
    reason="needs the first-party plugins installed (scripts/setup)",
)


@pytest.fixture
def compress(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_task: dict[str, Any]) -> Any:
    monkeypatch.delenv("SLIMKIT_LOAD_PLUGINS", raising=False)  # every installed plugin, as users have them
    monkeypatch.chdir(tmp_path)
    files = tiny_task["data_files"]

    def run(model: Path, *args: str) -> Any:
        data = ["--data", files["train"], "--eval", files["eval"], "--label-column", "label"]
        return CliRunner().invoke(cli, ["compress", str(model), *data, "--device", "cpu", *args])

    return run


def test_an_encoder_gets_the_encoder_recipes(compress: Any, tmp_path: Path) -> None:
    from slimkit_transformers.testing import build_tiny_model

    result = compress(build_tiny_model("roberta", tmp_path / "roberta"), "--plan")
    assert result.exit_code == 0, result.output
    assert "(roberta, encoder) for speed, within 1 point(s)" in result.output
    assert "fine-tuned first by transformers.finetune-encoder" in result.output
    # RoBERTa's BPE vocabulary is not pruned: the optional step is left out, the recipe kept.
    assert "try distill.half-depth-onnx-int8: distill -> export -> optimize -> quantize" in result.output
    assert "without vocab: not for this model" in result.output
    lowrank = "distill -> prune -> recover -> low-rank -> recover-rank -> ov-export -> ov-int8"
    assert f"try distill.half-depth-ffn-heads-lowrank-openvino-int8: {lowrank}" in result.output
    assert "skip textpruner.vocab-onnx-int8: textpruner.vocabulary supports bert, electra, not roberta" in result.output
    assert "skip bnb.mlp-prune-nf4: meant for decoders, this is an encoder" in result.output
    assert "skip openvino.int4: for size, memory, not speed" in result.output  # slower than int8 kernels
    assert result.output.rstrip().endswith("Every candidate can run.")


def test_a_decoder_gets_the_decoder_recipes(compress: Any, tmp_path: Path) -> None:
    from slimkit_transformers.testing import build_tiny_model

    result = compress(build_tiny_model("qwen3", tmp_path / "qwen3"), "--goal", "size", "--plan")
    assert result.exit_code == 0, result.output
    assert "(qwen3, decoder) for size" in result.output
    assert "fine-tuned first by transformers.finetune-decoder" in result.output
    assert "try bnb.mlp-prune-nf4: prune -> recover -> nf4" in result.output
    assert "skip distill.half-depth-ffn-onnx-int8: meant for encoders, this is a decoder" in result.output
    # NNCF's 4-bit weights, embeddings included, are a size recipe for either kind.
    assert "try openvino.int4: ov-export -> ov-int4" in result.output


def test_a_short_compress_run_names_the_chosen_model(compress: Any, tmp_path: Path) -> None:
    from slimkit_transformers.testing import build_tiny_model

    model = build_tiny_model("bert", tmp_path / "bert")
    (tmp_path / "runs").mkdir()
    (tmp_path / "traffic.txt").write_text("".join(f"unlabelled comment number {i}\n" for i in range(40)))
    args = ["--name", "c", "--epochs", "2", "--budget", "100", "--time-budget", "10m"]
    result = compress(model, *args, "--unlabelled", "traffic.txt", "--unlabelled-rows", "25")
    assert result.exit_code == 0, result.output
    assert "unlabelled texts: file:traffic.txt (25 rows at most), given to every distill.kd step (distill, " in (
        result.output
    )
    # Every distillation of every recipe labelled the 25 texts with its teacher.
    variants = json.loads((tmp_path / "runs" / "c" / "results.json").read_text())["variants"]
    kd = [r for v in variants for r in v["step_records"] if r["technique"] == "distill.kd"]
    assert kd and all(r["artifact"]["metadata"]["transfer_texts_rows"] == 25 for r in kd)
    chosen = next(line for line in result.output.splitlines() if line.startswith("Chosen: "))
    path = Path(chosen.rsplit(" at ", 1)[1])
    # The fastest variant on a tiny BERT: an ONNX Runtime or an OpenVINO one, both packaged alike.
    assert (tmp_path / path).is_dir() and ("(onnx)" in chosen or "(openvino)" in chosen)
    assert (tmp_path / "runs" / "c" / "report.md").is_file()
    again = CliRunner().invoke(cli, ["run", "runs/c/compress.toml", "-q"])  # the file it wrote resumes it
    assert again.exit_code == 0, again.output
