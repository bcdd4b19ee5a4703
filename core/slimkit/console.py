"""Where output goes while a command works: libraries' to the run's ``log.txt``, slimkit's to the terminal.

Libraries print from Python (warnings, logging, tqdm bars, the Trainer's loss dicts) and from C
and C++ (torch's and torchao's loaders). Pointing file descriptors 1 and 2 at the log catches all
of it; slimkit's own display writes to a copy of the terminal taken before. Only the CLI does
this, and only when its streams are the process's real ones: code that calls ``run_pipeline``
from Python keeps its output where it was.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

LOG_FILE = "log.txt"


def _real_streams() -> bool:
    try:
        return sys.stdout.fileno() == 1 and sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # replaced by a test runner or an embedding host
        return False


@contextmanager
def libraries_to_log(log: Path, *, verbose: bool = False) -> Iterator[TextIO | None]:
    """Send fds 1 and 2 to ``log`` (appended) and yield a stream to the terminal for slimkit's lines;
    with ``verbose``, or when the streams are not the real ones, change nothing and yield None."""
    if verbose or not _real_streams():
        yield None
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    terminal = os.fdopen(os.dup(saved[2]), "w", buffering=1, encoding="utf-8", errors="replace")
    target = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        yield terminal
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        os.close(target)
        terminal.close()
