"""An attempt is recorded as begun before perform() begins: a whole worker (supervisor
and children) SIGKILLed at any moment of a job's first 50 ms has its attempt counted,
so the attempts a job's record holds are the times perform() began, never more than
its class allows, and only jobs claimed ahead and never begun go back uncounted."""

from __future__ import annotations

import collections
import random
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
    log, kill = tmp_path / "starts.log", tmp_path / "kill"
    handles = [NotesStart.dispatch(log=str(log), kill=str(kill)) for _ in range(KILLS // 2 + 40)]
    rng = random.Random(20261207)
    for _ in range(KILLS):
        # the job kills its whole worker this long after perform() began: half of the
        # kills in the first 5 ms, where a mark sent after the start would be missed
        kill.write_text(repr(rng.uniform(0, rng.choice([0.005, 0.05]))))
        worker = start_worker(extra=APP, ready=False)
        assert worker.wait(timeout=30) != 0  # killed by its job
        worker.kill()  # have Redis drop its connections

    kill.unlink()
    start_worker(extra=APP, concurrency=2)
    final = {Status.SUCCEEDED, Status.DEAD}
    wait_until(lambda: all(h.status in final for h in handles), timeout=120)
    starts = _starts(log)
    assert sum(starts.values()) >= KILLS  # every kill came after a start
    for handle in handles:
        record = env.store.reads.get(handle.id)
        assert record is not None
        assert record.attempts == starts[handle.id], (handle.id, record.status)
        assert record.attempts <= NotesStart.retry.max_attempts
