"""A producer process: ``python -m stress.producer PLAN OUT TAG``.

Follows its plan file (see :mod:`stress.workload`), dispatching through
``JOBKIT_REDIS_URL`` (the fault proxy, or the Redis Cluster), and appends one JSON line
per outcome to OUT:

- ``{"id", "seq", "kind", "mode"}`` for every job whose dispatch returned: accepted, so
  the checker holds jobkit to it;
- ``{"unacked": true, "seqs", "kind", "mode", "error"}`` for a call that raised: the
  caller was told it failed, so any job it did create is not owed (the checker reports
  such jobs apart). The batch is then sent again: with fresh ids, or the same id when
  keyed, which is the idempotent way;
- ``{"done": true}`` at the end.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import redis

import jobkit
from jobkit import registry
from stress import jobs
from stress.workload import JOB_NAMES, Batch, Kind, Mode, read_plan

log = logging.getLogger("stress.producer")


def redis_now_ms() -> int:
    """Redis TIME on the real server, in ms (a delayed job's earliest start is set from it)."""
    seconds, micros = jobs.patiently(lambda: jobs.direct().time())
    return int(seconds) * 1000 + int(micros) // 1000


def keyed_id(tag: str, seq: int) -> str:
    return f"k-{tag}-{seq}"


def send(batch: Batch, tag: str) -> list[str]:
    """Dispatch ``batch`` once; the ids jobkit accepted."""
    cls = registry.lookup(JOB_NAMES[batch.kind])
    items = [dict(item) for item in batch.items]
    if batch.kind is Kind.DELAYED:
        due = redis_now_ms() + int(batch.delay * 1000)
        for item in items:
            item["not_before_ms"] = due
    delay = batch.delay or None
    if batch.mode is Mode.MANY:
        return [h.id for h in cls.dispatch_many(items, delay=delay, queue=batch.queue)]
    [item] = items
    job_id = keyed_id(tag, item["seq"]) if batch.mode is Mode.KEYED else None
    return [cls.dispatch(delay=delay, job_id=job_id, queue=batch.queue, **item).id]


def _write(out: BinaryIO, record: dict[str, Any]) -> None:
    out.write(orjson.dumps(record) + b"\n")
    out.flush()


def dispatch(batch: Batch, tag: str, out: BinaryIO) -> None:
    """Send ``batch`` until jobkit accepts it, recording every refusal."""
    seqs = [item["seq"] for item in batch.items]
    pause = 0.05
    while True:
        try:
            ids = send(batch, tag)
        except (redis.RedisError, OSError) as exc:
            log.warning("dispatch of %s %s failed: %r; sending again", batch.kind, seqs, exc)
            _write(
                out,
                {"unacked": True, "seqs": seqs, "kind": batch.kind.value,
                 "mode": batch.mode.value, "error": f"{type(exc).__name__}: {exc}"},
            )  # fmt: skip
            time.sleep(pause)
            pause = min(1.0, pause * 2)
            continue
        for job_id, seq in zip(ids, seqs, strict=True):
            _write(out, {"id": job_id, "seq": seq, "kind": batch.kind.value,
                         "mode": batch.mode.value})  # fmt: skip
        return


def main(argv: Sequence[str]) -> int:
    plan_path, out_path, tag = argv
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s [%(process)d] %(message)s"
    )
    jobkit.configure()  # JOBKIT_REDIS_URL: the proxy, or the cluster
    batches = read_plan(Path(plan_path))
    start = time.monotonic()
    with open(out_path, "ab") as out:
        for batch in batches:
            wait = start + batch.at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            dispatch(batch, tag, out)
        _write(out, {"done": True})
    log.info("producer done: %d batches in %.1fs", len(batches), time.monotonic() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
