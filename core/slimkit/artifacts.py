"""Model artifacts passed between steps, and the atomic writes that keep a run resumable."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

CACHE_ENV = "SLIMKIT_CACHE"


def cache_dir() -> Path:
    """Where converted source models (and slow reads of them) are cached between runs."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "slimkit")


MANIFEST = "slimkit-artifact.json"


class Artifact(BaseModel):
    """A model on disk in one format, produced by the model source or by a step.

    Steps never modify their input artifact: they write a new one into the folder the runner
    gives them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(description="Content key: hash of (input key, technique, plugin version, config).")
    path: Path = Field(description="Folder (or file) holding the model.")
    format: str = Field(description="Model format, e.g. 'transformers' or 'onnx'.")
    label: str = Field(description="Human name: 'baseline' or the step name.")
    produced_by: str | None = Field(default=None, description="Technique that made it; None for the source.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Free-form facts for later steps and reports.")

    def with_updates(self, **changes: Any) -> Artifact:
        return self.model_copy(update=changes)


def stable_hash(*parts: Any, length: int = 16) -> str:
    """Hash JSON-serialisable parts in a way that does not depend on dict order."""
    payload = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:length]


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that readers see the old file or the new one, never half of it."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write text so that readers see the old file or the new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a scratch folder beside ``final``; move it into place only if the block succeeds.

    A step killed half-way leaves a hidden scratch folder, never a half-written ``final`` that a
    resumed run would mistake for a finished step. Callers that share ``final`` with other
    processes claim it first (``slimkit.store.claim``), so that no reader loses it mid-read.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    scratch.mkdir()
    try:
        yield scratch
        publish(scratch, final)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)


def publish(scratch: Path, final: Path) -> None:
    """Move a finished folder into place. A folder already there is renamed aside first and
    removed after, so ``final`` names the old folder or the new one, never half of either."""
    if final.exists():
        trash = final.parent / f".trash-{final.name}-{uuid.uuid4().hex[:8]}"
        os.replace(final, trash)
        os.replace(scratch, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(scratch, final)


def disk_size(path: Path) -> int:
    """Bytes on disk of a file or of every file under a folder (links are not followed)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
