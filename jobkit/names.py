"""The alphabets of the names jobkit stores and builds keys from, checked where a name is
given: a job class's ``name``, ``queue`` and ``tags`` when the class is defined, a
caller's ``job_id`` and ``queue`` at dispatch, ``-q`` / ``--tags`` when a worker starts.

Why each alphabet is as narrow as it is:

- Every alphabet is ASCII, so a length in characters is a length in bytes: the worker's
  shared-memory slot and Redis keys are sized in bytes.
- No whitespace or control characters anywhere: a newline in a name would break every
  log line, table and protocol line it is written to.
- No ``{`` or ``}``: Redis Cluster hashes only what is inside braces, so they are kept for
  the hash tags jobkit puts in its keys.
- No ``|`` or ``,`` in queues and tags: a lane is ``queue|tag1,tag2`` (see
  :func:`jobkit.backend.keys.lane_name`); no ``:`` in them either (``-q high:5`` reads as a
  weight). No ``/`` in job ids: they are a path segment of the HTTP API.

Each check returns the value it was given, so it can be used inline, and raises
:class:`~jobkit.errors.InvalidName` (a ``ValueError``) saying what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from jobkit.errors import InvalidName

MAX_JOB_ID = 128
MAX_JOB_NAME = 128
MAX_QUEUE = 64
MAX_TAG = 64

_JOB_ID = re.compile(rf"[A-Za-z0-9_.:@+=-]{{1,{MAX_JOB_ID}}}")
# dotted Python names (letters, digits, _ and .) plus - and :, and < > for the
# `<locals>` in the default name of a class defined inside a function
_JOB_NAME = re.compile(rf"[A-Za-z_][A-Za-z0-9_.:<>-]{{0,{MAX_JOB_NAME - 1}}}")
_QUEUE = re.compile(rf"[A-Za-z0-9_.-]{{1,{MAX_QUEUE}}}")
_TAG = re.compile(rf"[A-Za-z0-9_.-]{{1,{MAX_TAG}}}")

JOB_ID_RULE = f"1-{MAX_JOB_ID} ASCII letters, digits or any of _.:@+=-"
JOB_NAME_RULE = (
    f"1-{MAX_JOB_NAME} ASCII letters, digits or any of _.:<>- (a dotted Python name), "
    "starting with a letter or _"
)
QUEUE_RULE = f"1-{MAX_QUEUE} ASCII letters, digits or any of _.-"
TAG_RULE = f"1-{MAX_TAG} ASCII letters, digits or any of _.-"


def _refuse(what: str, value: object, rule: str) -> InvalidName:
    shown = repr(value)
    if len(shown) > 80:
        shown = f"{shown[:60]}...{shown[-10:]} ({len(str(value))} characters)"
    return InvalidName(f"{what} {shown} is not valid: use {rule}")


def job_id(value: object) -> str:
    """A caller-chosen job id (ids jobkit makes itself are 32 hex digits)."""
    if isinstance(value, str) and _JOB_ID.fullmatch(value):
        return value
    raise _refuse("job_id", value, JOB_ID_RULE)


def job_name(value: object, *, where: str = "job name") -> str:
    """A job class's registry name."""
    if isinstance(value, str) and _JOB_NAME.fullmatch(value):
        return value
    raise _refuse(where, value, JOB_NAME_RULE)


def queue(value: object, *, where: str = "queue") -> str:
    """A queue name."""
    if isinstance(value, str) and _QUEUE.fullmatch(value):
        return value
    raise _refuse(where, value, QUEUE_RULE)


def tags(values: Iterable[object], *, where: str = "tag") -> frozenset[str]:
    """A set of tag names."""
    if isinstance(values, str):  # a str is an iterable of one-letter tags: surely a slip
        raise InvalidName(f"{where}s must be a set of names, not the string {values!r}")
    checked = set()
    for value in values:
        if not (isinstance(value, str) and _TAG.fullmatch(value)):
            raise _refuse(where, value, TAG_RULE)
        checked.add(value)
    return frozenset(checked)
