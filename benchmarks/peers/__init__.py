"""One module per job library that ``benchmarks/compare.py`` measures.

Each module ``<name>_peer`` defines its library's jobs (its workers import that module, so
importing it is cheap and reads the Redis URL from ``BENCH_REDIS_URL``) and a ``Peer``
subclass named ``Driver`` that the benchmark drives from its own process.
"""

from __future__ import annotations

import importlib
import sys
from importlib import metadata

# the order of the table's columns; ``arq`` and ``saq`` only through ``--peer-venv``
PEERS = ("jobkit", "rq", "dramatiq", "celery", "huey", "taskiq")
VENV_PEERS = ("arq", "saq")


class Peer:
    """How the benchmark enqueues jobs of one library and starts its workers."""

    name = ""
    dists: tuple[str, ...] = ()  # distributions whose versions the table shows
    config = ""  # the worker configuration, as the table shows it
    has_bulk = False

    def __init__(self, url: str) -> None:
        self.url = url

    def enqueue(self, count: int, total: int) -> None:
        """``count`` incr jobs, one enqueue call each (``total`` marks the last)."""
        raise NotImplementedError

    def enqueue_bulk(self, count: int, total: int, batch: int) -> None:
        """``count`` incr jobs through the library's bulk call, ``batch`` per call."""
        raise NotImplementedError

    def stamp(self) -> None:
        """One job that pushes the time it started."""
        raise NotImplementedError

    def worker_commands(self, processes: int) -> list[list[str]]:
        """The command line(s) of a worker with ``processes`` worker processes."""
        raise NotImplementedError

    def after_flush(self) -> None:
        """Re-create what the library keeps in Redis and FLUSHALL removed."""

    def close(self) -> None:
        """Release the driver's connections."""

    def versions(self) -> str:
        found = []
        for dist in self.dists:
            try:
                found.append(f"{dist} {metadata.version(dist)}")
            except metadata.PackageNotFoundError:
                found.append(f"{dist} ?")
        return ", ".join(found)


def python_module(*args: str) -> list[str]:
    """``python -m ...`` with the benchmark's own interpreter."""
    return [sys.executable, "-m", *args]


def load(name: str) -> type[Peer]:
    """The ``Driver`` of ``benchmarks.peers.<name>_peer``; raises if it cannot be imported."""
    module = importlib.import_module(f"benchmarks.peers.{name}_peer")
    driver: type[Peer] = module.Driver
    return driver
