"""`jobkit doctor` finds what an index lost and `jobkit repair` puts it back, while
workers run: each index DEL'd outright with jobs queued, running, scheduled, dead and
finished; then every job ends as it would have (none lost, none succeeded twice), a
second repair changes nothing and doctor is healthy again. A running job whose worker
died and whose lease entry was lost is reaped once repaired, and retried."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import redis

import jobkit
from jobkit import JobHandle, Status
from jobkit.backend.keys import Keys
from tests.conftest import HEARTBEAT, LEASE, PREFIX, REPO_ROOT, StartWorker, clean_env, wait_until
from tests.support import jobs
from tests.support.redis_server import RedisServer
from tests.support.repair_jobs import TALLY, Doomed, Tally

pytestmark = pytest.mark.slow

LONG = 9.0  # seconds the running job runs: past doctor, repair and repair again
DELAY = 9.0  # seconds the scheduled jobs wait
APP = ("-A", "tests.support.repair_jobs")


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m jobkit <args>`` at 80 columns, with the tests' lease."""
    environ = clean_env(COLUMNS="80", JOBKIT_LEASE=str(LEASE), JOBKIT_HEARTBEAT=str(HEARTBEAT))
    return subprocess.run(
        [sys.executable, "-m", "jobkit", *args, "--redis-url", url],
        cwd=REPO_ROOT, env=environ, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def cli_json(url: str, *args: str, code: int | None) -> dict[str, Any]:
    """The JSON a command prints; its exit code is ``code`` (None: 0 or 1)."""
    done = cli(url, *args, "--json")
    assert done.returncode in ((0, 1) if code is None else (code,)), done.stdout + done.stderr
    found: dict[str, Any] = orjson.loads(done.stdout)
    return found


@dataclass
class Placed:
    """The jobs of one queue, by where they wait when an index is lost."""

    queue: str
    dead: JobHandle[Any]
    finished: list[JobHandle[Any]]
    running: JobHandle[Any]
    queued: list[JobHandle[Any]] = field(default_factory=list)
    scheduled: list[JobHandle[Any]] = field(default_factory=list)

    def expected(self, index: str) -> int:
        """How many of these jobs ``index`` holds."""
        return {
            "running": 1, "dead": 1, "scheduled": len(self.scheduled),
            "finished": len(self.finished), "queue": len(self.queued),
            "created": 2 + len(self.finished) + len(self.queued) + len(self.scheduled),
        }[index]  # fmt: skip

    def tallied(self) -> list[JobHandle[Any]]:
        return [*self.finished, self.running, *self.queued, *self.scheduled]


def place_jobs(client: Any, queue: str) -> Placed:
    """Jobs of ``queue`` dead, finished, running (LONG), queued behind it (a worker of
    one slot serves the queue) and scheduled (DELAY)."""
    dead = Doomed.dispatch(queue=queue)
    finished = [Tally.dispatch(queue=queue) for _ in range(3)]
    for handle in finished:
        handle.result(timeout=20)
    wait_until(lambda: dead.status is Status.DEAD, timeout=20, what="the dead job")
    marker = f"repair-tests:started:{queue}"
    running = Tally.dispatch(seconds=LONG, marker=marker, queue=queue)
    wait_until(lambda: client.exists(marker), timeout=20, what="the long job to start")
    placed = Placed(queue, dead, finished, running)
    placed.queued = [Tally.dispatch(queue=queue) for _ in range(4)]
    placed.scheduled = [Tally.dispatch(queue=queue, delay=DELAY) for _ in range(2)]
    return placed


def index_name(index: str, queue: str) -> str:
    return f"queue:{queue}" if index == "queue" else index


def lose_and_rebuild(
    url: str, client: Any, keys: Keys, placed: Sequence[Placed], lost: Sequence[str]
) -> None:
    """DEL the ``lost`` indexes of every queue; doctor reports what they held and exits 1;
    repair puts it back; a second repair changes nothing; every job ends as it would
    have, once; doctor's queues are then healthy."""
    for p in placed:
        shard = keys.shard(p.queue)
        for index in lost:
            key = shard.queue_key(p.queue) if index == "queue" else getattr(shard, index)
            assert client.delete(key) == 1, key

    # a live worker's heartbeat may put its lost lease back itself before repair does
    healing = "running" in lost
    report = cli_json(url, "doctor", "--full", *APP, code=1 if not healing else None)
    by_queue = {q["queue"]: q for q in report["queues"]}
    for p in placed:
        findings = {(f["where"], f["kind"]): f for f in by_queue[p.queue]["findings"]}
        for index in lost:
            kind = "no_lease" if index == "running" else "orphan"
            finding = findings.pop((index_name(index, p.queue), kind), None)
            count = 0 if finding is None else finding["count"]
            assert count == p.expected(index) or (index == "running" and count == 0), finding
        assert not findings, findings  # nothing else is wrong
        assert by_queue[p.queue]["complete"]
    if not healing:
        shown = cli(url, "doctor")
        assert shown.returncode == 1
        assert all(len(line) <= 80 for line in shown.stdout.splitlines()), shown.stdout
        assert "scanned every" in shown.stdout
        dry = cli_json(url, "repair", "--dry-run", code=0)
        assert dry["changes"] == sum(p.expected(i) for p in placed for i in lost)
        again = cli_json(url, "doctor", "--full", code=1)  # the dry run wrote nothing
        assert not again["healthy"]

    repaired = cli_json(url, "repair", code=0)
    by_queue = {q["queue"]: q for q in repaired["queues"]}
    for p in placed:
        counts = {(c["index"], c["state"]): c["count"] for c in by_queue[p.queue]["counts"]}
        if healing:  # put back by repair, or by the heartbeat already
            assert counts in ({}, {("running", "added"): 1}), counts
        else:
            assert counts == {(index_name(i, p.queue), "added"): p.expected(i) for i in lost}
    second = cli_json(url, "repair", code=0)
    assert second["changes"] == 0, second
    assert "nothing to repair" in cli(url, "repair").stdout

    for p in placed:
        for handle in p.tallied():
            handle.result(timeout=LONG + DELAY + 30)
        assert p.dead.status is Status.DEAD
    tally = client.hgetall(TALLY)
    ids = [h.id for p in placed for h in p.tallied()]
    assert {i: tally.get(i) for i in ids} == dict.fromkeys(ids, "1")  # each succeeded once
    assert len(tally) == len(ids)

    healthy = cli_json(url, "doctor", "--full", code=1 if risky_settings(url) else 0)
    assert all(q["healthy"] for q in healthy["queues"]), healthy


def risky_settings(url: str) -> bool:
    """Whether doctor finds the Redis settings at ``url`` can lose jobs."""
    report = orjson.loads(cli(url, "doctor", "--json").stdout)
    return any(s["risk"] for s in report["settings"])


@pytest.fixture(scope="module")
def durable_server() -> Iterator[RedisServer]:
    """A Redis with an append-only file: doctor's settings check passes on it."""
    with RedisServer(appendonly=True) as server:
        yield server


@pytest.fixture
def durable(durable_server: RedisServer) -> Iterator[redis.Redis]:
    client = durable_server.client(decode_responses=True)
    client.flushall()
    jobkit.configure(redis_url=durable_server.url, lease=LEASE, heartbeat=HEARTBEAT)
    try:
        yield client
    finally:
        jobkit.get_store().redis.close()
        client.close()


@pytest.mark.parametrize(
    "lost", [["running"], ["queue"], ["scheduled"], ["dead", "finished", "created"]], ids="+".join
)
def test_a_lost_index_is_found_and_rebuilt_while_workers_run(
    durable: redis.Redis, durable_server: RedisServer, start_worker: StartWorker, lost: list[str]
) -> None:
    start_worker(queues="default", concurrency=1, extra=APP)
    placed = place_jobs(durable, "default")
    lose_and_rebuild(durable_server.url, durable, Keys(PREFIX), [placed], lost)
    assert not risky_settings(durable_server.url)


def test_a_job_of_a_dead_worker_whose_lease_was_lost_is_reaped_and_retried(
    durable: redis.Redis, durable_server: RedisServer, start_worker: StartWorker
) -> None:
    keys = Keys(PREFIX)
    first = start_worker(queues="default", concurrency=1)
    handle = jobs.CountOnce.dispatch(marker="started", counter="done", first_sleep=30)
    started = keys.shard("default").started
    wait_until(lambda: durable.hexists(started, f"1:{handle.id}"), timeout=20, what="the mark")
    first.kill()
    durable.delete(keys.shard("default").running)
    start_worker(queues="default", concurrency=1)
    time.sleep(2 * LEASE)  # the new worker's reaper runs meanwhile
    assert handle.status is Status.RUNNING  # stranded: no lease for the reaper to find

    report = cli_json(durable_server.url, "doctor", code=1)
    [finding] = report["queues"][0]["findings"]
    assert (finding["kind"], finding["where"], finding["examples"]) == (
        "no_lease", "running", [handle.id]
    )  # fmt: skip
    repaired = cli_json(durable_server.url, "repair", code=0)
    assert repaired["queues"][0]["counts"] == [{"index": "running", "state": "added", "count": 1}]

    assert handle.result(timeout=LEASE + 20) == 2  # reaped, retried per CountOnce's policy
    rec = handle.record
    assert rec is not None and rec.crashes == 1 and rec.attempts == 2
    assert durable.get("done") == "1"
    assert cli(durable_server.url, "doctor").returncode == 0
