"""Every Redis key jobkit uses is built here and nowhere else.

All keys carry the hash tag ``{prefix}``, so one Lua script may touch any of them on
Redis Cluster; scripts that build keys themselves (batch claim, reaper) receive
:attr:`Keys.base` in KEYS and append the same suffixes as this module.

==========================  ======  ==================================================
key                         type    holds
==========================  ======  ==================================================
``{p}:job:<id>``            hash    one job: name, params, status, attempts, result ...
``{p}:queue:<lane>``        zset    ready job ids; score = priority band + sequence
``{p}:wake:<lane>``         list    tokens that wake idle workers blocked in BLPOP
``{p}:running``             zset    job id -> lease deadline (ms, Redis TIME)
``{p}:scheduled``           zset    job id -> due time (ms): delays and back-offs
``{p}:dead``                zset    dead-lettered job id -> time (ms)
``{p}:done:<id>``           list    completion token; result waiters block on it
``{p}:waiter:<id>``         string  present (short TTL) while someone waits for the job's
                                    outcome: only then is a completion token pushed
``{p}:seq``                 string  FIFO sequence counter
``{p}:lanes``               set     every lane a job was ever sent to
``{p}:workers``             zset    worker name -> last heartbeat (ms)
``{p}:worker:<name>``       hash    one worker: host, pid, queues, current jobs, counts
``{p}:stats``               hash    processed / failed / dead totals
``{p}:marker``              string  written by the first worker, never deleted: a worker
                                    that finds it gone, or changed, knows Redis lost its data
``{p}:schedule:<key>``      hash    one cron schedule: cursor (last handled slot), last and
                                    next fire times, last job id, fired / skipped counts
``{p}:sched:wake``          pubsub  channel: a delayed job due before any other was added,
                                    so sleeping schedulers re-plan (not a key; no data)
==========================  ======  ==================================================

A *lane* is a queue name, or ``queue|tag1,tag2`` for jobs that need tagged workers.
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


class Keys:
    """Key builder for one prefix."""

    __slots__ = (
        "base",
        "dead",
        "lanes",
        "marker",
        "running",
        "sched_wake",
        "scheduled",
        "seq",
        "stats",
        "workers",
    )

    def __init__(self, prefix: str = "jobkit") -> None:
        self.base = "{" + prefix + "}"
        self.running = f"{self.base}:running"
        self.scheduled = f"{self.base}:scheduled"
        self.dead = f"{self.base}:dead"
        self.seq = f"{self.base}:seq"
        self.lanes = f"{self.base}:lanes"
        self.workers = f"{self.base}:workers"
        self.stats = f"{self.base}:stats"
        self.marker = f"{self.base}:marker"
        self.sched_wake = f"{self.base}:sched:wake"

    def job(self, job_id: str) -> str:
        return f"{self.base}:job:{job_id}"

    def queue(self, lane: str) -> str:
        return f"{self.base}:queue:{lane}"

    def wake(self, lane: str) -> str:
        return f"{self.base}:wake:{lane}"

    def done(self, job_id: str) -> str:
        return f"{self.base}:done:{job_id}"

    def waiter(self, job_id: str) -> str:
        return f"{self.base}:waiter:{job_id}"

    def worker(self, name: str) -> str:
        return f"{self.base}:worker:{name}"

    def schedule(self, key: str) -> str:
        """State of the cron schedule ``key`` (see :class:`jobkit.schedule.BoundSchedule`)."""
        return f"{self.base}:schedule:{key}"

    def job_id_of(self, key: str) -> str:
        """The id inside a ``job:<id>`` key."""
        return key.removeprefix(f"{self.base}:job:")
