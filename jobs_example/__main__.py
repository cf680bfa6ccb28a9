"""`python -m jobs_example`: the whole loop on one machine.

Starts two workers (on the embedded Redis unless JOBKIT_REDIS_URL is set), dispatches a
mix of the example jobs, shows progress while they run and a summary at the end.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import timedelta

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import jobkit
from jobkit.backend.embedded import embedded_running, stop_embedded
from jobs_example import (
    Add,
    AlwaysFails,
    FlakyReport,
    PollUpstream,
    SendEmail,
    TrainModel,
)

console = Console()


def start_workers(count: int) -> list[subprocess.Popen[bytes]]:
    log_dir = jobkit.get_settings().data_dir
    log_dir.mkdir(exist_ok=True)
    procs = []
    for i in range(count):
        log = open(log_dir / f"worker-{i}.log", "wb")  # noqa: SIM115 - lives with the process
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "jobkit",
                    "worker",
                    "-A",
                    "jobs_example",
                    "-q",
                    "high,default,low",
                    "-c",
                    "2",
                    "--grace",
                    "5",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    return procs


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def dispatch_all() -> list[jobkit.JobHandle]:
    handles = Add.dispatch_many([{"a": i, "b": i * i} for i in range(20)])
    handles += [TrainModel.dispatch(epochs=e, seconds_per_epoch=0.2) for e in (2, 3, 4)]
    handles += [
        SendEmail.dispatch(to=f"user{i}@example.com", subject="Your report") for i in range(5)
    ]
    handles += [
        FlakyReport.dispatch(fail_times=2),
        PollUpstream.dispatch(),
        AlwaysFails.dispatch(reason="malformed CSV row 17"),
    ]
    handles.append(Add.dispatch(a=40, b=2, delay=timedelta(seconds=1), priority=5))
    return handles


def watch(handles: list[jobkit.JobHandle], timeout: float = 60.0) -> None:
    store = jobkit.get_store()
    ids = [h.id for h in handles]
    deadline = time.monotonic() + timeout
    columns = (
        TextColumn("[bold]jobs"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("", total=len(ids))
        while time.monotonic() < deadline:
            records = [r for r in store.reads.get_many(ids) if r is not None]
            states = Counter(r.status.value for r in records)
            done = sum(states[s.value] for s in jobkit.TERMINAL_STATUSES)
            progress.update(
                task,
                completed=done,
                description=" ".join(f"{k} {v}" for k, v in sorted(states.items())),
            )
            if done == len(ids):
                return
            time.sleep(0.2)
    console.print("[yellow]some jobs did not finish in time[/yellow]")


def summarize(handles: list[jobkit.JobHandle]) -> None:
    records = [r for r in jobkit.get_store().reads.get_many([h.id for h in handles]) if r]
    by_name: dict[str, list[jobkit.models.JobRecord]] = defaultdict(list)
    for rec in records:
        by_name[rec.name.rsplit(".", 1)[-1]].append(rec)
    table = Table(
        "job",
        "count",
        "succeeded",
        "dead",
        "attempts",
        "example outcome",
        title="jobs_example summary",
    )
    for name, recs in by_name.items():
        ok = [r for r in recs if r.status is jobkit.Status.SUCCEEDED]
        dead = [r for r in recs if r.status is jobkit.Status.DEAD]
        sample = repr(ok[-1].result) if ok else str(dead[0].error) if dead else "-"
        table.add_row(
            name,
            str(len(recs)),
            str(len(ok)),
            str(len(dead)),
            str(sum(r.attempts for r in recs)),
            sample[:60],
        )
    console.print(table)
    dead_count = sum(r.status is jobkit.Status.DEAD for r in records)
    console.print(
        f"{len(records)} jobs, {dead_count} dead-lettered on purpose: "
        "see them with [bold]jobkit dead list[/bold]"
    )


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = jobkit.get_settings()
    owns_redis = not settings.redis_url and not embedded_running(settings.data_dir)
    jobkit.get_store()  # connect now, so the Redis in use is announced first
    workers = start_workers(2)
    try:
        handles = dispatch_all()
        console.print(
            f"dispatched {len(handles)} jobs to 2 workers x 2 children "
            f"(logs in {settings.data_dir}/worker-*.log)"
        )
        watch(handles)
        summarize(handles)
    finally:
        stop_workers(workers)
        if owns_redis:
            stop_embedded(settings.data_dir)
            console.print(
                "embedded Redis stopped (its data stays in "
                f"{settings.data_dir}/; `jobkit redis start` brings it back)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
