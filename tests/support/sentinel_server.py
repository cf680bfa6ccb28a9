"""A real Sentinel deployment for tests: a primary, a replica and three sentinels, each its own
``redis-server`` process group on a free port under one temp dir. No Docker."""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import redis
from redis.sentinel import Sentinel

from tests.support.managed import Managed
from tests.support.server_process import Address, ServerProcess, command, stop_all, wait_for

WAIT_TIMEOUT = 30.0

DATA_OPTIONS = (
    "--save", "",
    "--appendonly", "no",
    # A replica's first sync would otherwise wait 5 s for others to join it.
    "--repl-diskless-sync-delay", "0",
)  # fmt: skip


def _ask(server: ServerProcess, question: Callable[[redis.Redis], bool]) -> bool:
    """``question`` put to a running server; False if it is down or does not answer."""
    if not server.running:
        return False
    try:
        with server.client() as client:
            return question(client)
    except (redis.ConnectionError, redis.TimeoutError):
        return False


def _link_up(client: redis.Redis) -> bool:
    replication = client.info("replication")
    return bool(replication["role"] == "slave" and replication["master_link_status"] == "up")


def _master_addr(client: redis.Redis, service: str) -> Address | None:
    """The primary of ``service`` one sentinel reports (None if it knows none)."""
    reply = client.sentinel_get_master_addr_by_name(service)
    if not isinstance(reply, (tuple, list)):
        return None
    host, port = reply
    return Address(str(host), int(port))


class SentinelSet(Managed):
    """A primary and a replica of one service, watched by three sentinels (quorum 2).

    A primary is down for the sentinels after ``down_after_ms`` (1 s) without an answer, so a
    failover completes a few seconds after :meth:`kill_primary`. Use as a context manager, or
    call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        service: str = "jobkit",
        *,
        sentinels: int = 3,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
    ) -> None:
        self.service = service
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        # /tmp rather than pytest's tmp_path: short paths, and one place to remove.
        self.directory = Path(tempfile.mkdtemp(prefix="jobkit-sentinel-", dir="/tmp"))
        self.data = [ServerProcess(self.directory / f"data{i}", DATA_OPTIONS) for i in range(2)]
        self.watchers = []
        for index in range(sentinels):
            directory = self.directory / f"sentinel{index}"
            config = directory / "sentinel.conf"
            self.watchers.append(ServerProcess(directory, ["--sentinel"], config=config))

    # --- addresses -------------------------------------------------------------------------

    @property
    def sentinels(self) -> list[Address]:
        """Every sentinel's ``(host, port)``."""
        return [watcher.address for watcher in self.watchers]

    @property
    def url(self) -> str:
        """``redis+sentinel://`` URL naming every sentinel and the service."""
        hosts = ",".join(str(address) for address in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}"

    def server(self, port: int) -> ServerProcess:
        """The data node or sentinel listening on ``port``."""
        for server in (*self.data, *self.watchers):
            if server.port == port:
                return server
        raise KeyError(f"no server of this set on port {port}")

    def _reported(self) -> list[Address]:
        """The primary each running sentinel reports."""
        found = []
        for watcher in self.watchers:
            if not watcher.running:
                continue
            try:
                with watcher.client() as client:
                    reply = _master_addr(client, self.service)
            except (redis.ConnectionError, redis.TimeoutError):
                continue
            if reply:
                found.append(reply)
        return found

    def primary(self) -> Address:
        """The primary most sentinels report now."""
        reported = self._reported()
        if not reported:
            raise RuntimeError(f"no sentinel reports a primary for {self.service!r}")
        return Counter(reported).most_common(1)[0][0]

    def client(self) -> redis.Redis:
        """A redis-py client on the current primary, found through the sentinels, replies
        decoded; it asks the sentinels again after a failover."""
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            self.sentinels, socket_timeout=2.0, socket_connect_timeout=2.0
        )
        primary: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
            self.service, decode_responses=True, socket_timeout=2.0, socket_connect_timeout=2.0
        )
        return primary

    # --- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the primary, the replica (in sync before the sentinels start) and the
        sentinels, and wait until every sentinel knows the replica and the other sentinels."""
        primary, replica = self.data
        primary.start()
        replica.options = [*DATA_OPTIONS, "--replicaof", *map(str, primary.address)]
        replica.start()
        for watcher in self.watchers:
            # Written once: a sentinel rewrites its file with what it learns (and --port).
            assert watcher.config is not None
            watcher.config.write_text(
                f"sentinel monitor {self.service} {primary.address.host} {primary.port} 2\n"
                f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.service} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {self.service} 1\n"
            )
            watcher.start()
        self.wait_ready()

    def is_ready(self) -> bool:
        """Whether a failover could start now: every running replica in sync, and every
        running sentinel agreeing on the primary, knowing the other sentinels and seeing every
        running replica as healthy."""
        reported = self._reported()
        if not reported:
            return False
        primary = Counter(reported).most_common(1)[0][0]
        replicas = {node.address for node in self.data if node.running} - {primary}
        if not all(_ask(self.server(replica.port), _link_up) for replica in replicas):
            return False
        others = len(self.watchers) - 1

        def knows_all(client: redis.Redis) -> bool:
            if _master_addr(client, self.service) != primary:
                return False
            sentinels = client.sentinel_sentinels(self.service)
            if not isinstance(sentinels, list) or len(sentinels) != others:
                return False
            replies = client.sentinel_slaves(self.service)
            healthy = {
                Address(r["ip"], int(r["port"]))
                for r in (replies if isinstance(replies, list) else [])
                if r["flags"] == "slave" and r["master-link-status"] == "ok"
            }
            return replicas <= healthy

        return all(_ask(watcher, knows_all) for watcher in self.watchers if watcher.running)

    def wait_ready(self, timeout: float = WAIT_TIMEOUT) -> None:
        """Wait until :meth:`is_ready`."""
        wait_for(self.is_ready, timeout, f"the sentinels of {self.service!r} to be ready")

    def kill_primary(self) -> Address:
        """SIGKILL the current primary's process group; returns its address."""
        primary = self.primary()
        self.server(primary.port).kill()
        return primary

    def wait_failover(self, old: tuple[str, int], timeout: float = WAIT_TIMEOUT) -> Address:
        """Wait until every running sentinel reports the same primary other than ``old`` and
        that server answers ROLE as a master; returns its address."""
        promoted: list[Address] = []

        def done() -> bool:
            reported = set(self._reported())
            if len(reported) != 1 or old in reported:
                return False
            (new,) = reported
            if not _ask(self.server(new.port), lambda c: command(c, "ROLE")[0] == "master"):
                return False
            promoted.append(new)
            return True

        wait_for(done, timeout, f"a failover of {self.service!r} away from {old}")
        return promoted[-1]

    def restart(self, port: int) -> None:
        """Start the server on ``port`` again. A data node that is not the primary any more
        comes back as a replica of the current one, as an operator would start it."""
        server = self.server(port)
        if server in self.data:
            primary = self.primary()
            following = ["--replicaof", *map(str, primary)] if primary != server.address else []
            server.options = [*DATA_OPTIONS, *following]
        server.start()

    def heal(self, timeout: float = WAIT_TIMEOUT) -> None:
        """Restart every stopped server and wait until the set is ready for a failover."""
        for server in (*self.watchers, *self.data):
            if not server.running:
                self.restart(server.port)
        self.wait_ready(timeout)

    def stop(self) -> None:
        """SIGTERM every group, SIGKILL what is left after 5 s, remove the directory."""
        try:
            stop_all([*self.watchers, *self.data])
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    setup = start
    teardown = stop
