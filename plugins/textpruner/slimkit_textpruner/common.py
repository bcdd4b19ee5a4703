"""What both techniques share: importing TextPruner and its scratch folder."""

from __future__ import annotations

import importlib.metadata as md
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from slimkit.context import StepContext
from slimkit.errors import SlimkitError

INSTALL_HINT = "pip install --no-deps textpruner==1.1.post2 tqdm (its setup.py cannot install numpy on Python 3.11)"


def import_textpruner() -> Any:
    """The textpruner module. Its SentencePiece tokenizer helpers warn at import when sentencepiece
    is missing; the WordPiece models this plugin prunes never use them, so that warning is muted."""
    quiet = logging.getLogger("textpruner.tokenizer_utils")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        import textpruner
    except ImportError as exc:
        raise SlimkitError(f"textpruner cannot be imported: {exc}", fix=INSTALL_HINT) from None
    finally:
        quiet.setLevel(level)
    return textpruner


def textpruner_version() -> str:
    try:
        return md.version("textpruner")
    except md.PackageNotFoundError:
        return "unknown"


@contextmanager
def scratch_dir(step: StepContext[Any]) -> Iterator[Path]:
    """TextPruner's output_dir: it creates the folder and may cache importance scores there
    (pickled tensors), which must not end up in the artifact."""
    step.run_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="textpruner-", dir=step.run_dir))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def param_count(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))
