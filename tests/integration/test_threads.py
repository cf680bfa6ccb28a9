"""Runner threads inside one child (`--threads`): jobs overlap, limits still hold."""

from __future__ import annotations

from jobkit import DeadReason, Status
from tests.conftest import Env, StartWorker, wait_until
from tests.support import jobs


def test_threads_run_jobs_of_one_child_side_by_side(env: Env, start_worker: StartWorker) -> None:
    start_worker(concurrency=1, extra=("--threads", "4", "--prefetch", "4"))
    handles = [jobs.Sleepy.dispatch(marker=f"sleepy-{i}", seconds=1.0) for i in range(4)]
    # all four are running at once in the one child: they could not be, one at a time
    wait_until(
        lambda: (
            env.client.zcard(env.keys.shard("default").running) == 4
            and all(env.client.exists(f"sleepy-{i}") for i in range(4))
        ),
        timeout=10,
        what="four jobs running together",
    )
    pids = {env.client.get(f"sleepy-{i}") for i in range(4)}
    assert len(pids) == 1  # one child process
    assert all(h.result(timeout=15) >= 1.0 for h in handles)


def test_a_timeout_in_one_thread_requeues_its_neighbours(
    env: Env, start_worker: StartWorker
) -> None:
    worker = start_worker(concurrency=1, extra=("--threads", "2", "--prefetch", "2"))
    neighbour = jobs.Sleepy.dispatch(marker="neighbour", seconds=1.5)
    wait_until(lambda: env.client.exists("neighbour"), timeout=10, what="neighbour to start")
    hung = jobs.Hang.dispatch(marker="hang-pid")

    wait_until(lambda: hung.status is Status.DEAD, timeout=15, what="the hung job to die")
    assert hung.record is not None and hung.record.reason == DeadReason.TIMEOUT.value
    # the neighbour was killed with the child through no fault of its own: it runs again
    assert neighbour.result(timeout=20) >= 1.5
    assert neighbour.attempts == 1  # the interrupted attempt was handed back, not counted
    assert worker.alive()
