"""The `jobkit archiver` process: the queues' event streams into the history database.

Each round reads a batch of new events from every queue (the archivers' consumer group:
see :mod:`jobkit.backend.archive_feed` for why several archivers share the work without
duplicates and a killed one loses nothing), takes over events another archiver left
unacknowledged too long, reads the records of the jobs the batch ends or finishes
(one pipeline), writes the rows in one transaction and only then acknowledges the
events.

When the database is away the archiver keeps its batch, backs off (doubling, up to
:data:`BACKOFF_CAP`) and writes it once the database is back; the rest waits in the
streams. Streams are capped (``JOBKIT_EVENTS_MAXLEN``, ``JOBKIT_EVENTS_MAX_AGE``): while
behind, the archiver checks how far, and logs an error when the cap is about to drop
events no archiver has read, and when it has.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
import types
import uuid

from sqlalchemy.exc import SQLAlchemyError

from jobkit.archive.rows import DETAIL_FIELDS, fold, needs_record
from jobkit.archive.schema import ensure_schema
from jobkit.archive.writer import Writer, describe, shown, unreachable
from jobkit.backend.archive_feed import ArchiveFeed, Entry, Lag
from jobkit.backend.store import Store
from jobkit.errors import HistoryUnavailable
from jobkit.outage import TROUBLE
from jobkit.outage import describe as describe_trouble
from jobkit.settings import Settings

log = logging.getLogger("jobkit.archiver")

IDLE_SLEEP = 0.2  # seconds between rounds that found nothing
QUEUES_REFRESH = 1.0  # seconds between looks at the queue registry (new queues)
LAG_CHECK = 10.0  # seconds between checks of how far behind the archivers are
BACKOFF_FIRST = 0.5
BACKOFF_CAP = 30.0
CATCH_UP = 8  # a round reads up to this many times JOBKIT_ARCHIVE_BATCH while behind
NEAR_CAP = 0.8  # a stream this full of unarchived events is about to lose some


class Archiver:
    """One archiver process (``run``), or a round at a time (``step``) in tests."""

    def __init__(self, store: Store, writer: Writer, settings: Settings) -> None:
        self.store = store
        self.writer = writer
        self.settings = settings
        self.feed = ArchiveFeed(store, f"{socket.gethostname()}-{os.getpid()}-{_short_id()}")
        self.queues: list[str] = []
        self.stopping = False
        self.archived = 0  # events acknowledged
        self._held: list[Entry] = []  # a batch the database has not taken yet
        self._queues_at = float("-inf")
        self._claim_at = float("-inf")
        self._lag_at = float("-inf")
        self._count = settings.archive_batch  # events to read per queue next round

    def run(self) -> int:
        """Archive until SIGTERM / SIGINT; the exit code."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        log.info("archiver %s: Redis events into %s", self.feed.consumer, shown(self.writer.engine))
        if not self._schema_ready():
            return 0  # stopped while the database was away
        backoff = BACKOFF_FIRST
        while not self.stopping:
            try:
                busy = self.step()
                backoff = BACKOFF_FIRST
                if not busy:
                    time.sleep(IDLE_SLEEP)
            except HistoryUnavailable as exc:
                log.warning(
                    "history database unavailable (%s): %d events held, retrying in %.1f s",
                    exc,
                    _events_in(self._held),
                    backoff,
                )
                self._check_lag(force=False)
                self._sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_CAP)
            except TROUBLE as exc:
                log.warning("Redis: %s; retrying in %.1f s", describe_trouble(exc), backoff)
                self._sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_CAP)
        log.info("archiver %s stopped: %d events archived", self.feed.consumer, self.archived)
        return 0

    def _schema_ready(self) -> bool:
        """Create or upgrade the tables, waiting (backing off) while the database cannot
        be reached, as when it starts after the archiver; False if stopped meanwhile."""
        backoff = BACKOFF_FIRST
        while not self.stopping:
            try:
                prepare(self.writer)
                return True
            except HistoryUnavailable as exc:
                log.warning("history database unavailable (%s): retrying in %.1f s",
                            exc, backoff)  # fmt: skip
                self._sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_CAP)
        return False

    def step(self) -> bool:
        """One round: read (or take back the held batch), write, acknowledge. Whether it
        archived anything."""
        now = time.monotonic()
        if now - self._queues_at >= QUEUES_REFRESH:
            self._refresh_queues()
            self._queues_at = now
        # every LAG_CHECK seconds, busy or not: an archiver that is always busy is the one
        # that may be falling behind the streams' caps, and must say so while it can tell
        # (once it has read past events trimmed unread, Redis no longer shows the gap)
        self._check_lag(force=False)
        if not self._held:
            self._held = self._next_batch(now)
        if not self._held:
            return False
        batch = self._held
        wanted = sorted({ev.id for e in batch for ev in e.events if needs_record(ev)})
        records = dict(zip(wanted, self.store.reads.job_fields(wanted, DETAIL_FIELDS), strict=True))
        skipped = self.writer.write(fold((ev for e in batch for ev in e.events), records))
        self.feed.ack(batch)
        self._held = []
        self.archived += _events_in(batch)
        if skipped:
            log.error("%d archive rows refused by the database were skipped", skipped)
        return True

    def _refresh_queues(self) -> None:
        queues = self.feed.queues()
        new = [q for q in queues if q not in self.queues]
        if new:
            self.feed.ensure_groups(new)
        self.queues = queues

    def _next_batch(self, now: float) -> list[Entry]:
        batch = self.feed.read(self.queues, self._count)
        # Behind (the read brought a queue's full share or more): read more next time, up
        # to CATCH_UP times the setting in all. A bigger batch costs less per event, and
        # holds more of each job's events (created, claimed, ended), whose row is then
        # written once instead of two or three times: the further behind, the faster.
        base = self.settings.archive_batch
        ceiling = max(base, base * CATCH_UP // max(1, len(self.queues)))
        self._count = min(self._count * 2, ceiling) if len(batch) >= self._count else base
        if now - self._claim_at >= self.settings.archive_claim_idle / 2:
            self._claim_at = now
            idle_ms = int(self.settings.archive_claim_idle * 1000)
            taken, trimmed = self.feed.claim(self.queues, idle_ms, self.settings.archive_batch)
            if taken:
                log.info("took over %d events another archiver left unarchived", _events_in(taken))
            if trimmed:
                log.error(
                    "LOST: %d events were trimmed from the streams before they were archived",
                    trimmed,
                )
            batch += taken
        return batch

    def _check_lag(self, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._lag_at < LAG_CHECK:
            return
        self._lag_at = now
        try:
            for lag in self.feed.lag(self.queues).values():
                if lag.recount:  # all read, but Redis's count fell short after a trim
                    self.feed.recount(lag.queue)
                self._warn(lag)
        except TROUBLE:
            return

    def _warn(self, lag: Lag) -> None:
        cap = self.settings.events_maxlen
        if lag.lost:
            log.error(
                "LOST: queue %s's event stream was trimmed past events no archiver read "
                "(%d behind, the stream holds %d): raise JOBKIT_EVENTS_MAXLEN or add archivers",
                lag.queue,
                lag.behind,
                lag.length,
            )
        elif self._aging(lag):
            log.error(
                "queue %s: events waiting %.0f s to be archived, near JOBKIT_EVENTS_MAX_AGE "
                "(%.0f s): the workers' trim will drop them before they are archived",
                lag.queue,
                (time.time() * 1000 - (lag.waiting_since_ms or 0)) / 1000,
                self.settings.events_max_age,
            )
        elif cap and lag.behind >= NEAR_CAP * cap:
            log.error(
                "queue %s: %d events not archived yet, near the stream's cap of %d "
                "(JOBKIT_EVENTS_MAXLEN): events will be dropped before they are archived",
                lag.queue,
                lag.behind,
                cap,
            )

    def _aging(self, lag: Lag) -> bool:
        """Whether the oldest event waiting is near the age the workers trim at."""
        if lag.waiting_since_ms is None:
            return False
        waited = time.time() - lag.waiting_since_ms / 1000
        return waited >= NEAR_CAP * self.settings.events_max_age

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < end:
            time.sleep(min(0.1, end - time.monotonic()))

    def _on_signal(self, _signum: int, _frame: types.FrameType | None) -> None:
        self.stopping = True


def archive_lag(store: Store) -> dict[str, Lag]:
    """Per queue: events not yet archived (for ``jobkit info``): see :class:`Lag`."""
    return ArchiveFeed(store, "info").lag()


def prepare(writer: Writer) -> int:
    """Create or upgrade the schema; its version. A database that cannot be reached is
    :class:`HistoryUnavailable` (one line, the password masked)."""
    try:
        return ensure_schema(writer.engine)
    except SQLAlchemyError as exc:
        if unreachable(exc):
            raise HistoryUnavailable(f"{shown(writer.engine)}: {describe(exc)}") from None
        raise


def _short_id() -> str:
    return uuid.uuid4().hex[:6]


def _events_in(entries: list[Entry]) -> int:
    """Events in stream ``entries`` (an entry holds one, or a batch's: see events.parse)."""
    return sum(len(e.events) for e in entries)
