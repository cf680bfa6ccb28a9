"""The search line an operator types, parsed: ``class:SyncAccount status:dead
error:Timeout params.account=42 id:…`` and free words (see :mod:`jobkit.ops.search`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from jobkit.errors import InvalidQuery
from jobkit.models import Status
from jobkit.ops.listing import LISTABLE

MAX_QUERY = 500  # characters a search may be
QUALIFIERS = ("class", "status", "queue", "error", "id")
_QUALIFIER = re.compile(r"([A-Za-z][A-Za-z_]*):(.*)", re.DOTALL)
_PARAMS = re.compile(r"params\.([^=:]*)(?:[=:](.*))?", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class SearchQuery:
    """A parsed search (:func:`parse_search`); every part given must match."""

    words: tuple[str, ...] = ()  # each in the params or the error, ignoring case
    job_class: str | None = None  # exact, or a prefix with a trailing *
    statuses: frozenset[Status] = frozenset()
    queue: str | None = None
    error: str | None = None  # in the error's type or message, ignoring case
    params: tuple[tuple[str, str], ...] = ()  # (dotted path, value as text)
    job_id: str | None = None  # a whole id, or the start of one


def parse_search(text: str) -> SearchQuery:
    """The query in ``text``: words and ``name:value`` qualifiers, quoted as a shell
    quotes (``error:"connection refused"``; a token that starts with a quote is a word,
    ``"a:b"``). Raises :class:`InvalidQuery` for an unknown qualifier, an empty value,
    a qualifier given twice, a bad status or a text over :data:`MAX_QUERY` characters."""
    if len(text) > MAX_QUERY:
        raise InvalidQuery(f"a search is at most {MAX_QUERY} characters, not {len(text)}")
    if "\x00" in text:
        raise InvalidQuery("a search cannot hold a NUL character")
    words: list[str] = []
    params: list[tuple[str, str]] = []
    given: dict[str, str] = {}
    for token, quoted in _tokens(text):
        by_path = None if quoted else _PARAMS.fullmatch(token)
        named = None if quoted or by_path else _QUALIFIER.fullmatch(token)
        if by_path:
            params.append(_param(by_path.group(1), by_path.group(2)))
        elif named:
            key, value = named.group(1).lower(), named.group(2)
            if key not in QUALIFIERS:
                known = ", ".join(f"{q}:" for q in QUALIFIERS)
                raise InvalidQuery(f"unknown qualifier {named.group(1)}: (known: {known} and "
                                   f"params.<path>=; quote a word that holds a colon)")  # fmt: skip
            if not value.strip():
                raise InvalidQuery(f"{key}: needs a value")
            if key in given:
                raise InvalidQuery(f"{key}: is given twice")
            given[key] = value
        elif token:
            words.append(token)
    job_class = given.get("class")
    if job_class == "*":
        raise InvalidQuery("class:* names no class: give the start of one, as in class:app.*")
    return SearchQuery(
        words=tuple(words),
        job_class=job_class,
        statuses=_statuses(given["status"]) if "status" in given else frozenset(),
        queue=given.get("queue"),
        error=given.get("error"),
        params=tuple(params),
        job_id=given.get("id"),
    )


def _tokens(text: str) -> list[tuple[str, bool]]:
    """``text`` split at whitespace outside quotes, quotes removed, a backslash taking
    the next character as it is; each token with whether it started with a quote."""
    tokens: list[tuple[str, bool]] = []
    chars: list[str] = []
    in_token = starts_quoted = False
    quote: str | None = None
    rest = iter(text)
    for ch in rest:
        if quote is not None:
            if ch == quote:
                quote = None
            else:
                chars.append(next(rest, ch) if ch == "\\" and quote == '"' else ch)
        elif ch.isspace():
            if in_token:
                tokens.append(("".join(chars), starts_quoted))
            chars, in_token = [], False
        else:
            if not in_token:
                in_token, starts_quoted = True, ch in "\"'"
            if ch in "\"'":
                quote = ch
            else:
                chars.append(next(rest, ch) if ch == "\\" else ch)
    if quote is not None:
        raise InvalidQuery(f"a {quote} quote is not closed")
    if in_token:
        tokens.append(("".join(chars), starts_quoted))
    return tokens


def _param(path: str, value: str | None) -> tuple[str, str]:
    shown = f"params.{path}"
    parts = path.split(".")
    if not path or not all(parts):
        raise InvalidQuery(f"{shown}: a params path is keys joined by dots, as in params.a.b=1")
    if any('"' in p for p in parts):
        raise InvalidQuery(f"{shown}: a params key cannot hold a double quote")
    if not value:
        raise InvalidQuery(f"{shown} needs a value: {shown}=<value>")
    return path, value


def _statuses(raw: str) -> frozenset[Status]:
    known = {s.value: s for s in LISTABLE}
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    wrong = ", ".join(repr(n) for n in names if n not in known)
    if wrong or not names:
        what = f"{wrong} is not a status" if wrong else "names no status"
        raise InvalidQuery(f"status:{raw}: {what} (use {', '.join(known)})")
    return frozenset(known[n] for n in names)
