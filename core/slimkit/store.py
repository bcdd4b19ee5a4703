"""The step store: finished steps published with a digest of every file, verified before reuse,
and claimed before they are built, so that runs sharing a store never build or delete each
other's work.

Layout of a store (``<run>/steps`` or a pipeline's ``store_dir``)::

    <name>-<key>/                 a finished step, moved into place atomically
        model/                    what the technique wrote
        slimkit-artifact.json     the manifest: the artifact and the size and sha256 of every file
        .slimkit-verified.json    the files' fingerprints when last hashed (slimkit.digests)
    .tmp-<name>-<key>-<id>/       scratch of a step being built (only by the holder of its claim)
    .trash-<name>-<key>-<id>/     a damaged step moved aside while its rebuild is published
    .lock-<key>                   the claim on a key while a run builds it (slimkit.claims)

Cached folders that are not steps (a converted source model) are kept by :func:`ensure_folder`
under the same rules, their digests in ``slimkit-files.json``. A ``store_dir`` that is a URL
(``s3://bucket/prefix``) is shared between machines through a local store of this kind:
:mod:`slimkit.remote_store`.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from slimkit.artifacts import MANIFEST, Artifact, atomic_dir
from slimkit.claims import claim
from slimkit.digests import Damaged, check_files, record_files

STEP_SCHEMA = "slimkit.step/2"
SEAL = "slimkit-files.json"  # the digests of a cached folder that is not a step
SCRATCH_ID = re.compile(r"[0-9a-f]{8}")  # the random suffix atomic_dir gives scratch and trash


def write_manifest(folder: Path, artifact: Artifact) -> None:
    """Write a built step's manifest: the artifact (its path relative to the folder, so the store
    can move) and the digest of every file. Written last: its presence marks the step done."""
    document = {
        "schema": STEP_SCHEMA,
        "artifact": artifact.model_dump(mode="json"),
        "files": record_files(folder, skip=(MANIFEST,)),
    }
    (folder / MANIFEST).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def verify_step(folder: Path) -> Artifact | None:
    """The artifact of the finished step in ``folder`` (its path made absolute), or None when the
    folder holds no finished step. Raises Damaged when it holds one that must not be reused."""
    try:
        if not (folder / MANIFEST).exists():
            return None
    except OSError as exc:
        raise Damaged(f"it cannot be read ({type(exc).__name__})") from None
    artifact, files = _read_manifest(folder)
    check_files(folder, files, skip=(MANIFEST,))
    return artifact.with_updates(path=folder / artifact.path)


def _read_manifest(folder: Path) -> tuple[Artifact, Any]:
    try:
        document = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise Damaged(f"its manifest cannot be read ({type(exc).__name__})") from None
    if not isinstance(document, dict) or "artifact" not in document:
        raise Damaged("its manifest was written without file digests (by an older slimkit) or is not a manifest")
    if document.get("schema") != STEP_SCHEMA:
        raise Damaged(f"its manifest has schema {document.get('schema')!r}, not {STEP_SCHEMA!r}")
    try:
        artifact = Artifact.model_validate(document["artifact"])
    except ValidationError:
        raise Damaged("its manifest's artifact does not validate") from None
    if not _inside(folder, artifact.path):
        raise Damaged(f"its manifest's path {str(artifact.path)!r} points outside the step folder")
    return artifact, document.get("files")


def _inside(folder: Path, relative: Path) -> bool:
    """Whether a manifest's path names something inside ``folder`` (not the folder itself)."""
    if relative.is_absolute() or relative in (Path(), Path(MANIFEST)):
        return False
    try:
        return (folder / relative).resolve().is_relative_to(folder.resolve())
    except (OSError, ValueError):  # a NUL in the name, a name too long
        return False


def seal(folder: Path) -> None:
    """Record the digest of every file of a cached folder before it is published."""
    files = record_files(folder, skip=(SEAL,))
    (folder / SEAL).write_text(json.dumps({"files": files}, indent=2) + "\n", encoding="utf-8")


def check_seal(folder: Path) -> None:
    """Raise Damaged unless every file that :func:`seal` recorded is there, unchanged."""
    try:
        files = json.loads((folder / SEAL).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise Damaged(f"its file digests cannot be read ({type(exc).__name__})") from None
    check_files(folder, files, skip=(SEAL,))


def ensure_folder(final: Path, build: Callable[[Path], None]) -> str | None:
    """Build a content-addressed cache folder (a converted source model) unless a sealed, intact
    one is there. Returns a one-line warning when a damaged one was built again, else None.

    The folder's name is claimed while it is built, so concurrent runs convert it once; a run that
    waited finds the folder built and uses it."""
    if _damage(final) is None:
        return None
    with claim(final.parent, final.name):
        if (damage := _damage(final)) is None:
            return None
        remove_scratch(final)
        with atomic_dir(final) as scratch:
            build(scratch)
            seal(scratch)
    return None if damage == "absent" else f"cached folder {final.name} was damaged ({damage}); built again"


def _damage(folder: Path) -> str | None:
    """None when ``folder`` is intact, 'absent' when it is not there, else what is wrong with it."""
    if not folder.exists():
        return "absent"
    try:
        check_seal(folder)
    except Damaged as why:
        return str(why)
    return None


def remove_scratch(final: Path) -> None:
    """Remove the scratch and trash folders of ``final`` left by a killed run. Only the holder of
    the claim on ``final``'s key calls this, so no live run's folders are touched."""
    if not final.parent.exists():
        return
    for prefix in (".tmp-", ".trash-"):
        for left in final.parent.glob(f"{prefix}{final.name}-*"):
            if SCRATCH_ID.fullmatch(left.name.removeprefix(f"{prefix}{final.name}-")):
                shutil.rmtree(left, ignore_errors=True)
