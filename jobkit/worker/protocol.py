"""Messages a child sends its supervisor over a pipe: one line each, tab-separated,
a batch of them in one write. (Which job runs now is in the shared Slot instead.)

``C handle id token attempt timeout name``  claimed (leased) a job; the supervisor renews it
``D handle outcome``                        finished it (outcome: succeeded|retrying|dead|lost)
``R handle``                                gave it back to its queue unstarted

A *handle* is a number the child gives each job it claims (counting up from 1): the
slots hold handles, not ids, so what a slot holds never depends on an id's bytes, and a
job claimed twice by one child (a lease that lapsed meanwhile) is two handles.

Ids and names are whatever a writer put in Redis: in them ``\\``, tab and newline are
escaped (``\\\\``, ``\\t``, ``\\n``), so any text makes one well-formed line. Lines are
encoded with ``surrogatepass``, so even a string no codec accepts makes the round trip.

A busy child sends two lines per job, so the supervisor only files a claim's fields away
as text (:class:`Reader`) and parses them when it needs them (:func:`held`). A line it
cannot read is logged and skipped: it never stops the supervisor.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from jobkit.status import CHILD_OUTCOMES

log = logging.getLogger("jobkit.worker")

CLAIMED, DONE, RELEASED = "C", "D", "R"
RETIRED = 75  # exit code of a child that ran its --max-jobs-per-child jobs: replaced at once
OUTCOMES = tuple(o.value for o in CHILD_OUTCOMES)  # what a DONE line may say
_ENCODING, _ERRORS = "utf-8", "surrogatepass"
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)
_UNESCAPE = {"t": "\t", "n": "\n", "\\": "\\"}


@dataclass(frozen=True, slots=True)
class Held:
    """A job a child holds a lease on."""

    id: str
    token: str
    attempt: int
    timeout: float
    name: str


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    return _ESCAPED.sub(lambda m: _UNESCAPE.get(m[1], m[1]), text)


def claimed(handle: int, job_id: str, token: str, attempt: int, timeout: float, name: str) -> str:
    """A claim's line. Runs for every job: the escaping is skipped by three scans of a
    short string, inline (cheaper than a regex, a translate or another call). The token
    is the claim script's number, never text."""
    if "\\" in job_id or "\t" in job_id or "\n" in job_id:
        job_id = _escape(job_id)
    if "\\" in name or "\t" in name or "\n" in name:
        name = _escape(name)
    return f"{CLAIMED}\t{handle}\t{job_id}\t{token}\t{attempt}\t{timeout}\t{name}\n"


def done(handle: int, outcome: str) -> str:
    """A finished job's line: one of :data:`OUTCOMES`."""
    return f"{DONE}\t{handle}\t{outcome}\n"


def released(handle: int) -> str:
    """The line of a job handed back to its queue unstarted."""
    return f"{RELEASED}\t{handle}\t\n"


def send(fd: int, messages: Iterable[str]) -> None:
    """Write messages to the supervisor, all of them (one write unless it is large).

    Several threads send: the caller holds a lock, as a write over PIPE_BUF (4 KiB) may
    be split, and another thread's lines must not land in the middle of it."""
    data = "".join(messages).encode(_ENCODING, _ERRORS)
    while data:
        written = os.write(fd, data)
        data = data[written:]


def retired(status: int) -> bool:
    """Whether a child's wait status says it ran its --max-jobs-per-child jobs."""
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == RETIRED


def held(fields: str) -> Held:
    """The claim filed by :meth:`Reader.feed` for one job; ValueError if malformed."""
    job_id, token, attempt, timeout, name = fields.split("\t")
    return Held(_unescape(job_id), token, int(attempt), float(timeout), _unescape(name))


def malformed(what: str, line: bytes | str) -> None:
    """Log a line that could not be read (truncated: it may be long)."""
    log.error("ignoring a malformed message from a worker child (%s): %.200r", what, line)


class Reader:
    """Applies the lines read from one child's pipe, in order, to what it holds."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes, holding: dict[str, str], counts: dict[str, int]) -> None:
        """Claims go into ``holding`` (handle, as text -> unparsed fields); finished and
        released jobs leave it, and each outcome is counted in ``counts`` (which holds
        every one of :data:`OUTCOMES`). Never raises.

        Runs for two lines per job, so handles stay text (no int() per line) and the
        complete lines are decoded at once: cutting at the last newline never splits a
        character, as no byte of a multi-byte UTF-8 character is a newline."""
        data = self._buffer + data
        cut = data.rfind(b"\n") + 1
        self._buffer = data[cut:]
        if not cut:
            return
        for line in _lines(data[: cut - 1]):
            try:
                kind, handle, rest = line.split("\t", 2)
            except ValueError:
                malformed("fields", line)
                continue
            # a claim's fields are checked when first parsed (see held): not per line
            if kind == CLAIMED:
                holding[handle] = rest
            elif kind == DONE:
                holding.pop(handle, None)
                if rest in counts:  # the caller's counts name every outcome
                    counts[rest] += 1
                else:
                    malformed("outcome", line)
            elif kind == RELEASED:
                holding.pop(handle, None)
            else:
                malformed("kind", line)


def _lines(data: bytes) -> list[str]:
    """``data`` (complete lines, the last newline cut off) as text lines; a line that is
    not even UTF-8 with surrogates is logged and left out."""
    try:
        return data.decode(_ENCODING, _ERRORS).split("\n")
    except UnicodeDecodeError:
        lines = []
        for raw in data.split(b"\n"):
            try:
                lines.append(raw.decode(_ENCODING, _ERRORS))
            except UnicodeDecodeError:
                malformed("not UTF-8", raw)
        return lines
