"""One typed face per Lua script: the record of its ARGV and the parser of its reply. This
is the only place a script's field order is written in Python; each ``.lua`` header's
``ARGV`` and ``Returns`` signature lines say the same names, and
``tests/…/test_calls.py`` holds the two to each other, so a change on one side that
forgets the other fails a test.

A header's signature is the text of its ``ARGV`` line (continued over lines that end
with a comma) and of its ``Returns`` line up to a colon: names separated by commas;
``*(a, b)`` a group repeated to the end; ``[a, *b]`` an element that may come last, a
list of ``a`` then the rest as ``b``. Args are NamedTuples (a tuple is what a script call
takes, and it is built fastest: dispatch builds one per call), sent as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from jobkit.backend.face import Face
from jobkit.backend.flow_calls import FLOW_FACES
from jobkit.backend.upkeep_calls import UPKEEP_FACES
from jobkit.models import Claimed, JobSpec

# -- creating jobs ------------------------------------------------------------------------


class EnqueueArgs(NamedTuple):
    """enqueue.lua: what the N jobs of one call share, then (id, params) per job."""

    n: int
    spec: JobSpec
    check: int  # 1: ids the caller chose (or a unique class): each looked up first

    def argv(self, jobs: Iterable[tuple[str, str | bytes]]) -> list[Any]:
        out: list[Any] = [self.n, *self.spec, self.check]
        for job in jobs:
            out += job
        return out


ENQUEUE_ARGV = ("n", *JobSpec._fields, "check")
ENQUEUE_EACH = ("id", "params")


class EnqueueReply(NamedTuple):
    """enqueue.lua's answer for one job (``check`` 1): created or not, its status, and for
    a unique class the id of the job holding the params' lock."""

    created: bool
    status: str
    holder: str

    @classmethod
    def parse(cls, raw: Sequence[Any], job_id: str) -> EnqueueReply:
        holder = str(raw[2]) if len(raw) > 2 else job_id
        return cls(bool(raw[0]), str(raw[1]), holder)


class CronJob(NamedTuple):
    """The fields cron_fire.lua and cron_run.lua give each job they create."""

    name: str
    lane: str
    params: str | bytes
    priority: int
    max_attempts: int
    timeout: float
    result_ttl: int
    limits: str
    version: int  # the class's payload version (written above 1)


class CronFireArgs(NamedTuple):
    """cron_fire.lua: one schedule's plan, the fields its slots' jobs share, then
    (slot, job id) per slot to fire."""

    key: str
    next_slot: int
    skip_to: int
    missed: int
    n: int
    job: CronJob

    def argv(self, slots: Iterable[tuple[int, str]]) -> list[Any]:
        out: list[Any] = [self.key, self.next_slot, self.skip_to, self.missed, self.n, *self.job]
        for slot in slots:
            out += slot
        return out


CRON_FIRE_ARGV = ("key", "next_slot", "skip_to", "missed", "n", *CronJob._fields)
CRON_FIRE_EACH = ("slot", "id")


class CronFireReply(NamedTuple):
    """cron_fire.lua's answer: whether this call moved the cursor, then per slot looked
    at, a code and a detail."""

    advanced: bool
    results: list[tuple[int, str]]  # (code, detail)

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> CronFireReply:
        codes, details = raw[1::2], raw[2::2]
        return cls(bool(raw[0]), [(int(c), str(d)) for c, d in zip(codes, details, strict=False)])


class CronRunArgs(NamedTuple):
    """cron_run.lua: the schedule, the fresh job's id and its fields."""

    key: str
    id: str
    job: CronJob

    def argv(self) -> list[Any]:
        return [self.key, self.id, *self.job]


CRON_RUN_ARGV = ("key", "id", *CronJob._fields)


class CronPauseArgs(NamedTuple):
    """cron_pause.lua."""

    action: str  # 'pause' | 'resume'


# -- claiming and leases ------------------------------------------------------------------


class ClaimArgs(NamedTuple):
    """claim.lua, for one queue's lanes (one group: this worker asks queues one by one)."""

    worker: str
    lease_ms: int
    want: int
    request: str
    strict: int  # 1: dead-letter jobs whose id, name or params are not UTF-8 (see claim.lua)
    groups: int
    size: int  # lanes in the group
    lanes: tuple[str, ...]

    @classmethod
    def of(cls, worker: str, lease_ms: int, want: int, request: str,
           lanes: Sequence[str]) -> ClaimArgs:  # fmt: skip
        return cls(worker, lease_ms, want, request, 0, 1, len(lanes), tuple(lanes))

    def argv(self) -> list[Any]:
        return [*self[:7], *self.lanes]

    def strictly(self) -> ClaimArgs:
        return self._replace(strict=1)


CLAIM_ARGV = ClaimArgs._fields[:6]
CLAIM_EACH = ("size", "lanes")


class ClaimReply(NamedTuple):
    """claim.lua's answer: the jobs leased, and the ms until a job held back by its
    class's rate may be claimed (0: none). (A NamedTuple: one is parsed per claim, on
    the worker's hot path, and a frozen dataclass is built several times slower.)"""

    jobs: list[Claimed]
    rate_wait_ms: int

    @classmethod
    def parse(cls, raw: list[Any]) -> ClaimReply:
        # claim.lua validated every field it returns (attempts and timeout are numbers)
        width = _CLAIM_WIDTH
        rate_wait_ms, extras = 0, None
        if len(raw) % width:  # the last element: the rate's wait and extras
            *raw, (rate_wait_ms, extras) = raw
        jobs = [
            Claimed(raw[i], str(raw[i + 1]), raw[i + 2], raw[i + 3], int(raw[i + 4]),
                    float(raw[i + 5] or 0), raw[i + 6])
            for i in range(0, len(raw), width)
        ]  # fmt: skip
        if extras:  # only jobs stored with a version > 1 or a trace context
            for k in range(0, len(extras), 3):
                at = int(extras[k]) - 1
                jobs[at] = jobs[at]._replace(version=int(extras[k + 1]), trace=extras[k + 2])
        return cls(jobs, int(rate_wait_ms))


# a job's 7 fields; version and trace come in the last element (see claim.lua), so a
# job with neither costs nothing more
CLAIM_RETURNS_EACH = Claimed._fields[:7]
_CLAIM_WIDTH = len(CLAIM_RETURNS_EACH)
CLAIM_RETURNS_TAIL = ("rate_wait_ms", "extras")


# complete.lua, per job: one call carries many. A plain tuple, not a NamedTuple: one is
# built for every job, and a NamedTuple's construction and teardown cost ~700
# instructions more (a tenth of a microsecond of the worker's ~80 per job).
Completion = tuple[str, str, "str | bytes", int]
COMPLETION_EACH = ("id", "token", "result", "ttl")


class HeartbeatArgs(NamedTuple):
    """heartbeat.lua: the lease, then (id, token) per held job."""

    lease_ms: int

    def argv(self, held: Iterable[tuple[str, str]]) -> list[Any]:
        out: list[Any] = [self.lease_ms]
        for pair in held:
            out += pair
        return out


class MarkArgs(NamedTuple):
    """mark.lua: what to mark, then (id, token) per attempt."""

    what: str  # 'started' | 'crashed'

    def argv(self, held: Iterable[tuple[str, str]]) -> list[Any]:
        out: list[Any] = [self.what]
        for pair in held:
            out += pair
        return out


class ReapArgs(NamedTuple):
    """reap.lua."""

    max_crashes: int
    limit: int


def pairs(raw: Sequence[Any]) -> list[tuple[str, str]]:
    """A flat reply of pairs (reap.lua's id, outcome) as pairs."""
    return [(str(raw[i]), str(raw[i + 1])) for i in range(0, len(raw), 2)]


class PromoteArgs(NamedTuple):
    """promote.lua."""

    limit: int


class PromoteReply(NamedTuple):
    """promote.lua's answer: jobs promoted, and ms until the next due one (-1: none)."""

    promoted: int
    wait_ms: int

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> PromoteReply:
        return cls(int(raw[0]), int(raw[1]))


# -- one job ------------------------------------------------------------------------------


class FailArgs(NamedTuple):
    """fail.lua: end an attempt in failure, retried or dead."""

    id: str
    token: str
    action: str  # 'retry' | 'dead'
    delay_ms: int
    reason: str
    error: str | bytes
    ttl: int
    error_type: str
    message: str


class ProgressArgs(NamedTuple):
    """progress.lua: how far the attempt holding lease ``token`` has got."""

    id: str
    token: str
    fraction: str  # repr of a float from 0 to 1: read back exactly
    message: str  # '': none


class RequeueArgs(NamedTuple):
    """requeue.lua."""

    id: str
    token: str
    uncount: int


class ReviveArgs(NamedTuple):
    """revive.lua."""

    id: str


class CancelArgs(NamedTuple):
    """cancel.lua."""

    id: str
    ttl: int


class CancelledArgs(NamedTuple):
    """cancelled.lua."""

    id: str
    token: str
    ttl: int


_FLAG = ("flag",)  # a 1 / 0 answer, or a code: each script's header says what it means
FACES: dict[str, Face] = {
    "enqueue": Face(ENQUEUE_ARGV, ENQUEUE_EACH, returns=("reply",)),
    "claim": Face(
        CLAIM_ARGV, CLAIM_EACH, returns_each=CLAIM_RETURNS_EACH, returns_tail=CLAIM_RETURNS_TAIL
    ),
    "complete": Face(each=COMPLETION_EACH, returns_each=_FLAG),
    "fail": Face(FailArgs._fields, returns=_FLAG),
    "heartbeat": Face(HeartbeatArgs._fields, ("id", "token"), returns_each=("code",)),
    "mark": Face(MarkArgs._fields, ("id", "token"), returns_each=_FLAG),
    "reap": Face(ReapArgs._fields, returns_each=("id", "outcome")),
    "promote": Face(PromoteArgs._fields, returns=PromoteReply._fields),
    "requeue": Face(RequeueArgs._fields, returns=_FLAG),
    "revive": Face(ReviveArgs._fields, returns=("code",)),
    "purge": Face(each=("id",), returns=("count",)),
    "cancel": Face(CancelArgs._fields, returns=("code",)),
    "cancelled": Face(CancelledArgs._fields, returns=_FLAG),
    "cron_fire": Face(
        CRON_FIRE_ARGV, CRON_FIRE_EACH, returns=("advanced",), returns_each=("code", "detail")
    ),
    "cron_pause": Face(CronPauseArgs._fields, returns=_FLAG),
    "cron_run": Face(CRON_RUN_ARGV, returns=("created", "status")),
    "progress": Face(ProgressArgs._fields, returns=_FLAG),
}

# the dependency scripts' and the upkeep scripts' faces live with their families
# (flow_calls.py, upkeep_calls.py)
FACES.update(FLOW_FACES)
FACES.update(UPKEEP_FACES)
