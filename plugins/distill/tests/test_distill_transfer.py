"""transfer_texts: where the unlabelled texts come from, and the errors a user can make."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from slimkit.errors import SlimkitError
from slimkit.spec import UnlabelledTexts
from slimkit_distill.config import DistillConfig
from slimkit_distill.transfer import load_transfer_texts


def test_a_text_file_gives_its_non_empty_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("first text\n\n  \nsecond text\n")
    texts, source = load_transfer_texts(UnlabelledTexts(data_file=str(path)), Path, seed=0)
    assert texts == ["first text", "second text"] and source == "file:t.txt"


def test_max_rows_is_a_seeded_sample_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,body\n" + "".join(f"{i},text {i}\n" for i in range(50)))
    spec = UnlabelledTexts(data_file=str(path), text_column="body", max_rows=10)
    first, _ = load_transfer_texts(spec, Path, seed=3)
    again, _ = load_transfer_texts(spec, Path, seed=3)
    other, _ = load_transfer_texts(spec, Path, seed=4)
    assert first == again != other and len(first) == 10
    assert first == sorted(first, key=lambda t: int(t.split()[1]))


def test_a_missing_column_names_the_option_and_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,body\n1,hello\n")
    expected = "transfer_texts.text_column: 'text' is not a column of t.csv (have: id, body)"
    with pytest.raises(SlimkitError, match=re.escape(expected)):
        load_transfer_texts(UnlabelledTexts(data_file=str(path)), Path, seed=0)


def test_a_missing_file_and_an_unknown_preset_name_the_option(tmp_path: Path) -> None:
    with pytest.raises(SlimkitError, match=r"transfer_texts\.data_file: no such file"):
        load_transfer_texts(UnlabelledTexts(data_file=str(tmp_path / "nope.txt")), Path, seed=0)
    with pytest.raises(SlimkitError, match=r"transfer_texts\.preset: unknown preset 'tweets'"):
        load_transfer_texts(UnlabelledTexts(preset="tweets"), Path, seed=0)


def test_one_source_is_required() -> None:
    with pytest.raises(ValueError, match="give 'preset' or 'data_file'"):
        UnlabelledTexts()
    with pytest.raises(ValueError, match="give 'preset' or 'data_file'"):
        UnlabelledTexts(preset="goemotions", data_file="x.txt")


def test_the_option_is_left_out_of_the_dumped_config_while_unset() -> None:
    # The step key hashes the dumped config: students stored before the option existed stay reusable.
    assert "transfer_texts" not in DistillConfig().model_dump(mode="json")
    assert DistillConfig(transfer_texts={"preset": "goemotions"}).model_dump(mode="json")["transfer_texts"] == {
        "preset": "goemotions", "data_file": None, "text_column": "text", "max_rows": None,
    }  # fmt: skip


SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real data not found at {SHARED_DATA} (see its README.md)")
def test_a_preset_gives_its_training_texts_without_labels() -> None:
    texts, source = load_transfer_texts(UnlabelledTexts(preset="goemotions", max_rows=100), Path, seed=0)
    assert len(texts) == 100 and source == "preset:goemotions" and all(isinstance(t, str) and t for t in texts)
    everything, _ = load_transfer_texts(UnlabelledTexts(preset="goemotions"), Path, seed=0)
    assert len(everything) == 43_410  # train.tsv's rows: the validation slice is training text too
