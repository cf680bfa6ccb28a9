"""Times written to the archive from epoch milliseconds read back as the same instants, in
the text SQLAlchemy itself writes (pure logic: no server)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import DateTime
from sqlalchemy.dialects import postgresql, sqlite

from jobkit.archive import times
from jobkit.archive.times import TimeText, converter

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
COLUMN = DateTime(timezone=True)


@given(st.integers(min_value=1, max_value=253_402_300_799_999))
def test_sqlite_text_from_ms_is_what_sqlalchemy_writes(ms: int) -> None:
    dialect = sqlite.dialect()
    ours = converter(COLUMN, dialect)
    assert isinstance(ours, TimeText)
    theirs = COLUMN.dialect_impl(dialect).bind_processor(dialect)
    assert theirs is not None
    instant = EPOCH + timedelta(milliseconds=ms)
    assert ours(ms) == theirs(instant) == ours(instant)


@given(st.integers(min_value=1, max_value=253_402_300_799_999))
def test_postgresql_text_from_ms_names_the_same_instant(ms: int) -> None:
    ours = converter(COLUMN, postgresql.psycopg.dialect())
    assert ours is not None
    instant = EPOCH + timedelta(milliseconds=ms)
    assert datetime.fromisoformat(ours(ms)) == instant
    assert ours(instant) is instant  # the driver writes a datetime itself
    assert ours(None) is None


def test_the_seconds_cache_starts_over_when_full() -> None:
    text = TimeText("", str)
    for second in range(times.SECONDS_KEPT + 10):
        assert text(second * 1000 + 5).endswith(".005000")
    assert len(text._seconds) <= times.SECONDS_KEPT
