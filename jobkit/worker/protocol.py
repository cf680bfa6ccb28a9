"""Messages a child sends its supervisor over a pipe: one line each, tab-separated,
a batch of them in one write. (Which job runs now is in the shared Slot instead.)

``C id token attempt timeout name``  claimed (leased) a job; the supervisor renews it
``D id outcome``                       finished it (outcome: succeeded|retrying|dead|lost)
``R id``                               gave it back to its queue unstarted
"""

from __future__ import annotations

import os
from dataclasses import dataclass

CLAIMED, DONE, RELEASED = "C", "D", "R"


@dataclass(frozen=True, slots=True)
class Message:
    kind: str
    fields: tuple[str, ...]


def encode(kind: str, *fields: object) -> bytes:
    return ("\t".join((kind, *map(str, fields))) + "\n").encode()


def send(fd: int, *messages: bytes) -> None:
    """Write messages to the supervisor in one write (atomic under PIPE_BUF)."""
    data = b"".join(messages)
    while data:
        written = os.write(fd, data)
        data = data[written:]


class Reader:
    """Splits the bytes read from one child's pipe into messages."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        out = []
        for line in lines:
            kind, *fields = line.decode().split("\t")
            out.append(Message(kind, tuple(fields)))
        return out
