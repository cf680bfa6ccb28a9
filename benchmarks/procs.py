"""Helpers shared by the benchmark scripts: process measurements, timing, percentiles.

Standard library and psutil only, so the peer venv that runs arq and saq imports it too.
"""

from __future__ import annotations

import compileall
import contextlib
import importlib.util
import os
import signal
import sys
import time
import types
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil


def peak_rss_bytes(pid: int) -> int:
    """High-water resident set of ``pid`` (Linux VmHWM), else its current RSS."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return 0


def log(message: str) -> None:
    """Progress, on stderr so stdout holds only the figures."""
    print(message, file=sys.stderr, flush=True)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * pct / 100
    low = int(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def raise_interrupt(signum: int, frame: types.FrameType | None) -> None:
    """A SIGTERM handler that unwinds like Ctrl-C, so every finally: cleans up."""
    raise KeyboardInterrupt


def byte_compile(*packages: str) -> None:
    """Write bytecode for these packages, as pip does when it installs one. An editable
    install has none, and with PYTHONDONTWRITEBYTECODE set (as on the machine the
    published figures come from) every worker process would compile jobkit's sources
    afresh at start-up, a cost no pip-installed peer pays."""
    for name in packages:
        spec = importlib.util.find_spec(name)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            compileall.compile_dir(folder, quiet=1)


def prepare() -> None:
    """What every benchmark does first: SIGTERM unwinds like Ctrl-C (so the finally
    blocks kill what was started), jobkit is byte-compiled as an install would be, and
    no JOBKIT_ variable of the caller's reaches the benchmark's own servers and workers
    (default prefix and settings)."""
    signal.signal(signal.SIGTERM, raise_interrupt)
    byte_compile("jobkit", "benchmarks")
    for key in [k for k in os.environ if k.startswith("JOBKIT_")]:
        del os.environ[key]
