"""Claims on a shared folder's entries: one process builds a step (or a cached model) while the
others that need it wait, then reuse what it built.

A claim is an exclusive ``flock`` on ``<folder>/.lock-<name>``; the file holds the owner's pid,
host and start time, for whoever waits. The kernel releases a ``flock`` when its process ends in
any way, SIGKILL included, so a claim is stale exactly when its owner is gone: there is no
timeout to tune and a live owner is never overruled. Needs a file system whose ``flock`` works
between the processes sharing the folder (any local one; NFSv4 between machines).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from slimkit.errors import SlimkitError

WAIT_POLL_S = 0.5


@contextlib.contextmanager
def claim(folder: Path, name: str, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the claim on ``name`` in ``folder`` for the block; wait while another process holds it.

    The holder unlinks the lock file before it releases the lock. A waiter that then gets the lock
    on the unlinked file sees that the path names another file (or none) and starts over, so two
    processes never both hold one name."""
    lock = folder / f".lock-{name}"
    _make_folder(folder)
    told = False
    while (fd := _try_lock(lock)) is None:
        if not told and on_wait is not None:
            on_wait(describe_owner(lock))
            told = True
        time.sleep(WAIT_POLL_S)
    try:
        with contextlib.suppress(OSError):  # a read-only descriptor: the record is only a courtesy
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(_owner_record()).encode())
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
        os.close(fd)  # releases the flock


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SlimkitError(
            f"store {folder}: cannot be created ({exc.strerror or exc})", fix="set store_dir to a folder you can write"
        ) from None


def _try_lock(lock: Path) -> int | None:
    """A descriptor holding the lock on ``lock``'s current file, or None when another holds it."""
    # fcntl is POSIX-only: imported here so that importing slimkit never needs it.
    import fcntl

    fd = _open(lock)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError as exc:  # ENOTSUP, ENOLCK: a file system without working locks
        os.close(fd)
        raise SlimkitError(
            f"store {lock.parent}: cannot lock {lock.name} ({exc.strerror or exc})",
            fix="put store_dir on a file system with working locks (local, or NFSv4)",
        ) from None
    except BaseException:  # Ctrl-C between open and lock: never leak the descriptor
        os.close(fd)
        raise
    try:
        same = os.fstat(fd).st_ino == os.stat(lock).st_ino
    except FileNotFoundError:
        same = False
    if same:
        return fd
    os.close(fd)  # the holder before us removed this file: try again on the current one
    return _try_lock(lock)


def _open(lock: Path) -> int:
    """The lock file, created readable and writable by everyone the umask allows (a store shared
    by a group); read-only when another user's file is there (flock works on either)."""
    try:
        return os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:
        try:
            return os.open(lock, os.O_RDONLY)
        except OSError as exc:
            raise SlimkitError(
                f"store {lock.parent}: cannot open {lock.name} ({exc.strerror or exc})",
                fix="give this user write access to the store",
            ) from None


def _owner_record() -> dict[str, object]:
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
