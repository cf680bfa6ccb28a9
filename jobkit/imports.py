"""Imports without the garbage collector. Importing makes many objects and next to no
garbage, and the collector's passes over them cost a worker's start-up 60-100 ms here
(`benchmarks/startup.py`): jobkit's own imports, a command's module and the user's job
modules (``-A``) are imported with it paused."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def no_collection() -> Iterator[None]:
    """Pause the garbage collector for the block (if it was running)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
