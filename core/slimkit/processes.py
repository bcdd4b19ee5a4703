"""Child processes that never outlive the run that started them.

A child started by slimkit (the memory probe, a worker) calls :func:`die_with_parent` first thing
with the pid of the process that started it. If that process is killed, even by SIGKILL, which
leaves it no chance to clean up, the child ends too instead of running on with a model in memory.
"""

from __future__ import annotations

import os
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
POLL_S = 1.0


def die_with_parent(parent_pid: int) -> None:
    """End this process when ``parent_pid`` (its parent) ends.

    On Linux the kernel sends SIGKILL when the parent exits (``prctl(PR_SET_PDEATHSIG)``); elsewhere
    a daemon thread polls the parent pid. Either way, a parent that died before this call is caught
    by the pid check that follows it."""
    if sys.platform.startswith("linux") and _set_death_signal():
        if os.getppid() != parent_pid:
            os._exit(1)
        return
    threading.Thread(target=_watch, args=(parent_pid,), name="slimkit-parent-watch", daemon=True).start()


def _set_death_signal() -> bool:
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(POLL_S)
    os._exit(1)  # the parent is gone: this process was orphaned


def child_arguments() -> list[str]:
    """The arguments that tell a child which process to die with: ``--parent <this pid>``."""
    return ["--parent", str(os.getpid())]


def running_reason() -> str:
    """What a record written at the start of a run or study says until it ends: which process to
    look for, since one killed outright (SIGKILL) cannot write its end."""
    import socket

    return f"running in pid {os.getpid()} on {socket.gethostname()}; if that process is gone, it was killed"
