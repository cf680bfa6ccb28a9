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


def test_doctor_names_the_registry_and_finds_the_queues_without_it(env: Env) -> None:
    _garbage_registry(env)
    out = run_cli("doctor", url=env.url)
    assert out.returncode == 1, out.stdout + out.stderr
    assert env.keys.queues in out.stdout and "missing from the registry" in out.stdout
    report = orjson.loads(run_cli("doctor", "--json", url=env.url).stdout)
    found = report["global"]
    assert not report["healthy"] and not found["healthy"]
    assert found["registered"] is None and found["unregistered"] == ["default", "other"]
    assert found["scanned"] >= 2
    kinds = {(f["kind"], f["where"]) for f in found["findings"]}
    assert kinds == {("wrong_type", env.keys.queues), ("unregistered", env.keys.queues)}
    assert [q["queue"] for q in report["queues"]] == ["default", "other"]  # checked anyway


def test_repair_sets_the_registry_aside_and_rebuilds_it(env: Env) -> None:
    _garbage_registry(env)
    dry = orjson.loads(run_cli("repair", "--dry-run", "--json", url=env.url).stdout)
    assert dry["global"]["found"] == "string" and dry["global"]["added"] == 2
    assert env.client.get(env.keys.queues) == "garbage"  # a dry run writes nothing

    out = run_cli("repair", url=env.url)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "set aside: held a string" in out.stdout and "default, other" in out.stdout
    assert env.client.smembers(env.keys.queues) == {"default", "other"}
    [kept] = env.client.hkeys(env.keys.asides)
    assert env.client.get(kept) == "garbage" and kept in out.stdout

    again = orjson.loads(run_cli("repair", "--json", url=env.url).stdout)
    assert again["changes"] == 0 and again["global"]["found"] is None
    assert "nothing to repair" in run_cli("repair", url=env.url).stdout
    listed = run_cli("queues", "--json", url=env.url)
    assert listed.returncode == 0
    assert [q["queue"] for q in orjson.loads(listed.stdout)] == ["default", "other"]
    doctor = orjson.loads(run_cli("doctor", "--json", url=env.url).stdout)
    assert doctor["global"]["healthy"], doctor["global"]  # the aside noted: informational
    assert all(q["healthy"] for q in doctor["queues"])
    assert [f["kind"] for f in doctor["global"]["findings"]] == ["set_aside"]


def test_doctor_lists_a_queue_the_registry_lacks(env: Env) -> None:
    jobs.Add.dispatch(a=1, b=1)
    jobs.Add.dispatch_params({"a": 2, "b": 2}, queue="lost")
    env.client.srem(env.keys.queues, "lost")
    report = orjson.loads(run_cli("doctor", "--full", "--json", url=env.url).stdout)
    assert report["global"]["unregistered"] == ["lost"] and not report["healthy"]
    assert run_cli("repair", url=env.url).returncode == 0
    assert env.client.smembers(env.keys.queues) == {"default", "lost"}


def test_doctor_names_a_workers_zset_of_the_wrong_type(env: Env) -> None:
    jobs.Add.dispatch(a=1, b=1)
    env.client.set(env.keys.workers, "garbage")
    out = run_cli("doctor", url=env.url)
    assert out.returncode == 1, out.stdout + out.stderr
    assert env.keys.workers in out.stdout
    found = orjson.loads(run_cli("doctor", "--json", url=env.url).stdout)["global"]
    assert found["findings"] == [
        {"kind": "wrong_type", "where": env.keys.workers, "count": 1,
         "examples": ["string, not zset"]}
    ]  # fmt: skip
    assert found["registered"] == ["default"] and found["scanned"] is None


def test_doctor_names_a_worker_hash_of_the_wrong_type(env: Env) -> None:
    jobs.Add.dispatch(a=1, b=1)
    env.client.zadd(env.keys.workers, {"ghost": env.store.reads.now_ms()})
    env.client.set(env.keys.worker("ghost"), "garbage")
    found = orjson.loads(run_cli("doctor", "--json", url=env.url).stdout)["global"]
    assert [f["where"] for f in found["findings"]] == [env.keys.worker("ghost")]
