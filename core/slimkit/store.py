"""The step store: finished steps published with a digest of every file, verified before reuse,
and claimed before they are built so that runs sharing a store never build or delete each
other's work.

Layout of a store (``<run>/steps`` or a pipeline's ``store_dir``)::

    <name>-<key>/                 a finished step, moved into place atomically
        model/                    what the technique wrote
        slimkit-artifact.json     the manifest: the artifact and the size and sha256 of every file
        .slimkit-verified.json    sizes and mtimes last verified (a cache, never trusted alone)
    .tmp-<name>-<key>-<id>/       scratch of a step being built (only by the holder of its claim)
    .lock-<key>                   the claim on a key: flock-ed by the process building it, holding
                                  its pid, host and start time for whoever waits

A claim is an advisory ``flock`` on the key's lock file: the kernel releases it when its owner
exits in any way (SIGKILL included), so a lock is stale exactly when its process is gone and no
timeout is needed. The pid and host in the file only tell a waiting run whom it waits for.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from slimkit.artifacts import MANIFEST, Artifact, atomic_dir

STEP_SCHEMA = "slimkit.step/2"
VERIFIED = ".slimkit-verified.json"
SEAL = "slimkit-files.json"  # the digests of a cached folder that is not a step (a converted model)
CHUNK = 1 << 20
WAIT_POLL_S = 0.5


class DamagedStep(Exception):
    """A stored step that must not be reused; the message says why, in a few words."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stored_files(folder: Path) -> Iterator[Path]:
    """Every regular file of a step folder but the manifest and the verification cache."""
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.parent == folder and path.name in (MANIFEST, VERIFIED, SEAL):
            continue
        if path.is_file():
            yield path


def file_records(folder: Path) -> dict[str, dict[str, Any]]:
    """Size, sha256 and mtime of every file under ``folder``, keyed by POSIX relative path."""
    records = {}
    for path in _stored_files(folder):
        stat = path.stat()
        records[path.relative_to(folder).as_posix()] = {
            "size": stat.st_size,
            "sha256": sha256_file(path),
            "mtime_ns": stat.st_mtime_ns,
        }
    return records


def write_manifest(folder: Path, artifact: Artifact) -> None:
    """Write the manifest of a step folder: the artifact (its path relative to the folder, so the
    store can move) and the digest of every file. Written last: its presence marks the step done."""
    document = {
        "schema": STEP_SCHEMA,
        "artifact": artifact.model_dump(mode="json"),
        "files": file_records(folder),
    }
    (folder / MANIFEST).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _read_manifest(folder: Path) -> tuple[Artifact, dict[str, dict[str, Any]]]:
    try:
        document = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DamagedStep(f"its manifest cannot be read ({type(exc).__name__})") from None
    if not isinstance(document, dict) or "artifact" not in document:
        raise DamagedStep("its manifest was written without file digests (by an older slimkit) or is not a manifest")
    if document.get("schema") != STEP_SCHEMA or not isinstance(document.get("files"), dict):
        raise DamagedStep(f"its manifest has schema {document.get('schema')!r}, not {STEP_SCHEMA!r}")
    try:
        artifact = Artifact.model_validate(document["artifact"])
    except ValidationError:
        raise DamagedStep("its manifest's artifact does not validate") from None
    if artifact.path.is_absolute() or not _inside(folder / artifact.path, folder):
        raise DamagedStep(f"its manifest's path {str(artifact.path)!r} points outside the step folder")
    return artifact, document["files"]


def _verified_cache(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / VERIFIED).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _check_files(folder: Path, files: dict[str, dict[str, Any]]) -> bool:
    """Raise DamagedStep unless every listed file is there with its size and digest.

    Hashing is skipped for a file whose size and mtime are those it had when it was last hashed
    (at publishing or at a verification), so resuming a run over gigabytes of weights stays fast.
    Returns whether any file was hashed (so the cache is worth rewriting)."""
    cache = _verified_cache(folder)
    hashed = False
    for name, record in files.items():
        path = folder / name
        if not isinstance(record, dict) or not _inside(path, folder):
            raise DamagedStep(f"its manifest lists {name!r} outside the step folder")
        try:
            stat = path.stat()
        except OSError:
            raise DamagedStep(f"{name} is missing") from None
        if stat.st_size != record.get("size"):
            raise DamagedStep(f"{name} has {stat.st_size} bytes, not {record.get('size')}")
        seen = (stat.st_size, stat.st_mtime_ns)
        if seen in ((record.get("size"), record.get("mtime_ns")), tuple(cache.get(name) or ())):
            continue
        hashed = True
        if sha256_file(path) != record.get("sha256"):
            raise DamagedStep(f"{name} does not match its sha256")
    return hashed


def verify_step(folder: Path) -> Artifact | None:
    """The artifact of a finished step in ``folder`` (its path made absolute), or None when the
    folder holds no finished step. Raises DamagedStep when it holds one that must not be reused."""
    if not (folder / MANIFEST).exists():
        return None
    artifact, files = _read_manifest(folder)
    if _check_files(folder, files):
        _remember_verified(folder, files)
    path = folder / artifact.path
    if not path.exists():
        raise DamagedStep(f"its model {artifact.path} is missing")
    return artifact.with_updates(path=path)


def _remember_verified(folder: Path, files: dict[str, dict[str, Any]]) -> None:
    cache = {name: [r["size"], (folder / name).stat().st_mtime_ns] for name, r in files.items()}
    with contextlib.suppress(OSError):  # a read-only store is verified again next time
        _write_atomic(folder / VERIFIED, json.dumps(cache))


def seal(folder: Path) -> None:
    """Record the digest of every file of a cached folder (one that is not a step), before it is
    published, so that :func:`check_seal` can tell a damaged copy from a good one."""
    (folder / SEAL).write_text(json.dumps({"files": file_records(folder)}, indent=2) + "\n", encoding="utf-8")


def check_seal(folder: Path) -> None:
    """Raise DamagedStep unless every file that :func:`seal` recorded is there, unchanged."""
    try:
        files = json.loads((folder / SEAL).read_text(encoding="utf-8"))["files"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise DamagedStep(f"its file digests cannot be read ({type(exc).__name__})") from None
    if not isinstance(files, dict):
        raise DamagedStep("its file digests are not a table")
    if _check_files(folder, files):
        _remember_verified(folder, files)


def ensure_folder(final: Path, build: Callable[[Path], None]) -> str | None:
    """Build a content-addressed cache folder (a converted source model) unless a sealed, intact
    one is there. Returns a one-line warning when a damaged one was built again, else None.

    The folder's name is claimed while it is built, so concurrent runs convert it once."""
    damage = _damage(final)
    if damage is None:
        return None
    with claim(final.parent, final.name):
        if (again := _damage(final)) is None:
            return None  # another run built it while this one waited
        remove_scratch(final)
        with atomic_dir(final) as scratch:
            build(scratch)
            seal(scratch)
    return None if again == "absent" else f"cached folder {final.name} was damaged ({again}); built again"


def _damage(folder: Path) -> str | None:
    """None when ``folder`` is intact, 'absent' when it is not there, else what is wrong with it."""
    if not folder.exists():
        return "absent"
    try:
        check_seal(folder)
    except DamagedStep as why:
        return str(why)
    return None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _owner_record() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def describe_owner(lock: Path) -> str:
    """'pid 123 on host h since <time>' from a lock file, or a vaguer phrase when it is unreadable."""
    try:
        owner = json.loads(lock.read_text(encoding="utf-8"))
        return f"pid {owner['pid']} on {owner['host']} since {owner['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another run"


@contextlib.contextmanager
def claim(steps_dir: Path, key: str, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the claim on a step key for the block: wait while another process holds it.

    The lock file is unlinked by its holder before the lock is released; a waiter that then gets
    the lock on the unlinked file sees that the path now names another file (or none) and starts
    over, so two processes never both believe they hold the key."""
    import fcntl

    steps_dir.mkdir(parents=True, exist_ok=True)
    lock = steps_dir / f".lock-{key}"
    told = False
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if not told and on_wait is not None:
                on_wait(describe_owner(lock))
                told = True
            time.sleep(WAIT_POLL_S)
            continue
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder before us removed this file: try again on the current one
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(_owner_record()).encode())
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
        os.close(fd)  # releases the flock


def remove_scratch(final: Path) -> None:
    """Remove scratch folders of ``final`` left by a killed run. Only the holder of the step's
    claim calls this, so no live run's scratch is touched."""
    if final.parent.exists():
        for stale in final.parent.glob(f".tmp-{final.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
