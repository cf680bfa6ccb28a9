"""`GET /doctor` of `jobkit serve`, over real HTTP: the keys the scripts set aside, the
keys unreadable now and what `jobkit doctor` finds, one JSON object, healthy or not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

import jobkit
from tests.integration.test_serve import READ, serve_command, wait_healthy
from tests.support import jobs
from tests.support.example_apps import Apps
from tests.support.redis_server import RedisServer, free_port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[RedisServer, str]]:
    apps = Apps(tmp_path)
    with RedisServer() as redis:
        port = free_port()
        proc = apps.start("serve", serve_command(port), JOBKIT_REDIS_URL=redis.url,
                          JOBKIT_API_READ_TOKEN=READ, JOBKIT_API_TOKEN=READ[::-1])  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(apps, proc, base)
            jobkit.configure(redis_url=redis.url)
            yield redis, base
        finally:
            apps.stop()


def test_doctor_names_what_was_set_aside_and_what_cannot_be_read(
    served: tuple[RedisServer, str],
) -> None:
    _, base = served
    store = jobkit.get_store()
    http = httpx.Client(base_url=base, headers={"authorization": f"Bearer {READ}"}, timeout=60)
    assert httpx.get(f"{base}/api/doctor").status_code == 401  # a read like any other

    jobs.Add.dispatch(a=1, b=1)
    clean = http.get("/api/doctor")
    assert clean.status_code == 200, clean.text
    body = clean.json()
    assert set(body) == {"healthy", "asides", "problems", "findings", "settings"}
    assert body["asides"] == [] and body["problems"] == [] and body["findings"] == []

    shard = store.keys.shard("default")
    kept = shard.aside(shard.running, 1_700_000_000_000)
    note = {"key": shard.running, "found": "string", "want": "zset", "kept": kept,
            "at": 1_700_000_000_000, "note": "claim"}  # fmt: skip
    store.redis.hset(shard.asides, kept, orjson.dumps(note))
    store.redis.rpush(shard.dead, "garbage")

    found = http.get("/api/doctor").json()
    assert found["healthy"] is False
    assert found["asides"] == [{"queue": "default", "key": shard.running, "found": "string",
                                "want": "zset", "kept": kept, "at": "2023-11-14T22:13:20+00:00",
                                "note": "claim"}]  # fmt: skip
    assert f"{shard.dead}: holds a list, not a zset" in found["problems"]
    assert any(f["kind"] == "wrong_type" and f["queue"] == "default" for f in found["findings"])
