"""The Redis Cluster a ``--cluster`` run works on, and its fault: a master killed.

Three masters and three replicas (``tests.support.cluster_server.ClusterServers``: one
``redis-server --cluster-enabled yes`` per node, each in a process group of its own, a
2 s ``cluster-node-timeout`` so a replica takes over within seconds). No fault proxy
can sit in front of a cluster: its MOVED replies name the nodes' real ports, so every
jobkit process connects to the nodes themselves.

A master kill is one SIGKILL. The cluster promotes the dead master's replica; once
every node agrees on the new slot map (the *failover*, the fault's duration), the
killed node is started again on its port with its ``nodes.conf`` and rejoins as the
new master's replica. Kills never overlap: a master kill is injected only while the
cluster is whole, so every shard has a replica to promote (a second kill during a
rejoin could take a shard's only copy). Replication is asynchronous, so a write a
master acknowledged just before it died may never reach the replica that takes over.
"""

from __future__ import annotations

import contextlib
import logging
import random
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from redis.crc import key_slot

from jobkit.backend.keys import Keys
from tests.support.cluster_server import ClusterServers
from tests.support.servers import spread_names

log = logging.getLogger("stress")

NODE_TIMEOUT_MS = 2000  # cluster-node-timeout: a dead master is replaced within seconds
FAILOVER_TIMEOUT = 30.0  # kill -> every node agrees on the new slot map
REJOIN_AFTER = 1.0  # the killed node stays down this long after the failover
REJOIN_TIMEOUT = 30.0  # restart -> the node is a replica with its link up


@dataclass
class MasterKill:
    """One killed master: when (epoch ms), and how long until the cluster was whole."""

    address: str
    at_ms: int
    queues: list[str]  # the run's queues whose shards it served
    failover: float | None = None  # kill -> the replica promoted, every node agreeing
    rejoined: float | None = None  # kill -> the node back, as a replica, link up
    error: str = ""


class ClusterRedis:
    """A started Redis Cluster, its jobkit URL, its queues and its master kills."""

    def __init__(self, keep_logs: Path) -> None:
        self.servers = ClusterServers(masters=3, node_timeout_ms=NODE_TIMEOUT_MS)
        self.keep_logs = keep_logs  # node logs are copied here when the run ends
        self.kills: list[MasterKill] = []
        self.watched: tuple[str, ...] = ()  # queues a kill reports it served
        self._healing: threading.Thread | None = None
        self._stopping = threading.Event()  # a heal in progress must not restart a node

    @property
    def url(self) -> str:
        """``redis+cluster://`` with every node as a start node."""
        return "redis+cluster://" + ",".join(f"{h}:{p}" for h, p in self.servers.startup_nodes)

    def start(self) -> None:
        self.servers.start()

    def stop(self) -> None:
        """SIGKILL every node (whole groups), copy their logs, remove their directory."""
        self._stopping.set()
        for node in self.servers.nodes:
            node.kill()
        self.wait_healed(3.0)
        for node in self.servers.nodes:  # one a heal restarted meanwhile
            node.kill()
        for index, node in enumerate(self.servers.nodes):
            with contextlib.suppress(OSError):
                shutil.copy(node.log_path, self.keep_logs / f"node{index}-{node.port}.log")
        self.servers.stop()

    def queues(self, n: int) -> tuple[str, ...]:
        """``n`` queue names whose shards live on ``n`` different masters now."""
        names = tuple(spread_names(self.servers, "jobkit", n))
        self.watched = (*names, "canary")
        return names

    # -- the fault -----------------------------------------------------------------------

    @property
    def healing(self) -> bool:
        """A killed master has not rejoined yet."""
        return self._healing is not None and self._healing.is_alive()

    def kill_master(self, rng: random.Random) -> MasterKill | None:
        """SIGKILL one master at random; a thread waits for the failover, then restarts
        the node. None while the previous kill is still healing."""
        if self.healing:
            return None
        host, port = rng.choice(self.servers.masters())
        served = [q for q in self.watched if self._master_of(q) == (host, port)]
        kill = MasterKill(f"{host}:{port}", int(time.time() * 1000), served)
        began = time.monotonic()
        self.servers.kill(port)
        self.kills.append(kill)
        self._healing = threading.Thread(
            target=self._heal, args=(kill, port, began), name="heal", daemon=True
        )
        self._healing.start()
        return kill

    def _master_of(self, queue: str) -> tuple[str, int]:
        return self.servers.master_of_slot(key_slot(Keys().shard(queue).base.encode()))

    def _heal(self, kill: MasterKill, port: int, began: float) -> None:
        try:
            self.servers.wait_ok(FAILOVER_TIMEOUT)
            kill.failover = round(time.monotonic() - began, 3)
            if self._stopping.wait(REJOIN_AFTER):
                return
            self.servers.restart(port)
            self.servers.wait_ok(REJOIN_TIMEOUT)
            kill.rejoined = round(time.monotonic() - began, 3)
        except (TimeoutError, RuntimeError) as exc:
            kill.error = str(exc)[:300]
            log.error("master %s did not heal: %s", kill.address, kill.error)

    def wait_healed(self, timeout: float) -> bool:
        """Wait for the last kill's failover and rejoin; whether it is over."""
        thread = self._healing
        if thread is not None:
            thread.join(timeout)
        return not self.healing
