"""Connections: secrets masked in every URL form redis-py accepts, settings errors that quote
no secret, explicit timeouts on every connection, and what a frozen Redis does to callers."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

import jobkit
from jobkit import ConfigurationError
from jobkit.connection import connect, redacted
from jobkit.handle import _WAIT_SLICE
from jobkit.settings import LONGEST_BLOCK, MIN_SOCKET_TIMEOUT, Settings, load_settings
from jobkit.worker.child import IDLE_BLOCK
from tests.conftest import REPO_ROOT, Env, StartWorker, clean_env, wait_until
from tests.support import jobs
from tests.support.redis_server import RedisServer

SECRET = "hunter2-Zq9"


@pytest.fixture
def no_jobkit_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("JOBKIT_"):
            monkeypatch.delenv(name)


# -- redacted(): every form redis-py takes a secret in --------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:SECRET@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://jobkit:SECRET@h:6379/0", "redis://jobkit:***@h:6379/0"),
        ("rediss://jobkit:SECRET@h:6380/1", "rediss://jobkit:***@h:6380/1"),
        ("unix://jobkit:SECRET@/run/redis.sock", "unix://jobkit:***@/run/redis.sock"),
        ("unix:///run/redis.sock?password=SECRET", "unix:///run/redis.sock?password=***"),
        (
            "unix:///run/redis.sock?db=2&username=jobkit&password=SECRET",
            "unix:///run/redis.sock?db=2&username=jobkit&password=***",
        ),
        ("redis://h:6379/0?password=SECRET", "redis://h:6379/0?password=***"),
        # both places at once, and the query one repeated: parse_qs takes the first
        (
            "redis://u:SECRET@h/0?password=SECRET&password=x",
            "redis://u:***@h/0?password=***&password=***",
        ),
        (
            "rediss://u:SECRET@h/0?ssl_ca_certs=/pki/ca.crt&ssl_keyfile=/pki/c.key&ssl_password=SECRET",
            "rediss://u:***@h/0?ssl_ca_certs=/pki/ca.crt&ssl_keyfile=/pki/c.key&ssl_password=***",
        ),
        # redis-py decodes the argument names too
        ("redis://h/0?pass%77ord=SECRET", "redis://h/0?pass%77ord=***"),
        ("redis://h/0?PASSWORD=SECRET", "redis://h/0?PASSWORD=***"),
        ("redis://h/0?auth_token=SECRET", "redis://h/0?auth_token=***"),
        # percent-encoded specials in the password stay inside the userinfo
        ("redis://u:SECRET%2F%3F%23%40@h/0", "redis://u:***@h/0"),
        ("redis://u@h/0", "redis://u@h/0"),  # a username alone is not a secret
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
    ],
)
def test_redacted_masks_every_secret_form(url: str, shown: str) -> None:
    assert redacted(url) == shown
    assert "SECRET" not in redacted(url)


@pytest.mark.parametrize(
    "url",
    [
        "redis://:SECRET/x@h:6379/0",  # an unencoded '/': the URL splits inside the password
        "redis://u:SECRET?x@h/0",
        "redis://u:SECRET#x@h/0",
        "redis://:SECRET#frag",
        "redis://u:SE@CRET@h/0",
        "redis:/:SECRET@h",
        "redis://:SECRET@[::1",
        "redis://h/0#SECRET",
    ],
)
def test_redacted_masks_urls_that_do_not_parse_cleanly(url: str) -> None:
    assert "SECRET" not in redacted(url)
    assert "CRET" not in redacted(url)


# -- settings errors and repr ----------------------------------------------------------------


def _assert_no_secret(exc: BaseException) -> None:
    text = "".join(traceback.format_exception(exc))
    assert SECRET not in text, text


@pytest.mark.parametrize(
    ("settings_for", "named"),
    [
        # pydantic quotes the whole input of a model-level rule, cut to its first and last
        # characters: the URL given last shows its password
        (lambda url: {"lease": 2.0, "heartbeat": 3.0, "redis_url": url}, "heartbeat"),
        (lambda url: {"redis_ur": url}, "redis_ur"),  # a misspelled keyword quotes its value
        (lambda url: {"redis_url": url, "lease": "soon"}, "JOBKIT_LEASE"),
        (lambda url: {"redis_url": url, "socket_timeout": 1.0}, "JOBKIT_SOCKET_TIMEOUT"),
    ],
)
def test_settings_errors_quote_no_password(
    no_jobkit_env: None, settings_for: Callable[[str], dict[str, object]], named: str
) -> None:
    for url in (f"redis://:{SECRET}@h/0", f"unix:///r.sock?password={SECRET}"):
        with pytest.raises(ConfigurationError) as caught:
            load_settings(**settings_for(url))
        _assert_no_secret(caught.value)  # nor in the cause a traceback would print
        assert named in str(caught.value)


def test_settings_error_from_the_environment_quotes_no_password(
    no_jobkit_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBKIT_REDIS_URL", f"redis://jobkit:{SECRET}@h/0")
    monkeypatch.setenv("JOBKIT_LEASE", "soon")
    with pytest.raises(ConfigurationError, match="soon") as caught:
        load_settings()  # the bad value of a field that is no secret is still shown
    _assert_no_secret(caught.value)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"http://:{SECRET}@h/0", "redis://, rediss://, unix://"),
        (f"redis://:{SECRET}/x@h/0", "percent-encode"),
        (f"redis://u:{SECRET}@h/0#x@y", "percent-encode"),
        (f"redis://:{SECRET}@h/0?socket_timeout=1", "JOBKIT_SOCKET_TIMEOUT"),
        (f"redis://:{SECRET}@h/0?health_check_interval=0", "JOBKIT_HEALTH_CHECK_INTERVAL"),
    ],
)
def test_bad_urls_are_refused_without_quoting_them(
    no_jobkit_env: None, url: str, problem: str
) -> None:
    with pytest.raises(ConfigurationError, match="JOBKIT_REDIS_URL") as caught:
        load_settings(redis_url=url)
    assert problem in str(caught.value)
    _assert_no_secret(caught.value)


def test_settings_repr_masks_the_password(no_jobkit_env: None) -> None:
    settings = load_settings(redis_url=f"redis://jobkit:{SECRET}@h/0?ssl_password={SECRET}")
    for text in (repr(settings), str(settings), f"{settings!r}"):
        assert SECRET not in text
        assert "jobkit:***@h" in text
    assert settings.redis_url == f"redis://jobkit:{SECRET}@h/0?ssl_password={SECRET}"


# -- explicit timeouts ------------------------------------------------------------------------


def test_socket_timeout_outlasts_every_blocking_wait() -> None:
    assert max(IDLE_BLOCK, _WAIT_SLICE) <= LONGEST_BLOCK < MIN_SOCKET_TIMEOUT
    assert Settings().socket_timeout >= MIN_SOCKET_TIMEOUT
    with pytest.raises(ConfigurationError, match="socket_timeout"):
        load_settings(socket_timeout=LONGEST_BLOCK)


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:1/0", "rediss://127.0.0.1:1/0", "unix:///x.sock"]
)
def test_every_connection_carries_explicit_timeouts(no_jobkit_env: None, url: str) -> None:
    settings = load_settings(
        redis_url=url, socket_timeout=7.5, socket_connect_timeout=1.5, health_check_interval=11
    )
    pool = connect(settings).redis.connection_pool
    # in the pool's kwargs, so the hot path's pool.make_connection() sockets carry them too
    kwargs = pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (7.5, 1.5)
    assert kwargs["health_check_interval"] == 11
    assert kwargs["retry"]._retries == 0  # redis-py 5 has no get_retries()
    made = pool.make_connection()
    assert (made.socket_timeout, made.socket_connect_timeout) == (7.5, 1.5)
    if url.startswith("unix:"):
        assert "socket_keepalive" not in kwargs
    else:
        assert kwargs["socket_keepalive"] is True
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert kwargs["socket_keepalive_options"][socket.TCP_KEEPIDLE] == 30


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:1/0", "rediss://127.0.0.1:1/0", "unix:///x.sock"]
)
def test_no_connection_asks_for_maintenance_notifications(no_jobkit_env: None, url: str) -> None:
    """redis-py 8 asks every new connection for them: jobkit's, pooled or the hot path's
    own, never do (see jobkit/backend/connect.py for why)."""
    pool = connect(load_settings(redis_url=url)).redis.connection_pool
    for made in (pool.make_connection(), pool.connection_class(**pool.connection_kwargs)):
        config = getattr(made, "maint_notifications_config", None)  # None: redis-py < 7
        assert config is None or not config.enabled


def test_connecting_sends_redis_no_command_it_refuses(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """No handshake step fails (redis-py logs a refused maintenance notifications
    request at DEBUG, and goes on)."""
    caplog.set_level(logging.DEBUG, logger="redis")
    store = connect(jobkit.get_settings())
    try:
        store.wire.execute("PING")
        store.redis.ping()
    finally:
        store.redis.close()
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("redis")]


@pytest.mark.parametrize(
    ("query", "checked"),
    [("", True), ("?ssl_check_hostname=false", False), ("?ssl_cert_reqs=none", False)],
)
def test_tls_checks_the_host_name_unless_told_not_to(
    no_jobkit_env: None, query: str, checked: bool
) -> None:
    settings = load_settings(redis_url=f"rediss://127.0.0.1:1/0{query}")
    made = connect(settings).redis.connection_pool.make_connection()
    assert made.check_hostname is checked


def test_a_misspelled_url_option_is_a_configuration_error(no_jobkit_env: None) -> None:
    settings = load_settings(redis_url=f"redis://:{SECRET}@127.0.0.1:1/0?pasword=x")
    with pytest.raises(ConfigurationError, match="pasword") as caught:
        connect(settings)
    _assert_no_secret(caught.value)


# -- a frozen Redis ---------------------------------------------------------------------------

TIMEOUT = MIN_SOCKET_TIMEOUT  # the shortest socket timeout allowed: 3 s
GIVE_UP_WITHIN = TIMEOUT + 1.5


@pytest.fixture
def frozen() -> Iterator[RedisServer]:
    """A server of its own, configured as jobkit's, that the test may pause (SIGSTOP)."""
    with RedisServer() as server:
        jobkit.configure(redis_url=server.url, socket_timeout=TIMEOUT, socket_connect_timeout=1)
        try:
            yield server
        finally:
            server.resume()
            jobkit.get_store().redis.close()
            jobkit.configure()


def _timed(call: object) -> tuple[BaseException, float]:
    started = time.monotonic()
    with pytest.raises((redis.TimeoutError, redis.ConnectionError)) as caught:
        call()  # type: ignore[operator]
    return caught.value, time.monotonic() - started


def test_dispatch_and_get_job_give_up_on_a_frozen_redis(frozen: RedisServer) -> None:
    handle = jobs.Add.dispatch(a=1, b=2)  # connects the hot path and the pool
    assert jobkit.get_job(handle.id).status.value == "queued"
    frozen.pause()
    for call in (lambda: jobs.Add.dispatch(a=1, b=2), lambda: jobkit.get_job(handle.id)):
        error, took = _timed(call)
        assert TIMEOUT - 0.5 <= took <= GIVE_UP_WITHIN, (took, error)
        assert "Timeout" in str(error) or "did not answer" in str(error), error


def test_cli_gives_up_on_a_frozen_redis(frozen: RedisServer) -> None:
    frozen.pause()
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "jobkit", "info", "--redis-url", frozen.url],
        cwd=REPO_ROOT,
        env=clean_env(JOBKIT_SOCKET_TIMEOUT=str(TIMEOUT)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    took = time.monotonic() - started
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert took <= GIVE_UP_WITHIN + 3.0, took  # + the interpreter's start
    output = done.stdout + done.stderr
    assert "Timeout" in output and "Traceback" not in output, output
    assert f"127.0.0.1:{frozen.port}" in output  # which Redis, in one clear line


@pytest.mark.slow
def test_worker_logs_and_retries_while_redis_is_frozen(
    frozen: RedisServer, start_worker: StartWorker, tmp_path: Path
) -> None:
    worker = start_worker(environ={"JOBKIT_SOCKET_TIMEOUT": str(TIMEOUT)})
    assert jobs.Add.dispatch(a=1, b=1).result(timeout=15) == 2
    frozen.pause()
    wait_until(
        lambda: "Timeout" in worker.log_text(),
        timeout=GIVE_UP_WITHIN + 5,
        what="the worker to log the frozen Redis",
    )
    assert worker.alive() and len(worker.child_pids()) == 1
    time.sleep(TIMEOUT)  # still frozen: it keeps retrying, it does not die
    assert worker.alive(), worker.log_tail()
    frozen.resume()
    assert jobs.Add.dispatch(a=2, b=3).result(timeout=30) == 5
    assert worker.alive() and "Traceback" not in worker.log_text(), worker.log_tail()
