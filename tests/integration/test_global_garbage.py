"""Garbage at the global slot's keys (the ``queues`` registry every view fans out over,
the ``workers`` zset): the views name the registry instead of showing no queue, doctor
reports the global keys and finds the queues without the registry, repair sets the
registry aside and rebuilds it, and a worker's start or a first dispatch heals it."""

from __future__ import annotations

import orjson

from jobkit.status import Status
from tests.conftest import Env, StartWorker, run_cli, wait_until
from tests.support import jobs


def _garbage_registry(env: Env) -> str:
    """Jobs in two queues, then a string over the registry; the registry's message."""
    jobs.Add.dispatch(a=1, b=1)
    jobs.Add.dispatch_params({"a": 2, "b": 2}, queue="other")
    assert env.client.smembers(env.keys.queues) == {"default", "other"}
    env.client.set(env.keys.queues, "garbage")
    return f"{env.keys.queues}: holds a string, not a set"


def test_info_and_queues_name_an_unreadable_registry(env: Env) -> None:
    problem = _garbage_registry(env)
    for command in (("info",), ("queues",)):
        out = run_cli(*command, url=env.url)
        assert out.returncode == 1, out.stdout + out.stderr
        assert f"unreadable key {problem}" in out.stderr and "Traceback" not in out.stderr
    info = run_cli("info", "--json", url=env.url)
    assert info.returncode == 1 and orjson.loads(info.stdout)["problems"] == [problem]
    listed = run_cli("queues", "--json", url=env.url)
    assert listed.returncode == 1 and orjson.loads(listed.stdout) == []
    assert problem in listed.stderr
    page = run_cli("jobs", "--json", url=env.url)
    assert page.returncode == 1 and problem in orjson.loads(page.stdout)["problems"]


def test_a_first_dispatch_heals_the_registry(env: Env) -> None:
    env.client.set(env.keys.queues, "garbage")
    handle = jobs.Add.dispatch(a=1, b=1)
    assert env.status(handle.id) is Status.QUEUED
    assert env.client.smembers(env.keys.queues) == {"default"}
    [(kept, entry)] = env.client.hgetall(env.keys.asides).items()
    assert kept.startswith(f"{env.keys.base}:aside:queues:")
    assert env.client.get(kept) == "garbage"
    assert orjson.loads(entry)["want"] == "set"
    jobs.Add.dispatch(a=1, b=2)  # registered: no second write, nothing more set aside
    assert len(env.client.hgetall(env.keys.asides)) == 1


def test_a_worker_started_with_garbage_in_the_registry_heals_it(
    env: Env, start_worker: StartWorker
) -> None:
    _garbage_registry(env)
    start_worker(queues="default,other")
    assert env.client.type(env.keys.queues) == "set"
    assert env.client.smembers(env.keys.queues) == {"default", "other"}
    wait_until(lambda: env.stats().get("succeeded") == 2, timeout=15, what="both jobs run")
    out = run_cli("queues", url=env.url)
    assert out.returncode == 0, out.stderr
    assert "default" in out.stdout and "other" in out.stdout
