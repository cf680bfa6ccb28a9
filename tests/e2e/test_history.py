"""The fleet over time from the archive (``jobkit.ops.history``): rows with known times
written into the real schema, on SQLite and on a real PostgreSQL server; bucket
counts, failures, depth, percentiles within their bin, empty buckets None, bounds, and
no archive at all."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

import jobkit
from jobkit.archive.schema import attempts, ensure_schema, jobs
from jobkit.errors import HistoryUnavailable, InvalidQuery
from jobkit.ops.history import history, percentile
from tests.support.postgres_server import reset_database

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=timezone.utc)
H = timedelta(hours=1)
S = timedelta(seconds=1)
DAY = NOW.replace(hour=0, minute=0)


@pytest.fixture(params=["sqlite", "postgresql"])
def archive(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty archive, jobkit configured to read it (no Redis needed)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'history.db'}"
    else:
        url = request.getfixturevalue("postgres_server").url
    if request.param == "postgresql":
        reset_database(url)  # also what other tests made on jobkit's tables (views)
    engine = create_engine(url)
    ensure_schema(engine)
    engine.dispose()
    jobkit.configure(history_url=url, data_dir=tmp_path)
    yield url
    jobkit.configure(data_dir=tmp_path)


class Rows:
    """Job and attempt rows with every column the schema requires."""

    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []
        self.attempts: list[dict[str, Any]] = []

    def job(
        self,
        queue: str,
        created: datetime,
        started: datetime | None = None,
        finished: datetime | None = None,
        *,
        job_class: str = "app.Sync",
        ran_ms: int | None = None,
        outcome: str = "succeeded",
    ) -> None:
        job_id = f"{queue}:{len(self.jobs)}"
        self.jobs.append({"id": job_id, "queue": queue, "job_class": job_class, "params": "{}",
                          "status": outcome if started or finished else "queued",
                          "attempts": 1 if started else 0, "created_at": created,
                          "started_at": started, "finished_at": finished,
                          "changed_at": finished or started or created,
                          "event_ms": 0, "event_seq": 0})  # fmt: skip
        if ran_ms is not None:
            ended = (started or created) + timedelta(milliseconds=ran_ms)
            self.attempts.append({"job_id": job_id, "attempt": 1, "queue": queue,
                                  "job_class": job_class, "outcome": outcome,
                                  "started_at": started, "finished_at": ended,
                                  "duration_ms": ran_ms})  # fmt: skip

    def write(self, url: str) -> None:
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(jobs.insert(), self.jobs)
            if self.attempts:
                conn.execute(attempts.insert(), self.attempts)
        engine.dispose()


def fleet(url: str) -> None:
    """A day of two queues whose figures are worked out by hand in the tests."""
    rows = Rows()
    seven = DAY + 7 * H + 5 * 60 * S  # 07:05
    for wait_s, ran_ms, outcome in ((1, 10, "succeeded"), (2, 20, "succeeded"),
                                    (3, 40, "dead"), (100, 5000, "retrying")):  # fmt: skip
        rows.job("default", seven, seven + wait_s * S, ran_ms=ran_ms, outcome=outcome)
    rows.job("default", DAY + 9 * H + 600 * S)  # 09:10, two never started: waiting
    rows.job("default", DAY + 9 * H + 660 * S)
    late = DAY + 10 * H + 50 * 60 * S  # 10:50, started 11:10
    rows.job("default", late, late + 20 * 60 * S, ran_ms=500)
    rows.job("default", DAY + 5 * H)  # before the window, never started: still waiting
    early = DAY + 5 * H + 30 * 60 * S  # 05:30, started 06:30 after an hour's wait
    rows.job("default", early, early + H)
    rows.job("default", DAY - 2 * 24 * H)  # older than the lookback: not counted
    billing = DAY + 12 * H + 600 * S  # 12:10, cancelled before it ran, at 12:11
    rows.job("billing", billing, None, billing + 60 * S, job_class="app.Report", ran_ms=200,
             outcome="cancelled")  # fmt: skip
    rows.write(url)


def within_a_bin(estimate: float | None, exact: float) -> bool:
    return estimate is not None and exact / 2 <= estimate <= exact * 2


def test_hourly_buckets_counts_depth_and_percentiles(archive: str) -> None:
    fleet(archive)
    view = history(6, 60, now=NOW)
    assert view is not None
    assert view["buckets"] == [(DAY + h * H).isoformat() for h in range(6, 13)]
    default, billing = view["queues"]["default"], view["queues"]["billing"]
    assert default["created"] == [0, 4, 0, 2, 1, 0, 0]
    assert default["finished"] == [0, 3, 0, 0, 0, 1, 0]  # retrying is not the end
    assert default["failed"] == [0, 2, 0, 0, 0, 0, 0]  # dead and retrying
    assert default["depth"] == [1, 1, 1, 3, 4, 3, 3]
    p50, p99 = default["wait_p50_s"], default["wait_p99_s"]
    assert [i for i, v in enumerate(p50) if v is not None] == [0, 1, 5]
    assert within_a_bin(p50[0], 3600) and within_a_bin(p50[5], 1200)
    assert within_a_bin(p50[1], 2.5) and within_a_bin(p99[1], 100)
    assert billing == {"created": [0] * 6 + [1], "finished": [0] * 6 + [1],
                       "failed": [0] * 6 + [1], "depth": [0] * 7,
                       "wait_p50_s": [None] * 7, "wait_p99_s": [None] * 7}  # fmt: skip

    sync, report = view["classes"]["app.Sync"], view["classes"]["app.Report"]
    assert (sync["runs"], sync["failures"]) == (5, 2)
    assert within_a_bin(sync["run_p50_ms"], 40) and within_a_bin(sync["run_p99_ms"], 5000)
    series = sync["series"]
    assert series["failures"] == [None, 2, None, None, None, 0, None]
    assert [v is None for v in series["run_p50_ms"]] == [True, False, True, True, True, False,
                                                         True]  # fmt: skip
    assert within_a_bin(series["run_p50_ms"][1], 20) and within_a_bin(series["run_p50_ms"][5], 500)
    assert within_a_bin(series["run_p99_ms"][1], 5000)
    assert (report["runs"], report["failures"]) == (1, 1)
    assert within_a_bin(report["run_p50_ms"], 200)

    only = history(6, 60, "billing", now=NOW)
    assert only is not None and list(only["queues"]) == ["billing"]
    assert list(only["classes"]) == ["app.Report"]


def test_daily_and_short_buckets(archive: str) -> None:
    fleet(archive)
    week = history(24 * 7, 24 * 60, now=NOW)
    assert week is not None and len(week["buckets"]) == 8
    assert (
        week["buckets"][-1] == DAY.isoformat()
        and week["buckets"][0] == (DAY - 7 * 24 * H).isoformat()
    )
    default = week["queues"]["default"]
    assert default["created"][-1] == 9 and default["created"][-3] == 1  # two days back
    assert default["depth"][-1] == 4 and default["depth"][-3] == 1  # the old one counts now
    fine = history(1, 5, now=NOW)  # 11:30 to 12:30 in five minutes
    assert fine is not None and len(fine["buckets"]) == 13
    assert fine["queues"]["billing"]["created"] == [0] * 8 + [1] + [0] * 4
    assert fine["queues"]["default"]["depth"] == [3] * 13
    assert fine["classes"]["app.Report"]["series"]["failures"][8] == 1


def test_an_empty_archive_has_buckets_and_nothing_in_them(archive: str) -> None:
    view = history(2, 30, now=NOW)
    assert view == {"buckets": [(DAY + 10 * H + m * 60 * S).isoformat()
                                for m in (30, 60, 90, 120, 150)],
                    "queues": {}, "classes": {}}  # fmt: skip


@pytest.mark.parametrize(
    ("hours", "minutes", "says"),
    [
        (0, 60, "hours must be from 1 to 744"),
        (745, 60, "hours must be from 1 to 744"),
        (24, 4, "bucket_minutes must be from 5 to 1440"),
        (24, 1441, "bucket_minutes must be from 5 to 1440"),
        (24 * 31, 5, "buckets, over 750: use longer buckets"),
    ],
)
def test_bounds_are_clear_errors(hours: int, minutes: int, says: str) -> None:
    with pytest.raises(InvalidQuery) as raised:
        history(hours, minutes)
    assert says in str(raised.value)


def test_no_archive_is_none_and_an_unreadable_one_raises(tmp_path: Path) -> None:
    jobkit.configure(history_url=f"sqlite:///{tmp_path / 'none.db'}", data_dir=tmp_path)
    try:
        assert history() is None
        assert not (tmp_path / "none.db").exists()
        jobkit.configure(history_url="postgresql+psycopg://u:pw@127.0.0.1:1/h", data_dir=tmp_path)
        with pytest.raises(HistoryUnavailable, match=r"127\.0\.0\.1"):
            history()
    finally:
        jobkit.configure(data_dir=tmp_path)


def test_percentiles_interpolate_within_a_bin() -> None:
    assert percentile({}, 0.5) is None
    assert percentile({4: 1}, 0.5) == 12.0  # bin 4 is 8 to 16 ms: its middle
    assert percentile({0: 1, 10: 1}, 0.5) == 1.0  # the first of two: the top of bin 0
    assert percentile({3: 98, 20: 2}, 0.99) == 2**19 + 2**19 * 0.5
