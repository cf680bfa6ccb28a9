"""Messages a child sends its supervisor over a pipe: one line each, tab-separated,
a batch of them in one write. (Which job runs now is in the shared Slot instead.)

``C id token attempt timeout name``  claimed (leased) a job; the supervisor renews it
``D id outcome``                       finished it (outcome: succeeded|retrying|dead|lost)
``R id``                               gave it back to its queue unstarted

A busy child sends two lines per job, so the supervisor only files a claim's fields away
as text (:class:`Reader`) and parses them when it needs them (:func:`held`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

CLAIMED, DONE, RELEASED = "C", "D", "R"


@dataclass(frozen=True, slots=True)
class Held:
    """A job a child holds a lease on."""

    token: str
    attempt: int
    timeout: float
    name: str


def claimed(job_id: str, token: str, attempt: int, timeout: float, name: str) -> str:
    return f"{CLAIMED}\t{job_id}\t{token}\t{attempt}\t{timeout}\t{name}\n"


def done(job_id: str, outcome: str) -> str:
    return f"{DONE}\t{job_id}\t{outcome}\n"


def released(job_id: str) -> str:
    return f"{RELEASED}\t{job_id}\t\n"


def send(fd: int, messages: Iterable[str]) -> None:
    """Write messages to the supervisor in one write (atomic under PIPE_BUF)."""
    data = "".join(messages).encode()
    while data:
        written = os.write(fd, data)
        data = data[written:]


def held(fields: str) -> Held:
    """The claim filed by :meth:`Reader.feed` for one job."""
    token, attempt, timeout, name = fields.split("\t", 3)
    return Held(token, int(attempt), float(timeout), name)


class Reader:
    """Applies the lines read from one child's pipe, in order, to what it holds."""

    def __init__(self) -> None:
        self._buffer = ""

    def feed(self, data: bytes, holding: dict[str, str], counts: dict[str, int]) -> None:
        """Claims go into ``holding`` (id -> unparsed fields); finished and released jobs
        leave it, and each outcome is counted in ``counts``."""
        *lines, self._buffer = (self._buffer + data.decode()).split("\n")
        for line in lines:
            kind, job_id, rest = line.split("\t", 2)
            if kind == CLAIMED:
                holding[job_id] = rest
                continue
            holding.pop(job_id, None)
            if kind == DONE:
                counts[rest] = counts.get(rest, 0) + 1
