"""The fault proxy of the stress suite, against a real redis-server: it forwards byte for
byte, swallows exactly the reply it is asked to (after Redis ran the command), stalls
longer than a client's timeout, and resets connections with an RST."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import hiredis
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.backoff import NoBackoff
from redis.retry import Retry

from stress.proxy import FaultProxy
from stress.replies import complete_replies, offset_after
from tests.conftest import wait_until
from tests.support.redis_server import RedisServer, free_port


@pytest.fixture
def proxy(redis_server: RedisServer) -> Iterator[FaultProxy]:
    redis_server.client().flushall()
    with FaultProxy(upstream=("127.0.0.1", redis_server.port)) as p:
        yield p


def client(proxy: FaultProxy, timeout: float = 0.5) -> redis.Redis:
    """A client through the proxy that never retries: each fault shows."""
    return redis.Redis(port=proxy.port, socket_timeout=timeout, retry=Retry(NoBackoff(), 0))


class Raw:
    """A bare socket speaking RESP, to see exactly which replies arrive."""

    def __init__(self, port: int, timeout: float = 0.5) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.reader = hiredis.Reader()

    def send(self, *commands: tuple[Any, ...]) -> None:
        self.sock.sendall(b"".join(hiredis.pack_command(c) for c in commands))

    def replies(self, want: int | None = None) -> list[Any]:
        """Replies until ``want`` arrived, or until the socket times out."""
        got: list[Any] = []
        while want is None or len(got) < want:
            try:
                data = self.sock.recv(1 << 16)
            except TimeoutError:
                break
            if not data:
                break
            self.reader.feed(data)
            while (reply := self.reader.gets()) is not False:
                got.append(reply)
        return got

    def close(self) -> None:
        self.sock.close()


def test_forwards_commands_pipelines_and_large_values(
    proxy: FaultProxy, redis_server: RedisServer
) -> None:
    c = client(proxy)
    big = b"x" * (3 << 20)  # many chunks each way
    assert c.set("big", big)
    assert c.get("big") == big
    pipe = c.pipeline(transaction=False)
    for _ in range(200):
        pipe.incr("n")
    assert pipe.execute() == list(range(1, 201))
    assert redis_server.client().get("n") == b"200"
    counters = proxy.counters
    assert counters.connections >= 1
    assert counters.bytes_up > 3 << 20 and counters.bytes_down > 3 << 20
    assert counters.replies_dropped == 0


def test_drop_next_reply_runs_the_command_and_leaves_the_client_waiting(
    proxy: FaultProxy, redis_server: RedisServer
) -> None:
    c, other = client(proxy), client(proxy)
    assert c.ping()
    drop = proxy.drop_next_reply(b"incr")  # a command name, any case
    with pytest.raises(redis.TimeoutError):
        c.execute_command("INCR", "counter")
    assert drop.wait(1)
    assert drop.command == "INCR counter"
    assert redis_server.client().get("counter") == b"1"  # Redis ran it
    assert other.ping()  # other connections are untouched
    assert proxy.counters.replies_dropped == 1
    assert proxy.counters.dropped == ["INCR counter"]


def test_a_dropped_connection_stays_silent_until_the_client_closes(proxy: FaultProxy) -> None:
    raw = Raw(proxy.port, timeout=0.3)
    raw.send(("PING",))
    assert raw.replies(1) == [b"PONG"]
    proxy.drop_next_reply(b"ECHO")
    raw.send(("ECHO", "lost"), ("PING",))
    assert raw.replies() == []
    raw.send(("PING",))  # nothing more is forwarded either way
    assert raw.replies() == []
    opened = proxy.counters.open
    raw.close()
    wait_until(lambda: proxy.counters.open < opened, timeout=5, what="the proxy to close it")


def test_drop_matches_a_script_by_its_sha(proxy: FaultProxy, redis_server: RedisServer) -> None:
    c = client(proxy)
    bump = c.register_script("return redis.call('INCR', KEYS[1])")
    other = c.register_script("return 7")
    assert bump(keys=["k"]) == 1  # loads it
    drop = proxy.drop_next_reply(bump.sha.encode())
    assert other() == 7  # not the one
    with pytest.raises(redis.TimeoutError):
        bump(keys=["k"])
    assert drop.command.startswith("EVALSHA " + bump.sha)
    assert redis_server.client().get("k") == b"2"


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    sizes=st.lists(st.sampled_from([0, 1, 10, 4000, 70_000, 200_000]), min_size=1, max_size=12),
    doomed=st.integers(min_value=0, max_value=11),
)
def test_exactly_the_replies_before_the_doomed_one_arrive(
    proxy: FaultProxy, redis_server: RedisServer, sizes: list[int], doomed: int
) -> None:
    """Pipelines of replies of every size (some spanning chunks): the client gets each
    reply before the doomed one intact, then nothing; Redis ran every command."""
    doomed %= len(sizes)
    direct = redis_server.client()
    direct.delete("ran")
    for i, size in enumerate(sizes):
        direct.set(f"v{i}", b"v" * size)
    commands = [("GET", f"v{i}") for i in range(len(sizes))]
    commands.insert(doomed, ("INCR", "ran"))  # the one to doom
    commands.append(("INCR", "ran"))  # after it: runs too, unanswered
    proxy.drop_next_reply(b"INCR")
    raw = Raw(proxy.port, timeout=0.3)
    try:
        raw.send(*commands)
        got = raw.replies()
    finally:
        raw.close()
    assert got == [b"v" * size for size in sizes[:doomed]]
    assert direct.get("ran") == b"2"


def test_reply_boundaries_are_found_with_hiredis() -> None:
    stream = b"+OK\r\n$3\r\nfoo\r\n*2\r\n:1\r\n$1\r\na\r\n-ERR no\r\n"
    assert complete_replies(stream) == 4
    assert complete_replies(stream[:-1]) == 3
    assert [offset_after(stream, n) for n in range(5)] == [0, 5, 14, 29, len(stream)]


def test_stall_holds_traffic_longer_than_the_socket_timeout(proxy: FaultProxy) -> None:
    c = client(proxy, timeout=0.3)
    assert c.ping()
    raw = Raw(proxy.port, timeout=3.0)
    began = time.monotonic()
    proxy.stall(1.0)
    assert proxy.stalled
    with pytest.raises(redis.TimeoutError):
        c.ping()
    raw.send(("PING",))
    assert raw.replies(1) == [b"PONG"]  # held, then delivered
    assert time.monotonic() - began > 0.95
    assert not proxy.stalled
    assert client(proxy).ping()
    assert proxy.counters.stalls == 1
    raw.close()


def test_a_request_given_up_on_during_a_stall_still_runs_late(
    proxy: FaultProxy, redis_server: RedisServer
) -> None:
    """As after a network hiccup: the client timed out, the command arrives anyway."""
    c = client(proxy, timeout=0.2)
    assert c.ping()
    proxy.stall(0.8)
    with pytest.raises(redis.TimeoutError):
        c.set("late", "1")
    c.close()
    direct = redis_server.client()
    assert direct.get("late") is None
    wait_until(lambda: direct.get("late") == b"1", timeout=5, what="the late SET to run")


def test_reset_all_sends_an_rst_on_every_connection(
    proxy: FaultProxy, redis_server: RedisServer
) -> None:
    direct = redis_server.client()
    before = len(direct.client_list())
    raws = [Raw(proxy.port) for _ in range(3)]
    for raw in raws:
        raw.send(("PING",))
        assert raw.replies(1) == [b"PONG"]
    assert proxy.reset_all() == 3
    for raw in raws:
        with pytest.raises(ConnectionResetError):
            raw.sock.recv(10)
        raw.close()
    wait_until(lambda: len(direct.client_list()) <= before, timeout=5, what="Redis to drop them")
    assert client(proxy).ping()  # new connections are fine
    assert proxy.counters.resets == 1
    assert proxy.counters.connections_reset == 3


def test_a_pubsub_connection_is_never_doomed(proxy: FaultProxy, redis_server: RedisServer) -> None:
    sub = client(proxy, timeout=2).pubsub(ignore_subscribe_messages=True)
    sub.subscribe("news")
    wait_until(lambda: sub.get_message(timeout=0.1) is None, timeout=2)
    drop = proxy.drop_next_reply(b"PING")
    sub.ping()  # PING in pub/sub mode: not picked
    redis_server.client().publish("news", "hello")

    def published() -> Any:
        message = sub.get_message(timeout=0.2)  # the PONG comes first
        return message if message and message["type"] == "message" else None

    message = wait_until(published, timeout=5, what="the message")
    assert message["data"] == b"hello"
    assert not drop.fired.is_set()
    with pytest.raises(redis.TimeoutError):
        client(proxy).ping()  # a plain connection is
    assert drop.fired.is_set()
    sub.close()


def test_a_drop_whose_connection_dies_first_picks_the_next_command(proxy: FaultProxy) -> None:
    blocked = Raw(proxy.port, timeout=0.2)
    drop = proxy.drop_next_reply(b"BLPOP")
    blocked.send(("BLPOP", "nothing", "10"))
    assert blocked.replies() == []
    proxy.reset_all()  # the doomed command never got its reply: re-armed
    blocked.close()
    assert not drop.fired.is_set()
    c = client(proxy, timeout=0.5)
    with pytest.raises(redis.TimeoutError):
        c.blpop(["nothing"], timeout=0.1)
    assert drop.wait(1)


def test_an_upstream_that_is_down_closes_the_client() -> None:
    with FaultProxy(upstream=("127.0.0.1", free_port())) as p:
        with pytest.raises(redis.ConnectionError):
            client(p).ping()
        assert p.counters.upstream_refused >= 1


def test_cancelled_drops_never_fire(proxy: FaultProxy) -> None:
    drop = proxy.drop_next_reply(b"PING")
    assert proxy.cancel_drops() == 1
    assert client(proxy).ping()
    assert not drop.fired.is_set()
