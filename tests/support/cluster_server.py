"""A real Redis Cluster for tests: six ``redis-server --cluster-enabled yes`` processes (three
masters, three replicas) on free ports under one temp dir, joined by ``redis-cli --cluster
create``. No Docker; every node is a process group of this test run, killed on teardown."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.cluster import ClusterNode
from redis.cluster import RedisCluster as ClusterClient

from tests.support.managed import Managed
from tests.support.server_process import (
    LOOPBACK,
    Address,
    ServerProcess,
    command,
    node_client,
    stop_all,
    wait_for,
)

SLOTS = 16384
WAIT_TIMEOUT = 30.0
CLI_TIMEOUT = 60.0


def _redis_cli() -> str:
    found = shutil.which("redis-cli") or "/usr/bin/redis-cli"
    if not Path(found).is_file():
        raise RuntimeError("no redis-cli binary: install redis-tools or redis-server")
    return found


def _cluster_cli(action: str, *args: str) -> None:
    """``redis-cli --cluster <action> <args> --cluster-yes``; its output in the error when
    it fails."""
    done = subprocess.run(
        [_redis_cli(), "--cluster", action, *args, "--cluster-yes"],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"redis-cli --cluster {action} failed:\n{done.stdout}")


@dataclass(frozen=True)
class SlotRange:
    """Slots ``start``..``end`` (both included), served by ``master`` and copied to
    ``replicas`` (sorted, so that two nodes' views compare equal)."""

    start: int
    end: int
    master: Address
    replicas: tuple[Address, ...]


def _slot_map(client: redis.Redis) -> tuple[SlotRange, ...]:
    """One node's CLUSTER SLOTS, ranges in slot order."""
    ranges = []
    for entry in command(client, "CLUSTER SLOTS"):
        start, end, master, *replicas = entry
        ranges.append(
            SlotRange(
                int(start),
                int(end),
                Address(master[0], int(master[1])),
                tuple(sorted(Address(r[0], int(r[1])) for r in replicas)),
            )
        )
    return tuple(sorted(ranges, key=lambda r: r.start))


class ClusterServers(Managed):
    """Three masters and three replicas, each its own ``redis-server`` in cluster mode.

    ``node_timeout_ms`` is short (2 s) so a killed master is replaced within a few seconds,
    and ``cluster-replica-validity-factor 0`` lets any replica take over however long it was
    cut off. No RDB snapshots; AOF only with ``appendonly=True``. Use as a context manager, or
    call :meth:`start` and :meth:`stop`.

    Nodes are known by 127.0.0.1 unless ``host`` names another address of this machine (a
    bridge that clients in other network namespaces reach): then every node listens there
    too and announces it (``cluster-announce-ip``), so the slot map, MOVED replies and
    :attr:`startup_nodes` all give addresses those clients can reach.
    """

    def __init__(
        self,
        *,
        masters: int = 3,
        appendonly: bool = False,
        node_timeout_ms: int = 2000,
        host: str = LOOPBACK,
    ) -> None:
        # /tmp rather than pytest's tmp_path: short paths, and one place to remove.
        self.directory = Path(tempfile.mkdtemp(prefix="jobkit-cluster-", dir="/tmp"))
        self.nodes: list[ServerProcess] = []
        for index in range(masters * 2):
            node_dir = self.directory / f"node{index}"
            options = [
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(node_dir / "nodes.conf"),
                "--cluster-node-timeout", str(node_timeout_ms),
                "--cluster-replica-validity-factor", "0",
                "--save", "",
                "--appendonly", "yes" if appendonly else "no",
                "--appendfsync", "everysec",
                # A replica's first sync would otherwise wait 5 s for others to join it.
                "--repl-diskless-sync-delay", "0",
                # CLUSTER SLOTS lists a replica only once its replication offset is past 0,
                # which on an idle master takes its first ping to replicas (every 10 s).
                "--repl-ping-replica-period", "1",
            ]  # fmt: skip
            if host != LOOPBACK:
                options += ["--cluster-announce-ip", host]
            self.nodes.append(ServerProcess(node_dir, options, bus_port=True, host=host))

    # --- addresses -------------------------------------------------------------------------

    @property
    def startup_nodes(self) -> list[Address]:
        """Every node's ``(host, port)``, the running and the stopped."""
        return [node.address for node in self.nodes]

    @property
    def url(self) -> str:
        """``redis://`` URL of the first node, as ``RedisCluster.from_url`` takes it."""
        return f"redis://{self.nodes[0].address}"

    def node(self, port: int) -> ServerProcess:
        """The node listening on ``port``."""
        for node in self.nodes:
            if node.port == port:
                return node
        raise KeyError(f"no cluster node on port {port}")

    def node_id(self, port: int) -> str:
        """The cluster's id for the node on ``port`` (CLUSTER MYID)."""
        with self.node(port).client() as client:
            return str(command(client, "CLUSTER MYID"))

    def _running(self) -> list[ServerProcess]:
        return [node for node in self.nodes if node.running]

    def _ask(self) -> redis.Redis:
        """A client on some running node, for questions any node can answer."""
        running = self._running()
        if not running:
            raise RuntimeError("no cluster node is running")
        return running[0].client()

    # --- the slot map ----------------------------------------------------------------------

    def slot_map(self) -> tuple[SlotRange, ...]:
        """The slot ranges as one running node sees them."""
        with self._ask() as client:
            return _slot_map(client)

    def masters(self) -> list[Address]:
        """The masters serving slots now, in the order of their first slot."""
        found: list[Address] = []
        for slot_range in self.slot_map():
            if slot_range.master not in found:
                found.append(slot_range.master)
        return found

    def replicas_of(self, master: tuple[str, int]) -> list[Address]:
        """The replicas a master's slots are copied to."""
        for slot_range in self.slot_map():
            if slot_range.master == master:
                return list(slot_range.replicas)
        raise KeyError(f"{master} serves no slot")

    def key_slot(self, key: str) -> int:
        """The slot of ``key`` (CLUSTER KEYSLOT, so hash tags count as Redis counts them)."""
        with self._ask() as client:
            return int(command(client, "CLUSTER KEYSLOT", key))

    def master_of_slot(self, slot: int) -> Address:
        """The master serving ``slot`` now."""
        for slot_range in self.slot_map():
            if slot_range.start <= slot <= slot_range.end:
                return slot_range.master
        raise KeyError(f"slot {slot} is not served")

    def node_for_key(self, key: str) -> Address:
        """The master serving the slot of ``key``."""
        return self.master_of_slot(self.key_slot(key))

    # --- clients and data ------------------------------------------------------------------

    def client(self) -> ClusterClient:
        """A redis-py cluster client (replies decoded) that knows every node as a start."""
        return ClusterClient(
            startup_nodes=[
                ClusterNode(host, port)  # type: ignore[no-untyped-call]
                for host, port in self.startup_nodes
            ],
            decode_responses=True,
            socket_timeout=5.0,
            socket_connect_timeout=5.0,
        )

    def flushall(self) -> None:
        """FLUSHALL on every master (replicas follow)."""
        for master in self.masters():
            with node_client(master) as client:
                client.flushall()

    # --- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the six nodes, create the cluster and wait until it is whole."""
        for node in self.nodes:
            node.start()
        _cluster_cli("create", *(str(a) for a in self.startup_nodes), "--cluster-replicas", "1")
        self.wait_ok()

    def is_ok(self) -> bool:
        """Whether the cluster is whole: every running node reports ``cluster_state:ok`` and
        the same slot map, which covers all slots and lists exactly the running nodes, and
        every running replica's link is up."""
        try:
            views = set()
            for node in self._running():
                with node.client() as client:
                    if command(client, "CLUSTER INFO")["cluster_state"] != "ok":
                        return False
                    replication = client.info("replication")
                    if replication["role"] == "slave" and replication["master_link_status"] != "up":
                        return False
                    views.add(_slot_map(client))
        except (redis.ConnectionError, redis.TimeoutError):
            return False
        if len(views) != 1:
            return False
        (view,) = views
        running = {node.address for node in self._running()}
        listed = {r.master for r in view} | {a for r in view for a in r.replicas}
        covered = sum(r.end - r.start + 1 for r in view)
        # The map lists exactly the running nodes: a killed master has been replaced (or a
        # killed replica marked failed) and a restarted node has rejoined.
        return covered == SLOTS and listed == running

    def wait_ok(self, timeout: float = WAIT_TIMEOUT) -> None:
        """Wait until :meth:`is_ok`."""
        wait_for(self.is_ok, timeout, "the cluster to be whole (cluster_state:ok, one slot map)")

    def kill(self, port: int) -> None:
        """SIGKILL the node on ``port`` (its whole process group)."""
        self.node(port).kill()

    def restart(self, port: int) -> None:
        """Start the node on ``port`` again, same directory and nodes.conf; it rejoins (as a
        replica if its slots were taken over meanwhile). Call :meth:`wait_ok` after."""
        self.node(port).start()

    def heal(self, timeout: float = WAIT_TIMEOUT) -> None:
        """Restart every stopped node and wait until the cluster is whole again."""
        for node in self.nodes:
            node.start()
        self.wait_ok(timeout)

    def stop(self) -> None:
        """SIGTERM every node's group, SIGKILL what is left after 5 s, remove the directory."""
        try:
            stop_all(self.nodes)
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    setup = start
    teardown = stop

    # --- moving slots ----------------------------------------------------------------------

    def reshard(self, from_port: int, to_port: int, slots: int) -> None:
        """Move ``slots`` slots, keys included, from one master to another with
        ``redis-cli --cluster reshard``; it takes the source's lowest slots. Waits until the
        cluster is whole again."""
        self.wait_ok()
        _cluster_cli(
            "reshard", str(self.node(to_port).address),
            "--cluster-from", self.node_id(from_port),
            "--cluster-to", self.node_id(to_port),
            "--cluster-slots", str(slots),
        )  # fmt: skip
        self.wait_ok()

    def move_slot(self, slot: int, to_port: int) -> None:
        """Move one given slot, keys included, to the master on ``to_port``; see
        :meth:`move_slots`."""
        self.move_slots([slot], to_port)

    def move_slots(self, slots: Iterable[int], to_port: int) -> None:
        """Move the given slots, keys included, to the master on ``to_port``, and wait until
        the cluster is whole again.

        ``redis-cli --cluster reshard`` cannot be told which slots to move, so this runs the
        steps it runs for each slot: SETSLOT IMPORTING on the target, MIGRATING on the source,
        MIGRATE of the keys in batches, then SETSLOT NODE on target, source and every other
        master. Meanwhile clients get ASK redirects for the keys already moved.
        """
        target = self.node(to_port).address
        target_id = self.node_id(to_port)
        for slot in slots:
            source = self.master_of_slot(slot)
            if source != target:
                self._move(slot, source, target, target_id)
        self.wait_ok()

    def _move(self, slot: int, source: Address, target: Address, target_id: str) -> None:
        source_id = self.node_id(source.port)
        with node_client(source, 10.0) as src, node_client(target, 10.0) as dst:
            command(dst, "CLUSTER SETSLOT", slot, "IMPORTING", source_id)
            command(src, "CLUSTER SETSLOT", slot, "MIGRATING", target_id)
            while keys := command(src, "CLUSTER GETKEYSINSLOT", slot, 100):
                command(
                    src, "MIGRATE", target.host, target.port, "", 0, 5000, "REPLACE", "KEYS", *keys
                )
            # The target first: once the source answers MOVED, the target must already serve
            # the slot, or clients would bounce between the two.
            command(dst, "CLUSTER SETSLOT", slot, "NODE", target_id)
            command(src, "CLUSTER SETSLOT", slot, "NODE", target_id)
        # The others would learn it by gossip; telling them spares clients a stale MOVED.
        for other in self.masters():
            if other not in (source, target):
                with node_client(other) as client:
                    command(client, "CLUSTER SETSLOT", slot, "NODE", target_id)
