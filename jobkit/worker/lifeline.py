"""A child dies with its supervisor, at once and without finishing its jobs.

Why at once: a child whose supervisor is gone has nobody renewing its leases. They lapse,
another worker re-runs the jobs, and a child that went on to finish (or record) them
would run them twice at the same time. So an orphan stops dead: its jobs are the
reaper's now.

Two signals, either enough:

* ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` (Linux): the kernel kills the child the moment
  the thread that forked it dies. Set right after fork; the supervisor may have died
  before it was set (the classic race), so the parent's pid is checked again after.
* the lifeline pipe: the supervisor holds its write end, every child only the read end,
  and a thread in each child blocks reading it. Nothing is ever written; when the
  supervisor dies the kernel closes its end and the read returns (EOF): the thread ends
  the process. This works where prctl does not (macOS, BSD) and covers a supervisor
  whose forking thread is not the one that dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from typing import NoReturn

ORPHANED = 75  # exit code of a child that outlived its supervisor
_PR_SET_PDEATHSIG = 1

# Looked up once in the supervisor, before any fork: a child does no dlopen.
_libc: ctypes.CDLL | None = None
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError, AttributeError):
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong]


class Lifeline:
    """The pipe a supervisor holds and its children watch (see the module docstring)."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()

    def hold(self, parent: int) -> None:
        """Child side, right after fork: die when ``parent`` dies, by either signal."""
        os.close(self.write_fd)  # else our own copy keeps the pipe open forever
        if _libc is not None:
            _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # it died before prctl took effect
            orphaned()
        watch(self.read_fd)


def watch(read_fd: int) -> None:
    """Start a thread that ends this process when ``read_fd`` reaches EOF."""
    threading.Thread(target=_watch, args=(read_fd,), name="lifeline", daemon=True).start()


def _watch(read_fd: int) -> None:
    with contextlib.suppress(OSError):
        while os.read(read_fd, 1):
            pass  # nothing is ever written; tolerate it anyway
    orphaned()


def orphaned() -> NoReturn:
    """End this child now: its supervisor is gone. No job is finished or recorded, and
    nothing is logged: a logging lock held by another thread (or a full stderr pipe
    nobody reads any more) must not keep an orphan alive."""
    os._exit(ORPHANED)
