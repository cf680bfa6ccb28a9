"""An attempt is recorded as begun before perform() begins: a whole worker (supervisor
and children) SIGKILLed at any moment of a job's first 50 ms has its attempt counted,
so the attempts a job's record holds are the times perform() began, never more than
its class allows, and only jobs claimed ahead and never begun go back uncounted."""

from __future__ import annotations

import collections
import os
import random
import signal
import time
from pathlib import Path

import pytest

from jobkit import Status
from tests.conftest import Env, StartWorker, wait_until
from tests.support.start_jobs import NotesStart

KILLS = 200
# Two jobs a child: one runs, one waits claimed ahead, never begun when the kill comes (a
# job claimed ahead and returned ten times is dead-lettered as unreadable: see reap.lua)
APP = ("-A", "tests.support.start_jobs", "--prefetch", "2")


def _starts(log: Path) -> collections.Counter[str]:
    return collections.Counter(log.read_text().split()) if log.exists() else collections.Counter()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_attempts_equal_the_times_perform_began_under_random_kills(
    env: Env, start_worker: StartWorker, tmp_path: Path
) -> None:
    log = tmp_path / "starts.log"
    handles = [NotesStart.dispatch(log=str(log)) for _ in range(KILLS // 2 + 40)]
    rng = random.Random(20261207)
    for _ in range(KILLS):
        seen = sum(_starts(log).values())
        worker = start_worker(extra=APP)
        wait_until(lambda n=seen: sum(_starts(log).values()) > n, timeout=15, interval=0.001)
        time.sleep(rng.uniform(0, 0.05))  # somewhere in the job's first 50 ms
        os.killpg(worker.pid, signal.SIGKILL)  # the whole worker, at once
        worker.kill()  # reap it, and have Redis drop its connections

    start_worker(extra=APP, concurrency=2)
    final = {Status.SUCCEEDED, Status.DEAD}
    wait_until(lambda: all(h.status in final for h in handles), timeout=120)
    starts = _starts(log)
    for handle in handles:
        record = env.store.reads.get(handle.id)
        assert record is not None
        assert record.attempts == starts[handle.id], (handle.id, record.status)
        assert record.attempts <= NotesStart.retry.max_attempts
    assert sum(starts.values()) >= KILLS  # every kill came after a start
