"""A child outlives its supervisor by well under a second, and finishes nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from jobkit import Status
from tests.conftest import LEASE, REPO_ROOT, Env, StartWorker, wait_until
from tests.support import jobs


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def test_sigkilled_supervisor_takes_its_children_along_unfinished(
    env: Env, start_worker: StartWorker
) -> None:
    worker = start_worker()
    handle = jobs.SleepThenMark.dispatch(marker="started", after="finished", seconds=2.0)
    wait_until(lambda: env.client.exists("started"), timeout=15, what="the job to start")
    child = int(env.client.get("started") or 0)
    assert child in worker.child_pids()

    os.kill(worker.pid, signal.SIGKILL)  # the supervisor alone
    killed = time.monotonic()
    worker.wait(timeout=10)
    wait_until(lambda: not _alive(child), timeout=5, interval=0.01, what="the child to exit")
    assert time.monotonic() - killed < 1.0
    assert worker.group_pids() == []

    # the job was not finished, nor recorded, by the orphan: it waits for its lease to lapse
    time.sleep(2.5 - (time.monotonic() - killed))  # past the end of the job's sleep
    assert env.client.lrange("finished", 0, -1) == []
    assert handle.status is Status.RUNNING

    second = start_worker()
    assert handle.result(timeout=LEASE + 20) in second.child_pids()
    assert env.client.lrange("finished", 0, -1) == [str(handle.result(timeout=1))]
    assert str(child) not in env.client.lrange("finished", 0, -1)
    rec = handle.record
    assert rec is not None
    assert rec.attempts == 2
    assert rec.crashes == 1  # the lease lapsed: the reaper counted a crash


def test_the_lifeline_pipe_alone_ends_an_orphan() -> None:
    """Without prctl (macOS, BSD), EOF on the lifeline pipe is what ends a child."""
    read_fd, write_fd = os.pipe()
    script = (
        "import sys, time\n"
        "from jobkit.worker.lifeline import watch\n"
        "watch(int(sys.argv[1]))\n"
        "print('watching', flush=True)\n"
        "time.sleep(30)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(read_fd)],
        cwd=REPO_ROOT,
        pass_fds=(read_fd,),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        os.close(read_fd)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "watching"
        closed = time.monotonic()
        os.close(write_fd)  # as the kernel does when the supervisor dies
        assert proc.wait(timeout=5) == 75
        assert time.monotonic() - closed < 1.0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
