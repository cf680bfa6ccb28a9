"""ACL users, passwords and TLS end to end, and no secret in any output.

Three real redis-servers: one with the default user off, an ACL user holding exactly the
rule the README gives and a TLS port (client certificates optional), one with only
``requirepass``, and one that speaks only TLS and requires a client certificate. Through
each URL form redis-py takes a secret in, a test dispatches jobs, runs a worker and the
scheduler as processes, and runs ``jobkit info`` / ``job`` / ``workers`` and a failing
command; no log line or output may carry the password or the key passphrase.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
import redis

import jobkit
from jobkit.backend.keys import Keys
from jobkit.models import Status
from tests.conftest import (
    HEARTBEAT,
    LEASE,
    REPO_ROOT,
    StartWorker,
    WorkerProcess,
    clean_env,
    run_cli,
    wait_until,
)
from tests.support import jobs, sched_jobs
from tests.support.redis_server import RedisServer, Tls
from tests.support.tls import KEY_PASSPHRASE, Pki, make_pki

# What the README tells operators to give jobkit's ACL user, verbatim (see
# test_readme_gives_the_tested_acl_rule): its keys and channel, the commands jobkit sends
# itself, and the commands its Lua scripts call (ACLs apply inside scripts too).
JOBKIT_ACL = (
    "resetkeys ~{jobkit}* ~{jobkit:* resetchannels &{jobkit}* &{jobkit:*}:sched:wake -@all "
    "+evalsha +script|load +script|exists "
    "+blpop +blmove +set +hgetall +hget +zcard +zrevrange +smembers +time "
    "+subscribe +unsubscribe +psubscribe +punsubscribe +ping +select "
    "+client|id +client|unblock +config|get "
    "+del +exists +expire +persist +mget +incr +incrby +hset +hdel +hmget +hincrby "
    "+lpush +ltrim +sadd +zadd +zrem +zrange +zrangebyscore +zremrangebyscore +zpopmin "
    "+publish +get +type +rename +info +xadd +xrange +xrevrange +xtrim "
    "+scard +srem +srandmember "
    "+xreadgroup +xack +xautoclaim +xgroup|create +xgroup|setid +xinfo|groups +xinfo|stream "
    "+xlen +xdel +hsetnx +hkeys +ttl +sismember +zscore +scan +zscan +hrandfield"
)
# Commands whose ACL names a subcommand (+xinfo|stream)
CONTAINERS = frozenset({"XINFO", "XGROUP", "CLIENT", "CONFIG", "SCRIPT", "OBJECT", "MEMORY"})
# Characters that must be percent-encoded in a URL, so both spellings are looked for.
PASSWORD = "Jk-pw/1?a#b@c%d"
WRONG = "Wr-pw/2?x#y@z%w"
ADMIN = ("admin", "admin-pw-Wx7")
KEYS = Keys("jobkit")


def secrets_of(*values: str) -> list[str]:
    """Each secret as written and as percent-encoded in a URL."""
    return [form for value in values for form in {value, quote(value, safe="")}]


def assert_no_secret(text: str, *values: str) -> None:
    for secret in secrets_of(*values):
        assert secret not in text, f"{secret!r} leaked:\n{text}"


def enc(value: str) -> str:
    return quote(value, safe="")


# -- servers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _acl_lines() -> list[str]:
    return [
        "user default off",
        f"user {ADMIN[0]} on >{ADMIN[1]} ~* &* +@all",
        f"user jobkit on >{PASSWORD} {JOBKIT_ACL}",
    ]


@pytest.fixture(scope="module")
def acl_server(pki: Pki) -> Iterator[RedisServer]:
    """Default user off; the ACL user ``jobkit``; plain TCP, unix socket, and TLS (client
    certificates optional, checked against the test CA when given)."""
    tls = Tls(pki.server_cert, pki.server_key, pki.ca, auth_clients="optional")
    with RedisServer(acl=_acl_lines(), admin=ADMIN, tls=tls) as server:
        yield server


@pytest.fixture(scope="module")
def pass_server() -> Iterator[RedisServer]:
    """The default user with a password (``requirepass``), for URLs without a username."""
    with RedisServer(requirepass=PASSWORD) as server:
        yield server


@pytest.fixture(scope="module")
def mtls_server(pki: Pki) -> Iterator[RedisServer]:
    """TLS only (no plain port), client certificates required, the ACL user ``jobkit``."""
    tls = Tls(pki.server_cert, pki.server_key, pki.ca, auth_clients="yes")
    with RedisServer(acl=_acl_lines(), admin=ADMIN, tls=tls, plain=False) as server:
        yield server


def _tls_query(pki: Pki, *, client: bool = False, passphrase: bool = False) -> str:
    query = f"ssl_ca_certs={pki.ca}"
    if client:
        key = pki.client_key_encrypted if passphrase else pki.client_key
        query += f"&ssl_certfile={pki.client_cert}&ssl_keyfile={key}"
    if passphrase:
        query += f"&ssl_password={enc(KEY_PASSPHRASE)}"
    return query


def mtls_url(server: RedisServer, pki: Pki, password: str = PASSWORD, **client: bool) -> str:
    query = _tls_query(pki, client=True, **client)
    return f"rediss://jobkit:{enc(password)}@127.0.0.1:{server.tls_port}/0?{query}"


# Every form redis-py takes a password in: (server fixture, URL for a password).
Form = Callable[[RedisServer, Pki, str], str]
FORMS: dict[str, tuple[str, Form]] = {
    "redis-user": (
        "acl_server",
        lambda s, k, pw: f"redis://jobkit:{enc(pw)}@127.0.0.1:{s.port}/0",
    ),
    "redis-query-user": (
        "acl_server",
        lambda s, k, pw: f"redis://127.0.0.1:{s.port}/0?username=jobkit&password={enc(pw)}",
    ),
    "unix-user": ("acl_server", lambda s, k, pw: f"unix://jobkit:{enc(pw)}@{s.socket_path}"),
    "unix-query-user": (
        "acl_server",
        lambda s, k, pw: f"unix://{s.socket_path}?username=jobkit&password={enc(pw)}",
    ),
    "rediss-user": (
        "acl_server",
        lambda s, k, pw: f"rediss://jobkit:{enc(pw)}@127.0.0.1:{s.tls_port}/0?{_tls_query(k)}",
    ),
    "rediss-client-cert-passphrase": (
        "acl_server",
        lambda s, k, pw: (
            f"rediss://jobkit:{enc(pw)}@127.0.0.1:{s.tls_port}/0?"
            + _tls_query(k, client=True, passphrase=True)
        ),
    ),
    "redis-password": ("pass_server", lambda s, k, pw: f"redis://:{enc(pw)}@127.0.0.1:{s.port}/0"),
    "redis-query-password": (
        "pass_server",
        lambda s, k, pw: f"redis://127.0.0.1:{s.port}/0?password={enc(pw)}",
    ),
    "unix-query-password": (
        "pass_server",
        lambda s, k, pw: f"unix://{s.socket_path}?password={enc(pw)}",
    ),
}


# -- exercising jobkit through one URL ---------------------------------------------------------


@dataclass
class Run:
    """What one pass of :func:`exercise` printed, all of it."""

    text: str


@pytest.fixture
def start_scheduler(tmp_path: Path) -> Iterator[Callable[[str], WorkerProcess]]:
    """Factory: a ``jobkit scheduler -A tests.support.sched_jobs`` process (killed on teardown)."""
    started: list[WorkerProcess] = []

    def start(url: str) -> WorkerProcess:
        args = [
            sys.executable, "-m", "jobkit", "scheduler",
            "-A", "tests.support.sched_jobs", "--log-level", "DEBUG",
        ]  # fmt: skip
        proc = WorkerProcess("scheduler", args, url, tmp_path / f"scheduler-{len(started)}.log")
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.kill()


def _cli_ok(*args: str, url: str) -> tuple[str, object]:
    done = run_cli(*args, "--json", url=url)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout + done.stderr, orjson.loads(done.stdout)


def exercise(
    url: str,
    admin: redis.Redis,
    start_worker: StartWorker,
    start_scheduler: Callable[[str], WorkerProcess],
    caplog: pytest.LogCaptureFixture,
) -> Run:
    """Through ``url`` only: dispatch, the scheduler promotes a delayed job and fires cron
    slots, a worker runs the jobs, the CLI shows them, and one command fails."""
    admin.flushall()
    jobkit.configure(redis_url=url, lease=LEASE, heartbeat=HEARTBEAT)
    try:
        delayed = jobs.Add.dispatch(a=2, b=3, delay=0.5)
        scheduler = start_scheduler(url)
        # No worker yet: only the scheduler can have promoted it.
        wait_until(lambda: delayed.status is Status.QUEUED, 15, what="the scheduler")
        cron_queue = KEYS.queue(sched_jobs.CRON_QUEUE)
        wait_until(lambda: admin.zcard(cron_queue) > 0, 15, what="a cron slot to fire")

        worker = start_worker(url=url, extra=("--log-level", "DEBUG"))
        now = jobs.Add.dispatch(a=20, b=22)
        assert now.result(timeout=20) == 42
        assert delayed.result(timeout=20) == 5
        assert jobkit.get_job(now.id).status is Status.SUCCEEDED

        outputs = []
        text, info = _cli_ok("info", url=url)
        outputs.append(text)
        assert isinstance(info, dict) and info["lanes"].get(sched_jobs.CRON_QUEUE, 0) > 0
        text, shown = _cli_ok("job", now.id, url=url)
        outputs.append(text)
        assert isinstance(shown, dict) and shown["result"] == 42
        text, listed = _cli_ok("workers", url=url)
        outputs.append(text)
        assert isinstance(listed, list) and worker.name in {w["name"] for w in listed}
        failing = run_cli("job", "no-such-job", url=url)
        assert failing.returncode == 1, failing.stderr
        outputs.append(failing.stdout + failing.stderr)

        worker.terminate()
        worker.wait(20)
        scheduler.terminate()
        scheduler.wait(20)
        outputs += [worker.log_text(), scheduler.log_text(), caplog.text]
        assert "using Redis at" in worker.log_text()
        return Run("\n".join(outputs))
    finally:
        jobkit.get_store().redis.close()
        jobkit.configure()


def _denials(admin: redis.Redis) -> list[object]:
    return [entry for entry in admin.acl_log() if entry.get("username") == "jobkit"]


# -- every URL form: works, and leaks nothing ---------------------------------------------------


@pytest.mark.parametrize("form", sorted(FORMS))
def test_every_url_form_works_and_leaks_no_secret(
    form: str,
    request: pytest.FixtureRequest,
    pki: Pki,
    start_worker: StartWorker,
    start_scheduler: Callable[[str], WorkerProcess],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    fixture, make_url = FORMS[form]
    server: RedisServer = request.getfixturevalue(fixture)
    admin = server.client(decode_responses=True)
    if server.acl:
        admin.acl_log_reset()
    run = exercise(make_url(server, pki, PASSWORD), admin, start_worker, start_scheduler, caplog)
    assert_no_secret(run.text, PASSWORD, KEY_PASSPHRASE)
    if server.acl:
        assert _denials(admin) == [], "the README's ACL rule misses a command jobkit sends"

    refused = run_cli("info", url=make_url(server, pki, WRONG))
    output = refused.stdout + refused.stderr
    assert refused.returncode == 2, output
    assert re.search(r"error: Redis at \S+: .*(invalid username-password|WRONGPASS)", output), (
        output
    )
    assert "Traceback" not in output
    assert_no_secret(output, PASSWORD, WRONG, KEY_PASSPHRASE)


# -- ACL ----------------------------------------------------------------------------------------


def test_the_disabled_default_user_cannot_get_in(acl_server: RedisServer) -> None:
    refused = run_cli("info", url=acl_server.url)  # no credentials at all
    assert refused.returncode == 2
    assert "Authentication required" in refused.stdout + refused.stderr


def test_wrong_password_fails_dispatch_and_the_worker_clearly(
    acl_server: RedisServer,
    start_worker: StartWorker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"redis://jobkit:{enc(WRONG)}@127.0.0.1:{acl_server.port}/0"
    jobkit.configure(redis_url=url)
    try:
        with pytest.raises(redis.AuthenticationError) as caught:
            jobs.Add.dispatch(a=1, b=1)
        assert "invalid username-password" in str(caught.value)
    finally:
        jobkit.get_store().redis.close()
        jobkit.configure()
    worker = start_worker(url=url, ready=False)
    wait_until(
        lambda: "invalid username-password" in worker.log_text(),
        timeout=20,
        what="the worker to log the refusal",
    )
    time.sleep(1.0)
    assert worker.alive(), worker.log_tail()  # it keeps retrying: the password may be fixed
    assert_no_secret(worker.log_text() + caplog.text, WRONG, PASSWORD)


def test_a_settings_error_in_the_cli_quotes_no_secret() -> None:
    url = f"redis://jobkit:{enc(PASSWORD)}@127.0.0.1:1/0?ssl_password={enc(KEY_PASSPHRASE)}"
    done = subprocess.run(
        [sys.executable, "-m", "jobkit", "info"],
        cwd=REPO_ROOT,
        env=clean_env(JOBKIT_REDIS_URL=url, JOBKIT_HEARTBEAT="60"),  # longer than the lease
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2 and "heartbeat" in output, output
    assert_no_secret(output, PASSWORD, KEY_PASSPHRASE)


def test_readme_gives_the_tested_acl_rule() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert f"user jobkit on >your-password {JOBKIT_ACL}" in readme


def test_the_acl_rule_allows_every_command_the_scripts_call() -> None:
    allowed = {word[1:].lower() for word in JOBKIT_ACL.split() if word.startswith("+")}
    called = set()
    pattern = r"redis\.p?call\(\s*['\"]([A-Za-z]+)['\"](?:\s*,\s*['\"]([A-Za-z]+)['\"])?"
    for script in (REPO_ROOT / "jobkit" / "backend" / "scripts").glob("*.lua"):
        for name, second in re.findall(pattern, script.read_text()):
            # a container command is allowed by subcommand (xinfo|stream), so name both
            whole = f"{name}|{second}" if name.upper() in CONTAINERS else name
            called.add(whole.lower())
    assert called, "no redis.call found: the pattern is out of date"
    assert called <= allowed, f"add to JOBKIT_ACL and the README: {sorted(called - allowed)}"


# -- TLS ----------------------------------------------------------------------------------------


def test_mutual_tls_on_a_tls_only_server(
    mtls_server: RedisServer,
    pki: Pki,
    start_worker: StartWorker,
    start_scheduler: Callable[[str], WorkerProcess],
    caplog: pytest.LogCaptureFixture,
) -> None:
    admin = mtls_server.client(decode_responses=True)
    admin.acl_log_reset()
    run = exercise(mtls_url(mtls_server, pki), admin, start_worker, start_scheduler, caplog)
    assert_no_secret(run.text, PASSWORD)
    assert _denials(admin) == []


def _tls_url(server: RedisServer, query: str, scheme: str = "rediss") -> str:
    port = server.tls_port
    return f"{scheme}://jobkit:{enc(PASSWORD)}@127.0.0.1:{port}/0" + (f"?{query}" if query else "")


REFUSALS: dict[str, tuple[Callable[[RedisServer, Pki], str], str]] = {
    "no client certificate": (
        lambda s, k: _tls_url(s, f"ssl_ca_certs={k.ca}"),
        # TLS 1.3: the alert may arrive, or only the closed connection, depending on timing
        r"client certificate \(ssl_certfile and ssl_keyfile in the URL\)",
    ),
    "a client certificate from a CA the server does not trust": (
        lambda s, k: _tls_url(
            s, f"ssl_ca_certs={k.ca}&ssl_certfile={k.stranger_cert}&ssl_keyfile={k.stranger_key}"
        ),
        "client certificate",
    ),
    "a server certificate we cannot verify": (
        lambda s, k: _tls_url(s, f"ssl_certfile={k.client_cert}&ssl_keyfile={k.client_key}"),
        "CERTIFICATE_VERIFY_FAILED.*not signed by a CA in ssl_ca_certs",
    ),
    "a wrong key passphrase": (
        lambda s, k: _tls_url(
            s,
            f"ssl_ca_certs={k.ca}&ssl_certfile={k.client_cert}"
            f"&ssl_keyfile={k.client_key_encrypted}&ssl_password={enc(WRONG)}",
        ),
        "could not be loaded.*ssl_password",
    ),
    "plain text to the TLS port": (
        lambda s, k: _tls_url(s, "", scheme="redis"),
        "reset by peer|closed",
    ),
}


@pytest.mark.parametrize("problem", sorted(REFUSALS))
def test_tls_refusals_are_clear_and_quote_no_secret(
    mtls_server: RedisServer, pki: Pki, problem: str
) -> None:
    make_url, expected = REFUSALS[problem]
    done = run_cli("info", url=make_url(mtls_server, pki))
    output = done.stdout + done.stderr
    assert done.returncode == 2, (problem, output)
    assert re.match(r"error: Redis at rediss?://jobkit:\*\*\*@127\.0\.0\.1:\d+/0", output), output
    assert re.search(expected, output), (problem, output)
    assert "Traceback" not in output
    assert_no_secret(output, PASSWORD, WRONG, KEY_PASSPHRASE)
