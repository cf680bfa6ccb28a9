"""Process measurements shared by the benchmark scripts (psutil and /proc only, so the
peer venv that runs arq and saq can import it too)."""

from __future__ import annotations

import contextlib
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
