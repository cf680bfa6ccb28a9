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


def end_strays(known: set[int]) -> list[int]:
    """SIGKILL every process below this one but ``known`` (the live children) and the
    processes below those; returns their pids. Their exit is collected by the
    supervisor's wait loop (those re-parented to it are its to reap). One look at the
    process table, which psutil reads whole for each look."""
    import psutil  # imported where used: it adds to every process's start-up time

    parents: dict[int, int] = {}
    try:
        for proc in psutil.Process(os.getpid()).children(recursive=True):
            with contextlib.suppress(psutil.Error):  # gone meanwhile: no stray
                parents[proc.pid] = proc.ppid()
    except psutil.Error:
        return []
    strays = [p for p in parents if p not in known and not _below(p, known, parents)]
    for stray in strays:
        _kill(stray)
    if strays:
        log.warning("ended %d process(es) left behind by jobs: %s", len(strays), strays)
    return strays


def _below(pid: int, known: set[int], parents: dict[int, int]) -> bool:
    """Whether ``pid`` is below one of ``known``, by the ``parents`` of the processes
    below this one."""
    while pid in parents:
        pid = parents[pid]
        if pid in known:
            return True
    return False


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
