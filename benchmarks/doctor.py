"""What ``jobkit doctor`` and ``jobkit repair`` cost on a queue of a million records.

    python benchmarks/doctor.py [--records 1000000] [--json]

Starts its own redis-server and fills queue ``t`` with ``--records`` job records as
dispatch and the workers leave them (pipelined HSET and ZADD: 80 % succeeded, in
``finished``; 10 % queued, in the lane's queue; 10 % dead; all in ``created``), then
runs, in this process: doctor with its default sample, doctor ``--full`` and repair
(which finds nothing to do). For each it reports the wall time, the Redis calls jobkit
counted and Redis counted (INFO commandstats), Redis's CPU (INFO cpu, user + sys) and
the longest single call Redis ran (SLOWLOG, every call over 100 µs logged).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable as `python benchmarks/doctor.py`
    sys.path.insert(0, str(ROOT))

from jobkit import configure, get_store  # noqa: E402
from jobkit.backend.keys import Keys  # noqa: E402
from jobkit.ops.doctor import diagnose  # noqa: E402
from jobkit.ops.repair import repair  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

QUEUE = "t"
CHUNK = 5000


def fill(client: Any, records: int) -> None:
    """``records`` job records of QUEUE and their index entries, as the scripts write them."""
    shard = Keys().shard(QUEUE)
    now = int(time.time() * 1000) - records
    for start in range(0, records, CHUNK):
        pipe = client.pipeline(transaction=False)
        created: dict[str, int] = {}
        finished: dict[str, int] = {}
        ready: dict[str, int] = {}
        dead: dict[str, int] = {}
        for n in range(start, min(start + CHUNK, records)):
            job_id = f"{QUEUE}:{n:012x}"
            status = "queued" if n % 10 == 0 else "dead" if n % 10 == 1 else "succeeded"
            fields = {
                "name": "bench.Job", "lane": QUEUE, "params": "{}", "priority": 0,
                "seq": n + 1, "status": status, "max_attempts": 3, "timeout": 0,
                "result_ttl": 86400, "created_at": now + n,
            }  # fmt: skip
            if status != "queued":
                fields["finished_at"] = now + n + 1
            pipe.hset(shard.job(job_id), mapping=fields)
            created[job_id] = now + n
            {"queued": ready, "dead": dead}.get(status, finished)[job_id] = (
                n + 1 if status == "queued" else now + n + 1
            )
        pipe.zadd(shard.created, created)
        for key, entries in ((shard.finished, finished), (shard.queue_key(QUEUE), ready),
                             (shard.dead, dead)):  # fmt: skip
            if entries:
                pipe.zadd(key, entries)
        pipe.execute()
    client.set(shard.seq, records)
    client.sadd(Keys().queues, QUEUE)


def _calls(client: Any) -> int:
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


def _cpu(client: Any) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def measure(client: Any, name: str, run: Callable[[], int]) -> dict[str, Any]:
    """Run ``run`` (it returns the calls jobkit counted) with Redis's counters around it."""
    client.config_resetstat()
    client.slowlog_reset()
    cpu = _cpu(client)
    started = time.perf_counter()
    counted = run()
    wall = time.perf_counter() - started
    cpu = _cpu(client) - cpu
    calls = _calls(client) - 1  # the CONFIG RESETSTAT
    longest = max((int(e["duration"]) for e in client.slowlog_get(100_000)), default=0)
    return {
        "run": name, "seconds": round(wall, 2), "jobkit_calls": counted, "redis_calls": calls,
        "redis_cpu_s": round(cpu, 2), "longest_call_us": longest,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    with RedisServer() as server:
        client = server.client(decode_responses=True)
        client.config_set("slowlog-log-slower-than", 100)
        client.config_set("slowlog-max-len", 100_000)
        started = time.perf_counter()
        fill(client, options.records)
        filled = time.perf_counter() - started
        configure(redis_url=server.url)
        store = get_store()
        rows = []

        def doctor(full: bool) -> int:
            report = diagnose(store, [QUEUE], full=full)
            assert report.queues[0].healthy, report.as_dict()
            return report.calls

        def mend() -> int:
            report = repair(store, [QUEUE], lease_ms=30_000)
            assert report.changes == 0, report.as_dict()
            return report.calls

        rows.append(measure(client, "doctor (sample)", lambda: doctor(False)))
        rows.append(measure(client, "doctor --full", lambda: doctor(True)))
        rows.append(measure(client, "repair (nothing to do)", mend))
        memory = client.info("memory")["used_memory_human"]
    if options.json:
        print(json.dumps({"records": options.records, "fill_s": round(filled, 1), "rows": rows}))
        return
    print(f"{options.records:,} records filled in {filled:.1f} s (Redis: {memory})")
    print(f"{'run':<24}{'time':>8}{'jobkit calls':>14}{'Redis calls':>13}{'Redis CPU':>11}"
          f"{'longest':>10}")  # fmt: skip
    for r in rows:
        print(f"{r['run']:<24}{r['seconds']:>7.2f}s{r['jobkit_calls']:>14,}{r['redis_calls']:>13,}"
              f"{r['redis_cpu_s']:>10.2f}s{r['longest_call_us']:>8,}µs")  # fmt: skip


if __name__ == "__main__":
    main()
