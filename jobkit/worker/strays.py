"""Processes a job leaves behind: the children of a job's own ``fork()`` or
``subprocess``, which outlive the attempt unless someone ends them.

The supervisor makes itself a *subreaper* (Linux ``PR_SET_CHILD_SUBREAPER``): a process
orphaned below it is re-parented to it, not to init, so it stays findable as one of the
supervisor's descendants. A child killed for overrunning its timeout is killed with
every process below it; a child that dies leaves its strays to the supervisor, which
ends them; a worker that stops ends every process still below it. (A job that detaches
from the tree altogether, or a supervisor killed with SIGKILL, is beyond reach: run
workers in a cgroup, a container or a systemd unit for that.)
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys

log = logging.getLogger("jobkit.worker")

_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Adopt the processes orphaned below this one (Linux; elsewhere nothing happens)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (none if it is gone)."""
    import psutil  # imported where used: it adds to every process's start-up time

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process below it (those first, so none is re-parented
    out of reach meanwhile)."""
    for stray in descendants(pid):
        _kill(stray)
    _kill(pid)


def end_strays(known: set[int]) -> int:
    """SIGKILL every process below this one but ``known`` (the live children) and the
    processes below those; returns how many were ended. Their exit is collected by the
    supervisor's wait loop."""
    below_known = {d for pid in known for d in descendants(pid)}
    strays = [p for p in descendants(os.getpid()) if p not in known and p not in below_known]
    for stray in strays:
        _kill(stray)
    if strays:
        log.warning("ended %d process(es) left behind by jobs: %s", len(strays), strays)
    return len(strays)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
