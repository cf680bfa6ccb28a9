"""A shared key of a queue found holding garbage never stops the queue: the script that
meets it sets it aside (renamed to ``aside:<name>:<ms>``, noted in ``asides``) and goes
on with an empty key of the right type, in the same call; the worker logs it once. A
job's own record stays that job's alone (test_garbage.py)."""

from __future__ import annotations

import time

import orjson
import pytest

from jobkit import Status
from tests.conftest import Env, StartWorker, run_cli, wait_until
from tests.support import jobs


def _asides(env: Env, queue: str = "default") -> dict[str, dict[str, object]]:
    raw = env.client.hgetall(env.keys.shard(queue).asides)
    return {kept: orjson.loads(note) for kept, note in raw.items()}


def _the_aside(env: Env, key: str) -> dict[str, object]:
    [note] = [n for n in _asides(env).values() if n["key"] == key]
    assert env.client.get(str(note["kept"])) == "garbage"  # what was there is kept
    return note


def test_claim_sets_a_running_key_of_another_type_aside_and_leases(env: Env) -> None:
    handles = jobs.Add.dispatch_many([{"a": i, "b": 0} for i in range(3)])
    key = env.keys.shard("default").running
    env.client.set(key, "garbage")

    claimed = env.store.leasing.claim("w", 30_000, 3, [["default"]])

    assert {j.id for j in claimed} == {h.id for h in handles}
    assert env.client.type(key) == "zset" and env.client.zcard(key) == 3
    note = _the_aside(env, key)
    assert (note["found"], note["want"]) == ("string", "zset")
    assert str(note["kept"]).startswith(env.keys.shard("default").base + ":aside:running:")
    assert "jobkit repair" in str(note["note"])


def test_delayed_jobs_go_on_when_scheduled_held_garbage(env: Env) -> None:
    key = env.keys.shard("default").scheduled
    env.client.set(key, "garbage")
    one = jobs.Add.dispatch(a=1, b=1, delay=60)
    many = jobs.Add.dispatch_many([{"a": 1, "b": 1}] * 3, delay=60)
    assert {h.status for h in [one, *many]} == {Status.SCHEDULED}
    assert env.client.zcard(key) == 4
    _the_aside(env, key)
    assert env.store.leasing.promote(["default"]) == (0, pytest.approx(60_000, abs=2_000))


def test_dispatch_goes_on_when_a_lane_held_garbage(env: Env) -> None:
    key = env.keys.queue("default")
    env.client.set(key, "garbage")
    handles = [jobs.Add.dispatch(a=1, b=1), *jobs.Add.dispatch_many([{"a": 1, "b": 1}] * 3)]
    handles.append(jobs.Add.dispatch(a=1, b=1, job_id="mine"))
    assert {h.status for h in handles} == {Status.QUEUED}
    assert env.client.zcard(key) == 5
    _the_aside(env, key)
    assert len(env.store.leasing.claim("w", 30_000, 9, [["default"]])) == 5


def test_a_sequence_that_is_no_number_goes_on_from_the_newest_job(env: Env) -> None:
    first = jobs.Add.dispatch(a=1, b=1)
    seq = int(env.client.hget(env.keys.job(first.id), "seq") or 0)
    env.client.set(env.keys.shard("default").seq, "garbage")
    second = jobs.Add.dispatch(a=1, b=1)
    assert int(env.client.hget(env.keys.job(second.id), "seq") or 0) == seq + 1
    note = _the_aside(env, env.keys.shard("default").seq)
    assert note["found"] == "string that is no counter"
    claimed = env.store.leasing.claim("w", 30_000, 2, [["default"]])
    assert [j.id for j in claimed] == [first.id, second.id]  # FIFO kept


def test_counts_that_are_no_numbers_start_again_from_zero(env: Env) -> None:
    stats = env.keys.shard("default").stats
    env.client.hset(stats, "succeeded", "many")
    jobs.Add.dispatch(a=1, b=1)
    [job] = env.store.leasing.claim("w", 30_000, 1, [["default"]])
    assert env.store.leasing.complete(job.id, job.token, b"2", 60) is True
    assert env.client.hgetall(stats) == {"succeeded": "1"}
    [note] = _asides(env).values()
    assert note["found"] == "hash whose succeeded is no count"
    assert env.client.hget(str(note["kept"]), "succeeded") == "many"


def test_a_garbage_record_of_asides_is_set_aside_too(env: Env) -> None:
    shard = env.keys.shard("default")
    env.client.set(shard.asides, "garbage")
    env.client.set(shard.running, "garbage")
    jobs.Add.dispatch(a=1, b=1)
    assert len(env.store.leasing.claim("w", 30_000, 1, [["default"]])) == 1
    keys = {n["key"] for n in _asides(env).values()}
    assert keys == {shard.running, shard.asides}


# -- with a worker: every shared key, garbage written while it runs 30 innocent jobs ----

SHARED = ["running", "dead", "scheduled", "finished", "created", "stats", "seq", "lane",
          "wake", "events"]  # fmt: skip


def _shared_key(env: Env, name: str) -> str:
    shard = env.keys.shard("default")
    if name == "lane":
        return shard.queue_key("default")
    if name == "wake":
        return shard.wake("default")
    return str(getattr(shard, name))


@pytest.mark.slow
@pytest.mark.parametrize("name", SHARED)
def test_garbage_in_a_shared_key_strands_no_innocent_job(
    env: Env, start_worker: StartWorker, name: str
) -> None:
    """30 jobs (plain ones, 2 delayed, 2 failing once, 1 failing for good) run by a
    worker while a shared key of their queue is overwritten by a string: each ends as it
    would have, none runs twice, and the worker logs one ERROR naming the key."""
    key = _shared_key(env, name)
    worker = start_worker(concurrency=2)
    tags = [f"t{i}" for i in range(26)]
    before = [jobs.Sleepy.dispatch(marker="busy", seconds=0.5)]
    before += [jobs.Record.dispatch(key="ran", tag=t) for t in tags[:10]]
    # while one runs, once none waits in the queue: entries the garbage itself overwrites
    # are lost with it (jobkit repair puts those back: test_doctor_repair.py)
    wait_until(lambda: all(h.status is not Status.QUEUED for h in before), timeout=10)
    assert before[0].status is Status.RUNNING
    env.client.set(key, "garbage")
    after = [jobs.Record.dispatch(key="ran", tag=t) for t in tags[10:24]]
    delayed = [jobs.Record.dispatch(key="ran", tag=t, delay=0.5) for t in tags[24:]]
    flaky = [jobs.Flaky.dispatch(times_key=f"times{i}", fail_times=1) for i in range(2)]
    doomed = jobs.Flaky.dispatch(times_key="doomed", fail_times=9)
    innocent = [*before, *after, *delayed, *flaky]
    assert len(innocent) + 1 == 30

    start = time.monotonic()
    wait_until(lambda: all(h.status is Status.SUCCEEDED for h in innocent), timeout=15)
    wait_until(lambda: doomed.status is Status.DEAD, timeout=10)
    took = time.monotonic() - start
    assert sorted(env.client.lrange("ran", 0, -1)) == sorted(tags)  # each once
    assert [env.client.llen(f"times{i}") for i in range(2)] == [2, 2]
    assert env.client.llen("doomed") == 3  # its policy: 3 attempts, then dead
    assert took < 10, f"innocent jobs took {took:.1f} s"

    def logged() -> list[str]:
        return [ln for ln in worker.log_text().splitlines() if " ERROR " in ln and key in ln]

    wait_until(lambda: logged(), timeout=5)
    time.sleep(1.2)  # another round of the chore: still one line
    [line] = logged()
    assert "set aside as " + env.keys.shard("default").base + ":aside:" in line
    assert "Traceback" not in worker.log_text()


def test_repair_sets_garbage_aside_and_rebuilds_the_index_it_overwrote(env: Env) -> None:
    """Garbage written over a lane's queue took its entries with it: `jobkit doctor`
    names the key, `jobkit repair` sets it aside and lists the queued jobs again."""
    handles = jobs.Add.dispatch_many([{"a": i, "b": 0} for i in range(3)])
    key = env.keys.queue("default")
    env.client.set(key, "garbage")

    doctor = run_cli("doctor", url=env.url)
    assert doctor.returncode == 1 and key in doctor.stdout, doctor.stdout + doctor.stderr
    repair = run_cli("repair", url=env.url)
    assert repair.returncode == 0, repair.stdout + repair.stderr
    _the_aside(env, key)
    assert env.client.zcard(key) == 3
    claimed = env.store.leasing.claim("w", 30_000, 9, [["default"]])
    assert [j.id for j in claimed] == [h.id for h in handles]  # in their order
    again = run_cli("repair", url=env.url)
    assert "nothing to repair" in again.stdout, again.stdout
