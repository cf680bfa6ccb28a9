"""The Redis side of ``jobkit archiver``: each queue's ``events`` stream read through one
consumer group (:data:`~jobkit.backend.keys.ARCHIVE_GROUP`), shared by every archiver.

Why nothing is lost and nothing is archived twice over:

* The group is created at ``0`` (with MKSTREAM): the first archiver archives everything
  the stream still holds, not only what happens after it started.
* An entry read with XREADGROUP stays *pending* for its consumer until XACK, which the
  archiver sends only after the database committed the rows made from it. An archiver
  killed mid-batch leaves its entries pending; another one takes them over with
  XAUTOCLAIM once they have been idle longer than the claim timeout.
* A batch written twice (claimed while its first reader was slow, or a commit whose ack
  was lost) changes nothing: rows are upserted by job id and by (job id, attempt).

Each call is one pipeline over the queues' shards (:meth:`Reads.fan_out`: one round trip
per master on a cluster). Reads do not block in Redis: the archiver sleeps a little when
a round finds nothing, so one slow queue never holds up the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from jobkit.backend.events import Event, parse
from jobkit.backend.keys import ARCHIVE_GROUP, Shard
from jobkit.backend.socket_link import UndecodableReply
from jobkit.backend.upkeep_calls import RecountArgs

if TYPE_CHECKING:
    from jobkit.backend.store import Store


@dataclass(frozen=True)
class Entry:
    """One stream entry handed to the archiver: its queue and id (to ack it), and the
    events it holds (a batch's, one, or none for an entry that is no event: acked and
    skipped)."""

    queue: str
    seq: str
    events: tuple[Event, ...]


@dataclass(frozen=True)
class Lag:
    """How far the archivers are behind on one queue (XINFO GROUPS and STREAM): entries
    not yet delivered to any archiver (None where Redis cannot tell), entries
    delivered but not acknowledged, the stream's length, and whether entries the group
    never read were trimmed away (lost to the archive)."""

    queue: str
    undelivered: int | None
    pending: int
    length: int
    lost: bool
    # Redis time (ms) of the last entry delivered to an archiver: when entries wait
    # behind it, about when the oldest of them was written (None: nothing waits)
    waiting_since_ms: int | None = None
    # the group has read everything but Redis's count of it fell short after a trim:
    # ArchiveFeed.recount sets it right
    recount: bool = False

    @property
    def behind(self) -> int:
        """Events not yet archived (undelivered unknown: counted as the whole stream)."""
        return (self.length if self.undelivered is None else self.undelivered) + self.pending


class ArchiveFeed:
    """Group creation, reads, claims, acks and lag for one archiver process."""

    def __init__(self, store: Store, consumer: str) -> None:
        self.store = store
        self.consumer = consumer
        self._claim_from: dict[str, str] = {}  # queue -> XAUTOCLAIM cursor

    def queues(self) -> list[str]:
        """Every queue of the registry."""
        return self.store.reads.queues()

    def ensure_groups(self, queues: Iterable[str]) -> None:
        """Create the archivers' group on each queue's stream (and the stream) where it
        is missing, at the start of the stream. Raises ``redis.ResponseError`` for a
        stream key of another type."""

        def add(pipe: Any, shard: Shard) -> None:
            pipe.xgroup_create(shard.events, ARCHIVE_GROUP, id="0", mkstream=True)

        for replies in self.store.reads.fan_out(add, queues).values():
            for reply in replies:
                if isinstance(reply, redis.ResponseError) and "BUSYGROUP" not in str(reply):
                    raise reply

    def read(self, queues: Sequence[str], count: int) -> list[Entry]:
        """Up to ``count`` new entries of each queue, never delivered before."""

        def commands(shard: Shard) -> list[tuple[Any, ...]]:
            return [("XREADGROUP", "GROUP", ARCHIVE_GROUP, self.consumer, "COUNT", count,
                     "STREAMS", shard.events, ">")]  # fmt: skip

        out: list[Entry] = []
        for queue, (reply,) in self.store.reads.fan_out_raw(commands, queues).items():
            if isinstance(reply, UndecodableReply):  # delivered, but not UTF-8 throughout
                out.extend(self._mine_again(queue, count))
                continue
            if isinstance(reply, redis.ResponseError):
                if "NOGROUP" in str(reply):
                    self.ensure_groups([queue])  # the stream was deleted: begin again
                    continue
                raise reply
            out.extend(_entries(queue, _stream_entries(reply)))
        return out

    def _mine_again(self, queue: str, count: int) -> list[Entry]:
        """This archiver's unacknowledged entries of ``queue`` (the ones a read just
        delivered), read through redis-py, which replaces bytes that are not UTF-8 (a
        corrupt record's text in an event) instead of refusing the whole reply."""

        def add(pipe: Any, shard: Shard) -> None:
            pipe.xreadgroup(ARCHIVE_GROUP, self.consumer, {shard.events: "0"}, count=count)

        (reply,) = self.store.reads.fan_out(add, [queue])[queue]
        if isinstance(reply, Exception):
            raise reply
        return _entries(queue, _stream_entries(reply))

    def claim(self, queues: Sequence[str], idle_ms: int, count: int) -> tuple[list[Entry], int]:
        """Take over up to ``count`` entries per queue that another archiver read and has
        not acknowledged for ``idle_ms``; and how many such entries Redis had already
        trimmed (lost to the archive)."""

        def add(pipe: Any, shard: Shard) -> None:
            start = self._claim_from.get(shard.queue, "0-0")
            pipe.execute_command(
                "XAUTOCLAIM", shard.events, ARCHIVE_GROUP, self.consumer, idle_ms, start,
                "COUNT", count,
            )  # fmt: skip

        out: list[Entry] = []
        trimmed = 0
        for queue, (reply,) in self.store.reads.fan_out(add, queues).items():
            if isinstance(reply, redis.ResponseError):
                if "NOGROUP" in str(reply):
                    continue
                raise reply
            self._claim_from[queue] = str(reply[0])
            out.extend(_entries(queue, [e for e in reply[1] if e and e[1] is not None]))
            trimmed += sum(1 for e in reply[1] if not e or e[1] is None)  # Redis 6.2
            if len(reply) > 2:
                trimmed += len(reply[2])  # Redis 7: ids deleted from the stream
        return out, trimmed

    def ack(self, entries: Iterable[Entry]) -> None:
        """Acknowledge ``entries``: archived (or skipped), never delivered again."""
        by_queue: dict[str, list[str]] = {}
        for entry in entries:
            by_queue.setdefault(entry.queue, []).append(entry.seq)

        def commands(shard: Shard) -> list[tuple[Any, ...]]:
            return [("XACK", shard.events, ARCHIVE_GROUP, *by_queue[shard.queue])]

        for replies in self.store.reads.fan_out_raw(commands, by_queue).values():
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply

    def lag(self, queues: Iterable[str] | None = None) -> dict[str, Lag]:
        """Per queue (default: every queue): how far the archivers are behind. A queue
        whose stream has no archivers' group (no archiver ran yet) is left out."""

        def add(pipe: Any, shard: Shard) -> None:
            pipe.execute_command("XINFO", "GROUPS", shard.events)
            pipe.execute_command("XINFO", "STREAM", shard.events)

        out: dict[str, Lag] = {}
        for queue, (groups, stream) in self.store.reads.fan_out(add, queues).items():
            if isinstance(groups, Exception) or isinstance(stream, Exception):
                continue
            group = next((g for g in map(_fields, groups) if g.get("name") == ARCHIVE_GROUP), None)
            if group is not None:
                out[queue] = _lag(queue, group, _fields(stream))
        return out

    def recount(self, queue: str) -> bool:
        """Set the group's count of entries read right, once it has read all of
        ``queue``'s stream (see ``recount.lua``); whether it was wrong."""
        shard = self.store.keys.shard(queue)
        return bool(self.store.run_script("recount", [shard.base], RecountArgs(ARCHIVE_GROUP)))


def _lag(queue: str, group: dict[str, Any], stream: dict[str, Any]) -> Lag:
    """One queue's :class:`Lag` from XINFO GROUPS (the archivers' group) and XINFO STREAM.

    Redis's ``lag`` (entries added less entries the group read) is right until entries
    are trimmed before the group read them; from then on it stays too high (Redis 7.0)
    until :meth:`ArchiveFeed.recount`. So: a group that delivered the stream's last entry
    has nothing waiting, whatever ``lag`` says; one whose next entries were trimmed has the
    whole stream waiting, and lost events if Redis counts more than that."""
    counted = None if group.get("lag") is None else int(group["lag"])
    length = int(stream.get("length") or 0)
    delivered = _id(group.get("last-delivered-id"))
    first_entry = stream.get("first-entry")
    first = _id(first_entry[0]) if first_entry else None
    caught_up = delivered >= _id(stream.get("last-generated-id"))
    cut = first is not None and first > delivered  # entries left are all after the group's
    if caught_up:
        undelivered: int | None = 0
    elif cut:
        undelivered = length
    else:
        undelivered = None if counted is None else min(counted, length)
    since = first_entry[0] if cut and first_entry else group.get("last-delivered-id")
    return Lag(
        queue=queue,
        undelivered=undelivered,
        pending=int(group.get("pending") or 0),
        length=length,
        lost=not caught_up and cut and counted is not None and counted > length,
        waiting_since_ms=_ms(since) if undelivered else None,
        recount=caught_up and counted != 0,
    )


def _id(entry_id: Any) -> tuple[int, int]:
    """A stream entry id as (ms, seq), to compare; (0, 0) for none."""
    ms, _, seq = str(entry_id or "0-0").partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return 0, 0


def _ms(entry_id: Any) -> int | None:
    """The time part of a stream entry id (``<ms>-<seq>``); None for none, and for
    ``0-0`` (nothing delivered yet: when the waiting entries were written is unknown)."""
    try:
        ms = int(str(entry_id).split("-", 1)[0])
    except ValueError:
        return None
    return ms or None


def _fields(group: Any) -> dict[str, Any]:
    """One group of XINFO GROUPS as a dict (RESP2 gives a flat list)."""
    if isinstance(group, dict):
        return {str(k): v for k, v in group.items()}
    pairs = iter(group)
    return {str(k): v for k, v in zip(pairs, pairs, strict=True)}


def _stream_entries(reply: Any) -> list[Any]:
    """The entries of XREADGROUP's reply for one stream, in any of its shapes: as Redis
    sends it (RESP2 ``[[stream, entries]]``, RESP3 ``{stream: entries}``) or as redis-py
    parses it (the same, or ``{stream: [entries]}``)."""
    if not reply:
        return []
    streams = reply.values() if isinstance(reply, dict) else (e for _, e in reply)
    out: list[Any] = []
    for entries in streams:
        if (
            entries
            and isinstance(entries[0], list)
            and entries[0]
            and isinstance(entries[0][0], list)
        ):
            entries = entries[0]  # redis-py's RESP3 form: the entries in a list of their own
        out.extend(entries)
    return out


def _entries(queue: str, raw: Iterable[Any]) -> list[Entry]:
    return [Entry(queue, str(entry[0]), parse(queue, entry)) for entry in raw]
