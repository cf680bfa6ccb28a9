"""Searching the history archive (``jobkit.ops.search``): one SQL query with the
operator's filters, newest change first, ``LIMIT`` the page.

**Everything the operator typed is data.** Each value goes in as a bound parameter;
the text of a LIKE pattern has its wildcards (``%``, ``_``) and the escape character
escaped first, so ``100%`` finds ``100%`` and not ``1000``. No SQL is built from a
user's string: the statement's shape depends only on which filters are given.

**Which index does the work.** Every query orders by ``changed_at`` and stops at the
limit, so the database either walks ``ix_jobkit_jobs_changed`` backwards and filters
until it has enough rows (quick when matches are common), or starts from an equality
filter's index, ``(status | queue | job_class, changed_at)``, already in the order
wanted. A class prefix (``class:app.*``) and an id prefix are a range of the class index
or of the primary key on SQLite (byte order is code point order there); on PostgreSQL
they are ``LIKE 'prefix%'``, which the indexes serve only under the C collation.
Free text (``ILIKE '%word%'``) and a params path can use no B-tree index: a rare word
means a scan of the rows the other filters leave (see ``benchmarks/search_history.py``
for what that costs on a million rows).

**Case.** Free text and ``error:`` ignore case: ``ILIKE`` on PostgreSQL, ``LIKE`` on
SQLite (which folds ASCII letters only: other letters match as typed). Class, queue, id
and params values are compared exactly.

**Params paths** (``params.a.b=42``): PostgreSQL reads the path with
``jsonb_extract_path_text(params::jsonb, 'a', 'b')`` (``params::jsonb #>> '{a,b}'``),
SQLite with ``json_extract(params, '$."a"."b"')`` (only where ``json_valid``). Either
way the value is compared as text: ``42`` matches the number 42 and the string "42";
``true``, ``false`` and ``null`` also match those JSON values. Path parts are object
keys (on PostgreSQL a number also indexes an array). A ``LIKE`` of the value's text
comes first, so only the rows whose JSON text holds it are parsed (a number is found
as it is written: ``1e3`` is not ``1000``). A params text that is not JSON makes
PostgreSQL refuse the whole query (jobkit only ever writes JSON there).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from jobkit.archive.lookup import _micros, _reading, _record, _stored, _utc, history_url
from jobkit.models import JobError, JobRecord, Status

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement

    from jobkit.settings import Settings

ESCAPE = "/"  # LIKE's escape character here: "\" means different things to each database


class Filters(Protocol):
    """What a search asks for (:class:`jobkit.ops.search.SearchQuery` is one)."""

    @property
    def words(self) -> tuple[str, ...]: ...
    @property
    def job_class(self) -> str | None: ...
    @property
    def statuses(self) -> frozenset[Status]: ...
    @property
    def queue(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def params(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def job_id(self) -> str | None: ...


def like_escaped(text: str) -> str:
    """``text`` as the literal part of a LIKE pattern (``ESCAPE '/'``)."""
    return text.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")


def json_escaped(text: str) -> str:
    """``text`` as it reads inside a JSON string: a quote in params is ``\\"`` there."""
    return orjson.dumps(text).decode()[1:-1]


@dataclass(frozen=True)
class Seen:
    """What matching needs of a job, from its Redis fields or its record."""

    id: str
    queue: str
    name: str
    status: Status | None
    params: str
    error: JobError | None


def matches(q: Filters, s: Seen) -> bool:
    """Whether the job ``s`` matches every part of ``q``: what :func:`conditions` asks of
    a row, asked of a job Redis holds (or of a record read)."""
    if q.statuses and s.status not in q.statuses:
        return False
    if q.queue is not None and s.queue != q.queue:
        return False
    if q.job_id is not None and not s.id.startswith(q.job_id):
        return False
    if q.job_class is not None:
        cls = q.job_class
        if not (s.name.startswith(cls[:-1]) if cls.endswith("*") else s.name == cls):
            return False
    errors = "" if s.error is None else f"{s.error.type}\n{s.error.message}".lower()
    if q.error is not None and q.error.lower() not in errors:
        return False
    params = s.params.lower()
    for word in q.words:
        low = word.lower()
        if low not in errors and low not in params and json_escaped(low) not in params:
            return False
    if q.params:
        try:
            doc = orjson.loads(s.params) if s.params else None
        except orjson.JSONDecodeError:
            return False
        return all(_value_is(doc, path.split("."), value) for path, value in q.params)
    return True


def _value_is(doc: Any, parts: list[str], value: str) -> bool:
    """Whether the JSON ``doc``'s value at ``parts`` reads as ``value``: a string as it
    is, anything else (numbers, true, false, null) as its JSON text."""
    for part in parts:
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return False
    if isinstance(doc, str):
        return doc == value
    if isinstance(doc, dict | list):
        return False
    return bool(orjson.dumps(doc).decode() == value)


def search_archive(
    f: Filters, limit: int, settings: Settings | None = None
) -> list[tuple[JobRecord, int]] | None:
    """Up to ``limit`` archived jobs matching ``f``, newest change first, each with the
    time (ms) it last changed; None when no archive is configured. The id filter is a
    prefix here (an exact id is :func:`~jobkit.archive.lookup.archived_record`'s).
    Raises :class:`~jobkit.errors.HistoryUnavailable` when the archive cannot be read."""
    url = history_url(settings)
    if url is None:
        return None
    from sqlalchemy import select

    from jobkit.archive.schema import jobs as t

    with _reading(url) as conn:
        if conn is None:
            return []
        where = conditions(f, conn.dialect.name)
        query = select(t).where(*where).order_by(t.c.changed_at.desc(), t.c.id.desc())
        rows = conn.execute(query.limit(limit)).all()
    return [(_record(r), _micros(_utc(r.changed_at)) // 1000) for r in rows]


def conditions(f: Filters, dialect: str) -> list[ColumnElement[bool]]:
    """The WHERE clauses of ``f`` for a database of ``dialect`` (ANDed)."""
    from sqlalchemy import or_

    from jobkit.archive.schema import jobs as t

    where: list[ColumnElement[bool]] = []
    if f.job_class is not None:
        if f.job_class.endswith("*"):
            where += _prefix(t.c.job_class, f.job_class[:-1], dialect)
        else:
            where.append(t.c.job_class == f.job_class)
    if f.statuses:
        where.append(t.c.status.in_(_stored(f.statuses)))
    if f.queue is not None:
        where.append(t.c.queue == f.queue)
    if f.job_id is not None:
        where += _prefix(t.c.id, f.job_id, dialect)
    errors = (t.c.error_type, t.c.error_message)
    if f.error is not None:
        where.append(or_(*(_contains(c, f.error, dialect) for c in errors)))
    for word in f.words:
        found = [_contains(c, word, dialect) for c in errors]
        texts = dict.fromkeys((word, json_escaped(word)))  # a quote reads \" in JSON
        found += [_contains(t.c.params, text, dialect) for text in texts]
        where.append(or_(*found))
    for path, value in f.params:
        # the value's text is in the params' JSON text wherever it matches: a LIKE
        # first, so the JSON is parsed only for the rows it lets through
        where.append(_contains(t.c.params, json_escaped(value), dialect))
        where.append(_param_is(path.split("."), value, dialect))
    return where


def _contains(column: ColumnElement[str | None], text: str, dialect: str) -> ColumnElement[bool]:
    pattern = f"%{like_escaped(text)}%"
    if dialect == "postgresql":
        return column.ilike(pattern, escape=ESCAPE)
    return column.like(pattern, escape=ESCAPE)  # SQLite's LIKE ignores ASCII case itself


def _prefix(column: ColumnElement[str], prefix: str, dialect: str) -> list[ColumnElement[bool]]:
    """Rows whose ``column`` starts with ``prefix`` (case counts). On SQLite a range of
    the column's index (BINARY collation: byte order, which is code point order), then
    the exact test; elsewhere LIKE, whose prefix an index serves only in the C
    collation (another collation's order may put a prefix's strings outside a range)."""
    from sqlalchemy import func

    if dialect != "sqlite":
        return [column.like(like_escaped(prefix) + "%", escape=ESCAPE)]
    exact = func.substr(column, 1, len(prefix)) == prefix
    bound = _after(prefix)
    return [column >= prefix, exact] + ([] if bound is None else [column < bound])


def _after(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix``; None if none."""
    for cut in range(len(prefix) - 1, -1, -1):
        point = ord(prefix[cut]) + 1
        if 0xD800 <= point <= 0xDFFF:  # surrogates are no characters: the next one is
            point = 0xE000
        if point <= sys.maxunicode:
            return prefix[:cut] + chr(point)
    return None


def _param_is(parts: list[str], value: str, dialect: str) -> ColumnElement[bool]:
    """Whether the params' value at ``parts`` reads as ``value`` (see the module doc)."""
    from sqlalchemy import Text, and_, case, cast, func, or_
    from sqlalchemy.dialects.postgresql import JSONB

    from jobkit.archive.schema import jobs as t

    if dialect == "postgresql":
        doc = cast(t.c.params, JSONB)
        text = func.jsonb_extract_path_text(doc, *parts, type_=Text)
        if value == "null":
            return or_(func.jsonb_typeof(func.jsonb_extract_path(doc, *parts)) == "null",
                       text == value)  # fmt: skip
        return text == value  # true / false read as "true" / "false" already
    # SQLite: a path of quoted keys (parse_search refuses a key holding a quote)
    path = "$" + "".join(f'."{part}"' for part in parts)
    valid = func.json_valid(t.c.params) == 1
    kind = case((valid, func.json_type(t.c.params, path)), else_=None)
    found = cast(case((valid, func.json_extract(t.c.params, path)), else_=None), Text)
    as_text = and_(kind.in_(("integer", "real", "text")), found == value)
    if value in ("true", "false", "null"):  # json_extract reads true as 1: ask its type
        return or_(kind == value, and_(kind == "text", found == value))
    return as_text
