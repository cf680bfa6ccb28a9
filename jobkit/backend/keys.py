"""Every Redis key jobkit uses is built here and nowhere else.

Keys are sharded by queue. Every key of one queue carries that queue's hash tag
``{prefix:queue}``, so each transition (one Lua script) touches one hash slot, and on a
Redis Cluster different queues live on different masters. Scripts receive the shard's
base (``{prefix:queue}``) as KEYS[1] and build the shard's keys from it, appending the
suffixes below (their headers say which): keys of one slot, by construction. Keys that
belong to no queue live in the global slot ``{prefix}``.

A job id is ``<queue>:<key>`` (``default:3f2a…``; ``images:resize-42`` for a key the
caller chose): the id names its shard, so any job is found from its id alone, with no
lookup table to keep in step (a table would be a second write, to another slot, on
every dispatch) and no search of every shard. Queue names cannot hold ``:``.

==============================  ======  ==============================================
per queue: ``{p:q}:…``          type    holds
==============================  ======  ==============================================
``job:<id>``                    hash    one job: name, params, status, attempts, result;
                                        ``progress*`` fields: how far the attempt of
                                        ``progress_lease`` got (progress.lua)
``queue:<lane>``                zset    ready job ids; score = priority band + sequence
``wake:<lane>``                 list    tokens that wake idle workers blocked in BLPOP
``running``                     zset    job id -> lease deadline (ms, Redis TIME)
``scheduled``                   zset    job id -> due time (ms): delays and back-offs
``dead``                        zset    dead-lettered job id -> time (ms)
``finished``                    zset    succeeded or cancelled job id -> time it ended
                                        (ms); entries older than the records kept are
                                        trimmed by the workers' chores (``jobkit jobs``)
``created``                     zset    every job the queue holds -> time it was created
                                        (ms): the listing's one order that no status
                                        change moves; an entry leaves with its record
                                        (purge, drain, the finished index's trim)
``done:<id>``                   list    completion token; result waiters block on it
``waiter:<id>``                 string  present (short TTL) while someone waits for the
                                        job's outcome: only then is a token pushed
``claim:<request>``             list    what one claim request leased (id, token, lane
                                        ...), for the same request sent again
``corrupt:<id>``                any     a record found under ``job:<id>`` that was no hash
``aside:<name>:<ms>``           any     a shared key of this queue (``running``,
                                        ``queue:<lane>``...: ``<name>``) found holding
                                        the wrong type, renamed at ``<ms>`` by the script
                                        that met it, which went on with an empty key
``asides``                      hash    each key set aside (its ``aside:`` name) -> JSON
                                        ``{key, found, want, kept, at, note}``: what
                                        ``jobkit doctor`` and the workers' logs report
``seq``                         string  FIFO sequence counter
``paused``                      string  present while the queue is paused: claims
                                        lease nothing from it (dispatch still works)
``lanes``                       set     every tagged lane of the queue a job was sent to
``stats``                       hash    succeeded / failed / dead totals
``active:<class>``              set     ids of the running attempts of a job class with
                                        a ``concurrency`` limit (claim.lua adds, the
                                        scripts that end an attempt remove)
``rate``                        hash    class with a ``rate_limit`` -> the earliest time
                                        (ms) claim.lua may lease its next job
``unique:<digest>``             string  the id of the active job of a ``unique`` class
                                        with these params (digest: SHA-1 of class and
                                        params JSON); PX for ``unique_for``
``events``                      stream  every state change of the queue's jobs (id, class,
                                        from, to, attempt, worker, ms, reason), capped
                                        by JOBKIT_EVENTS_MAXLEN / _MAX_AGE (about); its
                                        consumer group ``archivers`` (ARCHIVE_GROUP) is
                                        what ``jobkit archiver`` has read and archived
``schedule:<key>``              hash    one cron schedule of a job class of this queue:
                                        cursor (last handled slot), last and next fire
                                        times, last job id, fired / skipped counts;
                                        ``paused`` (ms) while paused, ``resumed_at`` (ms)
                                        of the last resume (no slot due before it
                                        fires), ``runs_now`` (jobs run by hand)
``sched:wake``                  pubsub  channel: a delayed job due before any other of
                                        the queue was added (not a key; no data)
==============================  ======  ==============================================

==============================  ======  ==============================================
global: ``{p}:…``               type    holds
==============================  ======  ==============================================
``queues``                      set     every queue a job was sent to or a worker serves
``workers``                     zset    worker name -> last heartbeat (ms)
``worker:<name>``               hash    one worker: host, pid, queues, current jobs, counts
``marker``                      string  written by the first worker, never deleted: a
                                        worker that finds it gone, or changed, knows
                                        Redis lost its data
``audit``                       stream  every write through the HTTP API: when, what,
                                        how many jobs, which role (capped)
``bulk:<id>``                   hash    one bulk action's filters and progress (TTL)
``aside:<name>:<ms>``           any     a key above (``queues``, ``workers``...) found
                                        holding the wrong type, renamed by the script
                                        that met it (worker.lua, register.lua)
``asides``                      hash    each global key set aside, as a queue's
                                        ``asides`` (``jobkit doctor``'s global section)
==============================  ======  ==============================================

A *lane* is a queue name, or ``queue|tag1,tag2`` for jobs that need tagged workers; a
lane's keys live in its queue's shard.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import combinations

TAG_SEPARATOR = "|"


def lane_name(queue: str, tags: Iterable[str] = ()) -> str:
    """The lane a job with ``tags`` travels in: tags sorted, so the same set is one lane."""
    ordered = sorted(set(tags))
    return f"{queue}{TAG_SEPARATOR}{','.join(ordered)}" if ordered else queue


def worker_lanes(queue: str, tags: Iterable[str]) -> list[str]:
    """Lanes a worker carrying ``tags`` serves on ``queue``: untagged, then every tag subset."""
    carried = sorted(set(tags))
    lanes = [queue]
    for size in range(1, len(carried) + 1):
        lanes.extend(lane_name(queue, combo) for combo in combinations(carried, size))
    return lanes


def split_lane(lane: str) -> tuple[str, frozenset[str]]:
    """Inverse of :func:`lane_name`."""
    queue, _, tags = lane.partition(TAG_SEPARATOR)
    return queue, frozenset(t for t in tags.split(",") if t)


def every_tag_lanes(groups: Iterable[Sequence[str]], tagged: Iterable[str]) -> list[list[str]]:
    """For ``--tags '*'``: each group's queue (its first lane), then every lane of
    ``tagged`` on that queue, sorted."""
    tagged = list(tagged)
    return [[g[0], *sorted(lane for lane in tagged if split_lane(lane)[0] == g[0])] for g in groups]


# the consumer group of every queue's ``events`` stream that ``jobkit archiver`` reads in
ARCHIVE_GROUP = "archivers"
# the consumer group of every queue's ``notices`` stream that workers deliver from
NOTICE_GROUP = "deliverers"

QUEUE_SEPARATOR = ":"  # between a job id's queue and its key


def job_id(queue: str, key: str) -> str:
    """The id of the job ``key`` of ``queue`` (see the module doc)."""
    return f"{queue}{QUEUE_SEPARATOR}{key}"


def queue_of(job_id: str) -> str | None:
    """The queue a job id names, or None for an id that names none."""
    queue, sep, key = job_id.partition(QUEUE_SEPARATOR)
    return queue if sep and queue and key else None


FENCE = ":fence"


def fenced(keys: Sequence[str]) -> tuple[str, ...]:
    """``keys`` as a script declares them: the fence of their slot after them.

    The fence (``{tag}:fence``) is a key that never exists. Declaring it makes Redis
    Cluster refuse the script while its slot is moving between masters: the source answers
    ASK (a declared key is missing there), and the target answers TRYAGAIN (a multi-key
    call with keys missing), so no script ever runs on a half-moved shard; once the slot
    has moved, the target runs it. On one node the fence costs nothing. Scripts ignore it.
    """
    first = keys[0]
    return (*keys, first[: first.index("}") + 1] + FENCE)


class Shard:
    """The keys of one queue (see the module doc): all in the slot of its hash tag."""

    __slots__ = (
        "asides",
        "base",
        "created",
        "dead",
        "events",
        "finished",
        "lanes",
        "notices",
        "paused",
        "queue",
        "rate",
        "running",
        "sched_wake",
        "scheduled",
        "seq",
        "started",
        "stats",
        "versioned",
        "waited",
    )

    def __init__(self, prefix: str, queue: str) -> None:
        self.queue = queue
        self.base = "{" + prefix + ":" + queue + "}"
        self.running = f"{self.base}:running"
        self.scheduled = f"{self.base}:scheduled"
        self.dead = f"{self.base}:dead"
        self.finished = f"{self.base}:finished"
        self.created = f"{self.base}:created"
        self.seq = f"{self.base}:seq"
        self.lanes = f"{self.base}:lanes"
        self.stats = f"{self.base}:stats"
        self.paused = f"{self.base}:paused"
        self.sched_wake = f"{self.base}:sched:wake"
        self.events = f"{self.base}:events"
        self.rate = f"{self.base}:rate"
        # attempts begun: "<token>:<id>" fields, written by the child running each as it
        # begins, dropped as it ends (see Leasing.tell_started)
        self.started = f"{self.base}:started"
        # shared keys found holding the wrong type and set aside (see aside())
        self.asides = f"{self.base}:asides"
        # what ended here, for jobs of other queues waiting for it (a stream: see flows)
        self.notices = f"{self.base}:notices"
        # markers: some job of this queue was stored with a version or a trace context
        # (claim.lua reads those fields only then), or was waited for (complete.lua
        # looks for dependants only then); set for good, by the scripts
        self.versioned = f"{self.base}:versioned"
        self.waited = f"{self.base}:waited"

    def job(self, job_id: str) -> str:
        return f"{self.base}:job:{job_id}"

    def queue_key(self, lane: str) -> str:
        """The ready set of ``lane`` (a lane of this queue)."""
        return f"{self.base}:queue:{lane}"

    def wake(self, lane: str) -> str:
        return f"{self.base}:wake:{lane}"

    def done(self, job_id: str) -> str:
        return f"{self.base}:done:{job_id}"

    def waiter(self, job_id: str) -> str:
        return f"{self.base}:waiter:{job_id}"

    def claim(self, request: str) -> str:
        return f"{self.base}:claim:{request}"

    def corrupt(self, job_id: str) -> str:
        return f"{self.base}:corrupt:{job_id}"

    def aside(self, key: str, at_ms: int) -> str:
        """Where the shared key ``key`` of this shard, found holding the wrong type at
        ``at_ms``, is kept (_lib.lua's set_aside renames it)."""
        return f"{self.base}:aside:{key[len(self.base) + 1 :]}:{at_ms}"

    def dependants(self, job_id: str) -> str:
        """The jobs waiting for ``job_id`` (a job of this queue): id -> takes its result."""
        return f"{self.base}:dependants:{job_id}"

    def inputs(self, job_id: str) -> str:
        """What ``job_id`` (a waiting job of this queue) was told of its dependencies."""
        return f"{self.base}:inputs:{job_id}"

    def active(self, job_class: str) -> str:
        """Ids of the running attempts of ``job_class`` (one with a concurrency limit)."""
        return f"{self.base}:active:{job_class}"

    def unique(self, digest: str) -> str:
        """The lock on a unique class's params (see enqueue.lua)."""
        return f"{self.base}:unique:{digest}"

    def schedule(self, key: str) -> str:
        """State of the cron schedule ``key`` (see :class:`jobkit.cron.BoundSchedule`)."""
        return f"{self.base}:schedule:{key}"


class Keys:
    """Key builder for one prefix: the global slot's keys, and each queue's shard."""

    __slots__ = (
        "_shards",
        "asides",
        "audit",
        "base",
        "marker",
        "prefix",
        "queues",
        "sched_wake_pattern",
        "workers",
    )

    def __init__(self, prefix: str = "jobkit") -> None:
        self.prefix = prefix
        self.base = "{" + prefix + "}"
        self.queues = f"{self.base}:queues"
        self.workers = f"{self.base}:workers"
        self.marker = f"{self.base}:marker"
        self.audit = f"{self.base}:audit"
        self.asides = f"{self.base}:asides"  # global keys set aside (see the table)
        # every queue's sched:wake channel (a pattern for PSUBSCRIBE)
        self.sched_wake_pattern = "{" + prefix + ":*}:sched:wake"
        self._shards: dict[str, Shard] = {}

    def shard(self, queue: str) -> Shard:
        """The keys of ``queue`` (made once per queue)."""
        found = self._shards.get(queue)
        if found is None:
            found = self._shards[queue] = Shard(self.prefix, queue)
        return found

    def of_job(self, job_id: str) -> Shard:
        """The shard a job id names; ValueError for an id that names no queue."""
        queue = queue_of(job_id)
        if queue is None:
            raise ValueError(f"job id {job_id!r} names no queue (ids are '<queue>:<key>')")
        return self.shard(queue)

    def job(self, job_id: str) -> str:
        """A job's hash, in the shard its id names."""
        return self.of_job(job_id).job(job_id)

    def lane(self, lane: str) -> Shard:
        """The shard of ``lane``'s queue."""
        return self.shard(split_lane(lane)[0])

    def queue(self, lane: str) -> str:
        """The ready set of ``lane``, in its queue's shard."""
        return self.lane(lane).queue_key(lane)

    def wake(self, lane: str) -> str:
        return self.lane(lane).wake(lane)

    def done(self, job_id: str) -> str:
        return self.of_job(job_id).done(job_id)

    def waiter(self, job_id: str) -> str:
        return self.of_job(job_id).waiter(job_id)

    def worker(self, name: str) -> str:
        return f"{self.base}:worker:{name}"

    def bulk(self, action_id: str) -> str:
        """One bulk action's filters and progress (see :mod:`jobkit.ops.bulk`)."""
        return f"{self.base}:bulk:{action_id}"
