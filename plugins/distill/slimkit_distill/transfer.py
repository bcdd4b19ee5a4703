"""The unlabelled texts of ``transfer_texts``: another task's training texts, or a file of texts.

The teacher labels them like the masked copies of ``augment_copies``. Real unlabelled text from
the same kind of source (a service's own traffic, or a neighbouring dataset) covers far more of
the input space than masked copies of the labelled rows, which the teacher mostly labels as it
labels the originals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from slimkit.errors import SlimkitError
from slimkit.spec import UnlabelledTexts

FIELD = "transfer_texts"


def load_transfer_texts(spec: UnlabelledTexts, resolve: Any, seed: int) -> tuple[list[str], str]:
    """The texts (a seeded sample of ``max_rows`` when set, file order otherwise) and where they came from."""
    if spec.preset is not None:
        texts = _preset_texts(spec.preset, resolve)
    else:
        assert spec.data_file is not None
        texts = _file_texts(Path(resolve(spec.data_file)), spec.text_column)
    source = spec.source
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise SlimkitError(f"{FIELD}: {source} holds no texts", fix="point it at a file with one text per row")
    if spec.max_rows is not None and spec.max_rows < len(texts):
        keep = np.sort(np.random.default_rng(seed).permutation(len(texts))[: spec.max_rows])
        texts = [texts[i] for i in keep]
    return texts, source


def _preset_texts(preset: str, resolve: Any) -> list[str]:
    from slimkit.spec import TaskSpec
    from slimkit_transformers.tasks import PRESETS, load_task

    if preset not in PRESETS:
        raise SlimkitError(f"{FIELD}.preset: unknown preset {preset!r}", fix=f"use one of {', '.join(PRESETS)}")
    task = load_task(TaskSpec(preset=preset), resolve)
    return task.train.texts + task.validation.texts  # every training text; the labels are not used


def _file_texts(path: Path, column: str) -> list[str]:
    from slimkit_transformers.tasks import read_table, read_text

    if path.suffix.lower() == ".txt":
        if not path.is_file():
            raise SlimkitError(f"{FIELD}.data_file: no such file {path}")
        return read_text(path, f"{FIELD}.data_file: {path}").splitlines()
    frame = read_table(path, has_header=True, field=f"{FIELD}.data_file")
    if column not in frame.columns:
        raise SlimkitError(
            f"{FIELD}.text_column: {column!r} is not a column of {path.name} "
            f"(have: {', '.join(map(str, frame.columns))})",
            fix="set transfer_texts.text_column",
        )
    return [str(t) for t in frame[column].tolist()]
