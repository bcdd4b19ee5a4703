"""Digests of a folder's files: recorded when the folder is published, checked before it is reused.

A record is each file's size and sha256 (as pip's RECORD and the Hugging Face hub keep them).
Checking hashes every file, except one whose inode, size, mtime and ctime are those it had when
it was last hashed (kept in ``.slimkit-verified.json`` beside the files): resuming over gigabytes
of weights then costs a few ``stat`` calls. ctime cannot be set by copy tools (``cp -a``,
``rsync -a``, ``tar``) nor by ``touch``, so a copied or rewritten file is hashed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from slimkit.artifacts import write_text_atomic
from slimkit.errors import PluginError

VERIFIED_CACHE = ".slimkit-verified.json"
CHUNK = 1 << 20


class Damaged(Exception):
    """A folder whose files do not match their record; the message says why, in a few words."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _own_files(folder: Path, skip: tuple[str, ...]) -> Iterator[tuple[str, os.stat_result]]:
    """(POSIX relative path, lstat) of every entry under ``folder`` that is not a directory, but
    the top-level bookkeeping files named in ``skip`` and the verification cache's temporaries."""
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if name in skip or name == VERIFIED_CACHE or name.startswith(f".{VERIFIED_CACHE}."):
            continue
        info = path.lstat()
        if not stat.S_ISDIR(info.st_mode):
            yield name, info


def record_files(folder: Path, skip: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Size and sha256 of every file under ``folder``, keyed by POSIX relative path, and the
    verification cache written beside them (so a fresh folder is never hashed twice).

    Raises PluginError for a symbolic link or other special file: a published folder holds its
    own bytes, never a pointer that could later lead elsewhere."""
    records, cache = {}, {}
    for name, info in _own_files(folder, skip):
        if not stat.S_ISREG(info.st_mode):
            raise PluginError(f"the output holds {name}, which is not a regular file (a link?); write the file itself")
        records[name] = {"size": info.st_size, "sha256": sha256_file(folder / name)}
        cache[name] = _fingerprint(info)
    write_text_atomic(folder / VERIFIED_CACHE, json.dumps(cache))
    return records


def check_files(folder: Path, files: Any, skip: tuple[str, ...]) -> None:
    """Raise Damaged unless ``files`` (a record) lists exactly the files under ``folder``, each
    with its size and sha256. Any error reading the folder counts as damage, never a crash."""
    try:
        _check(folder, _valid_record(files), skip)
    except Damaged:
        raise
    except (OSError, ValueError, TypeError, RecursionError) as exc:
        raise Damaged(f"it cannot be checked ({type(exc).__name__})") from None


def _valid_record(files: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(files, dict):
        raise Damaged("its file list is not a table")
    for name, entry in files.items():
        valid = (
            isinstance(entry, dict)
            and isinstance(entry.get("size"), int)
            and isinstance(entry.get("sha256"), str)
            and ".." not in Path(name).parts
            and not Path(name).is_absolute()
        )
        if not valid:
            raise Damaged(f"its file list has a bad entry for {name!r}")
    return files


def _check(folder: Path, files: dict[str, dict[str, Any]], skip: tuple[str, ...]) -> None:
    present = dict(_own_files(folder, skip))
    if extra := sorted(set(present) - set(files)):
        raise Damaged(f"{extra[0]} is not in its file list")
    cache, seen = _read_cache(folder), {}
    for name, entry in files.items():
        info = present.get(name)
        if info is None:
            raise Damaged(f"{name} is missing")
        if not stat.S_ISREG(info.st_mode):
            raise Damaged(f"{name} is not a regular file")
        if info.st_size != entry["size"]:
            raise Damaged(f"{name} has {info.st_size} bytes, not {entry['size']}")
        seen[name] = _fingerprint(info)
        if cache.get(name) == seen[name]:
            continue
        if sha256_file(folder / name) != entry["sha256"]:
            raise Damaged(f"{name} does not match its sha256")
        if _fingerprint((folder / name).lstat()) != seen[name]:
            raise Damaged(f"{name} changed while it was checked")
    if seen != cache:
        with contextlib.suppress(OSError):  # a read-only store is checked again next time
            write_text_atomic(folder / VERIFIED_CACHE, json.dumps(seen))


def _fingerprint(info: os.stat_result) -> list[int]:
    return [info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


def _read_cache(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / VERIFIED_CACHE).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}
