"""What the checker judges: every job as Redis holds it, with the bookkeeping of its
executions, and the faults the harness injected (which processes it killed, and when).

Read from the real redis-server (or every master of the Redis Cluster) after the run has
drained, never through the proxy.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from jobkit.backend.keys import Keys
from stress.cluster import Kill
from stress.faults import FaultEvent
from stress.jobs import Book, loads
from stress.shards import Client, scan_shard, shards
from stress.workload import Kind

CHUNK = 300


@dataclass
class Run:
    """One execution of ``perform()``, as its bookkeeping recorded it."""

    token: str
    attempt: int
    pid: int
    pgid: int
    start_ms: int
    outcome: str | None = None  # ok | raised; None: it never ended
    end_ms: int | None = None


@dataclass
class JobView:
    """One job: its hash, its executions and where Redis still lists it."""

    id: str
    kind: Kind | None  # None: a job nobody was told about (an unacknowledged dispatch)
    record: dict[str, str]
    runs: list[Run]
    done_tokens: int  # final transitions since its first execution began (see stress.jobs)
    in_dead: bool
    in_running: bool
    in_scheduled: bool
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return self.record.get("status", "")

    def number(self, name: str) -> int:
        try:
            return int(self.record.get(name) or 0)
        except ValueError:
            return 0

    @property
    def raised(self) -> int:
        return sum(1 for r in self.runs if r.outcome == "raised")


def read_jobs(client: Client, book: Book, kinds: dict[str, Kind | None]) -> Iterator[JobView]:
    """Every job of ``kinds`` (id -> kind), read in pipelined chunks."""
    keys = Keys()
    ids = list(kinds)
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        pipe = client.pipeline(transaction=False)
        for job_id in chunk:
            shard = keys.of_job(job_id)
            pipe.hgetall(shard.job(job_id))
            pipe.hgetall(book.runs(job_id))
            pipe.hgetall(book.ends(job_id))
            pipe.llen(shard.done(job_id))
            pipe.zscore(shard.dead, job_id)
            pipe.zscore(shard.running, job_id)
            pipe.zscore(shard.scheduled, job_id)
        replies = pipe.execute()
        for i, job_id in enumerate(chunk):
            rec, runs, ends, tokens, dead, running, scheduled = replies[7 * i : 7 * i + 7]
            yield JobView(
                job_id,
                kinds[job_id],
                rec,
                _runs(runs, ends),
                int(tokens),
                dead is not None,
                running is not None,
                scheduled is not None,
                loads(rec.get("params")) or {},
            )


def _runs(runs: dict[str, str], ends: dict[str, str]) -> list[Run]:
    out = []
    for token, raw in runs.items():
        begin = loads(raw) or {}
        end = loads(ends.get(token)) or {}
        out.append(
            Run(
                token,
                int(begin.get("attempt", 0)),
                int(begin.get("pid", 0)),
                int(begin.get("pgid", 0)),
                int(begin.get("start_ms", 0)),
                end.get("outcome"),
                end.get("end_ms"),
            )
        )
    return sorted(out, key=lambda r: r.start_ms)


def scan_job_ids(client: Client) -> list[str]:
    """Every job hash in Redis, by id."""
    found = []
    for shard in shards(client):
        prefix = shard.job("")
        found += [k.removeprefix(prefix) for k in scan_shard(client, shard, prefix + "*")]
    return found


def leftovers(client: Client) -> dict[str, int]:
    """Entries left in queues, running and scheduled after the drain (should be none)."""
    out: dict[str, int] = {}
    for shard in shards(client):
        out[shard.running] = int(client.zcard(shard.running))
        out[shard.scheduled] = int(client.zcard(shard.scheduled))
        for key in scan_shard(client, shard, shard.queue_key("*")):
            out[key] = int(client.zcard(key))
    return out


class Kills:
    """Which executions the harness cut: by pid (a child, a supervisor) or by group."""

    def __init__(self, kills: Iterable[Kill]) -> None:
        self.by_pid: dict[int, list[int]] = {}
        self.by_group: dict[int, list[int]] = {}
        self.by_worker: dict[str, list[int]] = {}  # whole supervisors, by worker name
        self.orphaned: dict[int, tuple[str, int]] = {}  # child pid -> (its supervisor, when)
        for kill in kills:
            for pid in kill.orphans:
                self.orphaned[pid] = (kill.name, kill.at_ms)
            if kill.kind in ("redis", "master", "scheduler"):
                continue  # they run no job
            if kill.kind == "lone_supervisor":  # its children die with it
                self.by_worker.setdefault(kill.name, []).append(kill.at_ms)
            if kill.group is not None:
                self.by_group.setdefault(kill.group, []).append(kill.at_ms)
                self.by_worker.setdefault(kill.name, []).append(kill.at_ms)
            else:
                for pid in kill.pids:
                    self.by_pid.setdefault(pid, []).append(kill.at_ms)

    def killed_between(self, run: Run, until_ms: float) -> bool:
        """Whether the process of ``run`` was killed after it began and by ``until_ms``
        (a child dies with its supervisor, so a supervisor killed alone kills it too)."""
        times = self.by_pid.get(run.pid, []) + self.by_group.get(run.pgid, [])
        if run.pid in self.orphaned:
            times = [*times, self.orphaned[run.pid][1]]
        return any(run.start_ms - 5 <= t <= until_ms for t in times)

    def describe(self, run: Run) -> str:
        """One run, for a finding: attempt, pid, how it ended, what happened to it."""
        text = f"attempt {run.attempt} pid {run.pid} {run.outcome or 'never ended'}"
        if self.killed_between(run, float("inf")):
            text += ", killed"
        if run.pid in self.orphaned:
            name, at = self.orphaned[run.pid]
            text += f", its supervisor {name} killed alone {(at - run.start_ms) / 1000:+.1f}s in"
        return text

    def worker_killed_after(self, worker: str, claimed_ms: int) -> bool:
        """Whether the whole supervisor ``worker`` was killed after it claimed a job."""
        return any(t >= claimed_ms - 5 for t in self.by_worker.get(worker, []))


class Windows:
    """When each fault could strand a claimed job (leased, never run nor handed back):
    a kill, Redis going away (a cluster's master until its replica took over), or a reply
    lost, stalled or reset in flight.

    Not a scheduler kill (it holds no job). A supervisor killed alone takes its children
    with it (they die with their parent), so it strands claims as a whole-worker kill does.
    """

    def __init__(self, events: Iterable[FaultEvent], socket_timeout: float, lease: float):
        self.spans: list[tuple[float, float]] = []
        for e in events:
            if e.kind == "scheduler":
                continue
            if e.kind == "drop":
                if e.drop is None or not e.drop.fired.is_set():
                    continue
                start = e.drop.fired_at * 1000
                self.spans.append((start, start + socket_timeout * 1000))
            else:
                self.spans.append((float(e.at_ms), float(e.end_ms) + socket_timeout * 1000))
        # a claim at T is exposed to faults while its reply may be in flight or it is held
        self.before = (socket_timeout + 1.0) * 1000
        self.after = (lease + 1.0) * 1000

    def around(self, t_ms: float) -> bool:
        """A fault overlapped [t - socket timeout, t + lease] (a claim made at ``t_ms``)."""
        low, high = t_ms - self.before, t_ms + self.after
        return any(s <= high and e >= low for s, e in self.spans)

    def during(self, start_ms: float, end_ms: float) -> bool:
        """A fault overlapped the job's life."""
        return any(s <= end_ms and e >= start_ms for s, e in self.spans)
