"""The Redis side of ``jobkit doctor`` and ``jobkit repair``: a queue's shared keys and
their types, what was set aside, its records found by SCAN, its indexes read by ZSCAN,
repair.lua run on one batch at a time, and the Redis settings that can lose jobs.

Every read is bounded: SCAN and ZSCAN pages of a few hundred, one script call per batch,
never KEYS or a whole index at once, so a doctor on a queue of millions never blocks
Redis for longer than one page. On a Redis Cluster a queue's keys all live in one slot,
so its records are found by scanning the one master that owns that slot (SCAN on a
cluster node only returns its own keys).

The global slot's keys are checked too: their types, the queues live workers' hashes
name, and every queue some key of the keyspace belongs to (:meth:`Health.shard_queues`:
SCAN pages on each master), for a registry of queues that is unreadable or lacks some.

Every call made is counted (:attr:`Health.calls`), so the reports can say what they cost.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import orjson
import redis
from redis.cluster import RedisCluster

from jobkit import names
from jobkit.backend.keys import Shard, split_lane
from jobkit.backend.store import Store
from jobkit.backend.upkeep_calls import RegisterReply, RepairArgs, triples
from jobkit.errors import InvalidName

# How many keys one SCAN call is asked to look at, entries one ZSCAN page holds, and ids
# one repair.lua call checks: each call stays well under a millisecond of Redis's time.
SCAN_COUNT = 500
INDEX_PAGE = 500
BATCH = 200
WORKERS_READ = 1000  # worker hashes the doctor checks (the workers zset's first)

# the indexes a job record belongs in (see repair.lua), besides its lanes' queues
INDEXES = ("running", "scheduled", "dead", "finished", "created")


class WrongType(NamedTuple):
    """A shared key of the shard holding another type than keys.py says."""

    key: str
    found: str
    want: str


class Aside(NamedTuple):
    """A shared key a script found holding the wrong type and renamed (``asides``)."""

    key: str
    kept: str
    found: str
    want: str
    at: int | None
    note: str


class Setting(NamedTuple):
    """A Redis setting of one node, and why it can lose jobs ('' when it cannot)."""

    node: str
    name: str
    value: str
    risk: str


class Fix(NamedTuple):
    """One thing repair.lua found not as it should be (see its header): ``where`` is
    its reply's index."""

    id: str
    where: str
    state: str


def shared_types(shard: Shard, lanes: Sequence[str]) -> list[tuple[str, str]]:
    """Each key the whole queue shares, with the type keys.py gives it; ``lanes`` the
    queue's lanes (their queue and wake keys)."""
    fixed = [
        (shard.running, "zset"), (shard.scheduled, "zset"), (shard.dead, "zset"),
        (shard.finished, "zset"), (shard.created, "zset"), (shard.seq, "string"),
        (shard.lanes, "set"), (shard.stats, "hash"), (shard.paused, "string"),
        (shard.events, "stream"), (shard.notices, "stream"), (shard.rate, "hash"),
        (shard.started, "hash"), (shard.asides, "hash"), (shard.versioned, "string"),
        (shard.waited, "string"),
    ]  # fmt: skip
    for lane in lanes:
        fixed += [(shard.queue_key(lane), "zset"), (shard.wake(lane), "list")]
    return fixed


def glob_literal(text: str) -> str:
    """``text`` as a SCAN MATCH pattern that matches only itself."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def _is_queue(name: str) -> bool:
    try:
        names.queue(name)
    except InvalidName:
        return False
    return True


def _capped(pages: Iterator[list[str]], limit: int | None) -> Iterator[list[str]]:
    """The non-empty ``pages`` of a cursor's walk, until ``limit`` items (None: all);
    the walk is not asked for a page past the limit."""
    seen = 0
    for page in pages:
        if limit is not None:
            page = page[: limit - seen]
        seen += len(page)
        if page:
            yield page
        if limit is not None and seen >= limit:
            return


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class Health:
    """Reads and repairs of whole shards, on ``store``; :attr:`calls` counts every
    command sent to Redis."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.client: Any = store.redis
        self.keys = store.keys
        self.calls = 0
        self._cluster = isinstance(self.client, RedisCluster)

    def _command(self, *command: Any, node: Any = None) -> Any:
        """One command; on a cluster, to ``node`` (SCAN's cursor unwrapped from the
        per-node answer redis-py gives)."""
        self.calls += 1
        if node is None:
            return self.client.execute_command(*command)
        reply = self.client.execute_command(*command, target_nodes=node)
        if command[0] == "SCAN" and isinstance(reply[0], dict):  # ({node: cursor}, keys)
            return reply[0][node.name], reply[1]
        return reply

    def _pipeline(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Commands of one shard in one round trip; error replies in place."""
        self.calls += len(commands)
        return self.store.wire.pipeline(commands)

    # -- the shard's shared keys ----------------------------------------------------------

    def queues(self) -> list[str]:
        """Every queue of the registry, sorted."""
        self.calls += 1
        return self.store.reads.queues()

    def lanes(self, queue: str) -> list[str]:
        """The queue's lanes: its own, and every tagged one its ``lanes`` set names."""
        shard = self.keys.shard(queue)
        (members,) = self._pipeline([("SMEMBERS", shard.lanes)])
        tagged = sorted(_text(m) for m in members) if isinstance(members, (list, set)) else []
        return [queue, *tagged]

    def wrong_types(self, queue: str, lanes: Sequence[str]) -> list[WrongType]:
        """The shared keys of ``queue`` that hold another type than keys.py says."""
        return self._typed(shared_types(self.keys.shard(queue), lanes))

    def asides(self, queue: str | None) -> list[Aside]:
        """What was set aside in ``queue``'s shard (None: the global slot's) by its
        ``asides`` hash, paged by HSCAN."""
        key = self.keys.asides if queue is None else self.keys.shard(queue).asides
        out: list[Aside] = []
        cursor: Any = 0
        while True:
            (reply,) = self._pipeline([("HSCAN", key, cursor, "COUNT", INDEX_PAGE)])
            if isinstance(reply, Exception):
                return out  # not a hash: wrong_types names it
            cursor, flat = reply
            if not isinstance(flat, dict):  # field, value, field, value ...
                flat = dict(zip(flat[::2], flat[1::2], strict=True))
            out += [_aside(_text(kept), entry) for kept, entry in flat.items()]
            if int(cursor) == 0:
                return sorted(out, key=lambda a: (a.at or 0, a.kept))

    # -- the global slot ----------------------------------------------------------------

    def global_types(self) -> list[WrongType]:
        """The global keys that hold another type than keys.py says."""
        k = self.keys
        expected = [(k.queues, "set"), (k.workers, "zset"), (k.marker, "string"),
                    (k.audit, "stream"), (k.asides, "hash")]  # fmt: skip
        return self._typed(expected)

    def registry(self) -> list[str] | None:
        """The queues of the registry, sorted (None: it holds another type)."""
        self.calls += 1
        found = self.store.reads.registry()
        return None if found.problems else found.items

    def workers(self) -> tuple[list[WrongType], set[str]]:
        """The hashes of the workers the ``workers`` zset names (the first
        :data:`WORKERS_READ`) that hold another type, and the queues the others serve."""
        (names,) = self._pipeline([("ZRANGE", self.keys.workers, 0, WORKERS_READ - 1)])
        if isinstance(names, Exception):
            return [], set()  # not a zset: global_types names it
        hashes = [self.keys.worker(_text(n)) for n in names]
        wrong = self._typed([(key, "hash") for key in hashes])
        served = self._pipeline([("HGET", key, "queues") for key in hashes])
        queues = set()
        for raw in served:
            for lane in _text(raw).split(",") if isinstance(raw, (str, bytes)) else ():
                queue = split_lane(lane)[0]
                if _is_queue(queue):
                    queues.add(queue)
        return wrong, queues

    def shard_queues(self) -> tuple[set[str], int]:
        """Every queue some key of the keyspace belongs to (``{prefix:<queue>}:...``), by
        SCAN pages of :data:`SCAN_COUNT` on each master; and how many keys it looked at."""
        head = "{" + self.keys.prefix + ":"
        pattern = glob_literal(head) + "*}*"
        nodes = self.client.get_primaries() if self._cluster else [None]
        found: set[str] = set()
        seen = 0
        for node in nodes:
            cursor: Any = 0
            while True:
                cursor, keys = self._command(
                    "SCAN", cursor, "MATCH", pattern, "COUNT", SCAN_COUNT, node=node
                )
                seen += len(keys)
                for key in map(_text, keys):
                    queue = key[len(head) : key.find("}")]
                    if _is_queue(queue):  # not another prefix's ({p:x}:...)
                        found.add(queue)
                if int(cursor) == 0:
                    break
        return found, seen

    def register(self, queues: Sequence[str]) -> RegisterReply:
        """register.lua: ``queues`` into the registry, garbage under its name set aside."""
        self.calls += 1
        return self.store.register(queues)

    def _typed(self, expected: Sequence[tuple[str, str]]) -> list[WrongType]:
        found = self._pipeline([("TYPE", key) for key, _ in expected]) if expected else []
        return [
            WrongType(key, _text(t), want)
            for (key, want), t in zip(expected, found, strict=True)
            if _text(t) not in ("none", want)
        ]

    # -- records and index entries --------------------------------------------------------

    def records(self, queue: str, limit: int | None = None) -> Iterator[list[str]]:
        """Pages of the ids of ``queue``'s job records, as SCAN finds their keys (on the
        master of the queue's slot, on a cluster), until ``limit`` ids (None: all).
        SCAN may give a key twice; a repair of it twice does nothing the second time."""
        shard = self.keys.shard(queue)
        return self._scan(shard, shard.job(""), limit)

    def schedules(self, queue: str) -> list[str]:
        """The keys of the cron schedules ``queue``'s shard holds state for."""
        shard = self.keys.shard(queue)
        return [key for page in self._scan(shard, shard.schedule(""), None) for key in page]

    def _scan(self, shard: Shard, head: str, limit: int | None) -> Iterator[list[str]]:
        """Pages of what follows ``head`` in the names of the keys of ``shard`` that
        start with it, by SCAN, until ``limit`` (None: all)."""
        pattern = glob_literal(head) + "*"
        node = self.client.get_node_from_key(shard.base) if self._cluster else None

        def pages() -> Iterator[list[str]]:
            cursor: Any = 0
            while True:
                cursor, keys = self._command(
                    "SCAN", cursor, "MATCH", pattern, "COUNT", SCAN_COUNT, node=node
                )
                yield [_text(k)[len(head) :] for k in keys]
                if int(cursor) == 0:
                    return

        return _capped(pages(), limit)

    def entries(self, queue: str, index: str, limit: int | None = None) -> Iterator[list[str]]:
        """Pages of the ids ``index`` (a name of :data:`INDEXES` or ``queue:<lane>``) of
        ``queue`` holds, by ZSCAN, until ``limit`` (None: all); nothing for a key of
        another type (wrong_types names it)."""
        key = self.index_key(queue, index)

        def pages() -> Iterator[list[str]]:
            cursor: Any = 0
            while True:
                (reply,) = self._pipeline([("ZSCAN", key, cursor, "COUNT", INDEX_PAGE)])
                if isinstance(reply, Exception):
                    return
                cursor, flat = reply
                page = [_text(m[0] if isinstance(m, (tuple, list)) else m) for m in flat]
                if flat and not isinstance(flat[0], (tuple, list)):
                    page = page[::2]  # member, score, member, score ...
                yield page
                if int(cursor) == 0:
                    return

        return _capped(pages(), limit)

    def index_key(self, queue: str, index: str) -> str:
        shard = self.keys.shard(queue)
        if index.startswith("queue:"):
            return shard.queue_key(index[len("queue:") :])
        if index not in INDEXES:
            raise ValueError(f"no index {index!r}")
        return str(getattr(shard, index))

    def check(
        self, queue: str, ids: Sequence[str], *, fix: bool, lease_ms: int, index: str = ""
    ) -> list[Fix]:
        """repair.lua on one batch of ``ids`` of ``queue``: records (``index`` ''), or
        entries of ``index``; what it found (and, ``fix``, wrote)."""
        args = RepairArgs(int(fix), lease_ms, index).argv(ids)
        self.calls += 1
        raw = self.store.run_script("repair", [self.keys.shard(queue).base], args)
        return [Fix(*t) for t in triples(raw)]

    # -- Redis itself ---------------------------------------------------------------------

    def settings(self) -> list[Setting]:
        """maxmemory-policy, appendonly and save of every node jobs live on (each master
        of a cluster); a setting CONFIG refuses to show is given as '?'."""
        nodes: list[tuple[str, Any]] = (
            [(f"{n.host}:{n.port}", n) for n in self.client.get_primaries()]
            if self._cluster
            else [("", None)]
        )
        out: list[Setting] = []
        for name, node in nodes:
            values = {}
            for setting in ("maxmemory-policy", "appendonly", "save"):
                try:
                    reply = self._command("CONFIG", "GET", setting, node=node)
                except redis.ResponseError:
                    reply = {}
                if isinstance(reply, list):
                    reply = dict(zip(reply[::2], reply[1::2], strict=False))
                values[setting] = _text(reply.get(setting, "?"))
            out += _judged(name, values)
        return out


def _aside(kept: str, raw: Any) -> Aside:
    try:
        entry = orjson.loads(raw)
        if not isinstance(entry, dict):
            raise TypeError
    except (orjson.JSONDecodeError, TypeError):
        return Aside("?", kept, "?", "?", None, f"unreadable entry: {_text(raw)[:80]}")
    at = entry.get("at")
    return Aside(
        str(entry.get("key", "?")), str(entry.get("kept", kept)), str(entry.get("found", "?")),
        str(entry.get("want", "?")), int(at) if isinstance(at, (int, float)) else None,
        str(entry.get("note", "")),
    )  # fmt: skip


def _judged(node: str, values: dict[str, str]) -> list[Setting]:
    """The settings of one node that decide whether it keeps jobs: its eviction policy,
    and its persistence (AOF or RDB rules), each with the way it can lose jobs ('' if
    none)."""
    policy = values["maxmemory-policy"]
    evicts = policy not in ("noeviction", "?")
    aof, rdb = values["appendonly"], values["save"].strip()
    kept = f"appendonly {aof}, save {rdb or '(none)'}"
    unpersisted = aof == "no" and rdb == ""
    return [
        Setting(node, "maxmemory-policy", policy,
                "when full, Redis deletes keys: jobs vanish (use noeviction)" if evicts else ""),
        Setting(node, "persistence", kept,
                "none: a restart loses every job" if unpersisted else ""),
    ]  # fmt: skip
