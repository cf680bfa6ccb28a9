"""Every listing command goes on past a key of the wrong type: it names the key on
stderr ("unreadable key K: holds a list, not a zset"), lists the rest, and exits 1 (2
stays for Redis out of reach); with --json its output keeps its shape and the keys are
named too (a page's "problems", or {"problems": [...]} on stderr for a list). Each runs
as a subprocess, as an operator would."""

from __future__ import annotations

import orjson

from jobkit.cron import collect
from tests.conftest import Env, StartWorker, run_cli, wait_until
from tests.support import jobs, sched_jobs


def _garbage(env: Env, key: str, kind: str = "list") -> None:
    env.client.delete(key)
    if kind == "list":
        env.client.rpush(key, "garbage")
    else:
        env.client.set(key, "garbage")


def _stderr_problems(stderr: str) -> list[str]:
    """The problems a --json listing names on stderr."""
    last = [line for line in stderr.splitlines() if line.startswith("{")][-1]
    problems: list[str] = orjson.loads(last)["problems"]
    return problems


def _dead_job(env: Env, queue: str) -> str:
    """A dead job of ``queue``: one whose record the claim cannot use (invalid_record)."""
    handle = jobs.Add.dispatch_params({"a": 1, "b": 1}, queue=queue)
    env.client.hset(env.keys.job(handle.id), "timeout", "soon")
    assert env.store.leasing.claim("w", 30_000, 1, [[queue]]) == []
    return handle.id


def test_dead_list_names_a_dead_set_that_is_a_list(env: Env) -> None:
    healthy = _dead_job(env, "fine")
    jobs.Add.dispatch_params({"a": 1, "b": 1}, queue="t")
    dead = env.keys.shard("t").dead
    _garbage(env, dead)

    out = run_cli("dead", "list", url=env.url)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"unreadable key {dead}: holds a list, not a zset" in out.stderr
    assert healthy in out.stdout and "Traceback" not in out.stderr

    as_json = run_cli("dead", "list", "--json", url=env.url)
    assert as_json.returncode == 1
    assert [row["id"] for row in orjson.loads(as_json.stdout)] == [healthy]
    assert _stderr_problems(as_json.stderr) == [f"{dead}: holds a list, not a zset"]


def test_workers_names_a_worker_hash_and_the_registry_of_the_wrong_type(
    env: Env, start_worker: StartWorker
) -> None:
    _garbage(env, env.keys.workers, "string")  # before any worker beats (a beat sets it aside)
    out = run_cli("workers", url=env.url)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"unreadable key {env.keys.workers}: holds a string, not a zset" in out.stderr
    env.client.delete(env.keys.workers)

    worker = start_worker()
    wait_until(lambda: env.client.zscore(env.keys.workers, worker.name), timeout=10,
               what="the worker's first beat")  # fmt: skip
    ghost = env.keys.worker("ghost")
    env.client.zadd(env.keys.workers, {"ghost": env.store.reads.now_ms()})
    _garbage(env, ghost, "string")

    out = run_cli("workers", url=env.url)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"unreadable key {ghost}: holds a string, not a hash" in out.stderr
    assert worker.name in out.stdout and "ghost" not in out.stdout
    as_json = run_cli("workers", "--json", url=env.url)
    assert as_json.returncode == 1
    assert [w["name"] for w in orjson.loads(as_json.stdout)] == [worker.name]
    assert _stderr_problems(as_json.stderr) == [f"{ghost}: holds a string, not a hash"]


def test_jobs_names_the_indexes_it_skips_and_lists_the_other_queues(env: Env) -> None:
    healthy = jobs.Add.dispatch_params({"a": 1, "b": 1}, queue="fine").id
    jobs.Add.dispatch_params({"a": 1, "b": 1}, queue="t")
    created, finished = env.keys.shard("t").created, env.keys.shard("t").finished
    _garbage(env, created)
    _garbage(env, finished, "string")

    out = run_cli("jobs", url=env.url)  # every status: read from `created`
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"unreadable key {created}: holds a list, not a zset" in out.stderr
    assert healthy in out.stdout

    page = run_cli("jobs", "--json", url=env.url)
    assert page.returncode == 1
    shown = orjson.loads(page.stdout)
    assert [j["id"] for j in shown["jobs"]] == [healthy]
    assert shown["problems"] == [f"{created}: holds a list, not a zset"]

    done = run_cli("jobs", "--status", "succeeded", url=env.url)  # from `finished`
    assert done.returncode == 1
    assert f"unreadable key {finished}: holds a string, not a zset" in done.stderr
    assert "no jobs" in done.stdout

    fine = run_cli("jobs", "--queue", "fine", url=env.url)  # not asked: not read
    assert fine.returncode == 0 and healthy in fine.stdout and fine.stderr == ""


def test_queues_names_a_lane_and_a_set_of_the_wrong_type(env: Env) -> None:
    jobs.Add.dispatch_params({"a": 1, "b": 1}, queue="fine")
    jobs.Add.dispatch_params({"a": 1, "b": 1}, queue="t")
    lane, running = env.keys.queue("t"), env.keys.shard("t").running
    _garbage(env, lane)
    _garbage(env, running, "string")

    out = run_cli("queues", url=env.url)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"unreadable key {lane}: holds a list, not a zset" in out.stderr
    assert f"unreadable key {running}: holds a string, not a zset" in out.stderr
    rows = {line.split("│")[1].strip(): line for line in out.stdout.splitlines() if "│" in line}
    assert "1" in rows["fine"] and "?" in rows["t"]

    as_json = run_cli("queues", "--json", url=env.url)
    assert as_json.returncode == 1
    by_queue = {r["queue"]: r for r in orjson.loads(as_json.stdout)}
    assert by_queue["fine"]["ready"] == 1 and by_queue["t"]["ready"] is None
    assert sorted(_stderr_problems(as_json.stderr)) == sorted(
        [f"{lane}: holds a list, not a zset", f"{running}: holds a string, not a zset"]
    )


def test_schedules_names_a_schedule_hash_that_is_a_string(env: Env) -> None:
    [bad] = collect([sched_jobs.TickOnce])
    key = env.keys.shard(bad.queue).schedule(bad.key)
    _garbage(env, key, "string")

    out = run_cli("schedules", "-A", "tests.support.sched_jobs", url=env.url)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"unreadable key {key}: holds a string, not a hash" in out.stderr
    assert "TickAll" in out.stdout and "TickSkip" in out.stdout

    as_json = run_cli("schedules", "-A", "tests.support.sched_jobs", "--json", url=env.url)
    assert as_json.returncode == 1
    rows = orjson.loads(as_json.stdout)
    assert {r["job"] for r in rows} >= {sched_jobs.TickOnce.name, sched_jobs.TickAll.name}
    assert _stderr_problems(as_json.stderr) == [f"{key}: holds a string, not a hash"]
