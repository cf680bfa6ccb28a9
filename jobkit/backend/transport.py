"""How jobkit reaches Redis: which deployment a URL names, the redis-py client for it, and
the transport the stores send their commands through. One transport per mode:

=========================================  ==========  ===============================
URL                                        mode        transport
=========================================  ==========  ===============================
``redis://``, ``rediss://``, ``unix://``   one node    :class:`~.wire.Wire`: a direct
                                                       socket per thread (the fast path)
``redis+sentinel://h:p[,h:p...]/service``  Sentinel    :class:`~.wire.Wire` on the
(``rediss+sentinel://`` for TLS)                       primary the sentinels name; a
                                                       failover breaks the connection
                                                       and the next one finds the new
                                                       primary
``redis+cluster://h:p[,h:p...]``           Cluster     :class:`~.cluster.ClusterWire`:
(``rediss+cluster://`` for TLS)                        redis-py's cluster client, which
                                                       follows MOVED and ASK and
                                                       refreshes the slot map
=========================================  ==========  ===============================

Which commands may be sent again after a lost reply is the same in every mode (see
:mod:`.wire` and ``scripts.REPEATABLE``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ClusterError, RedisClusterException
from redis.retry import Retry
from redis.sentinel import Sentinel

from jobkit.errors import ConfigurationError
from jobkit.settings import REDIS_SCHEMES

# What Redis out of reach raises (a refused connection, a reply that never came): the
# layers above the store answer it as "unavailable" (a 503 over HTTP) without naming redis.
UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError)
RedisError = redis.RedisError  # anything Redis refused or failed at, UNAVAILABLE included
ResponseError = redis.ResponseError  # Redis refused a command (a key of another type, ...)
# what a long-running process (worker, scheduler, archiver) rides out: any Redis failure,
# the cluster client's own (not RedisErrors), and a reply that is not text
TROUBLE = (redis.RedisError, RedisClusterException, UnicodeDecodeError)


class Mode(str, Enum):
    """The deployment a Redis URL names."""

    NODE = "node"
    SENTINEL = "sentinel"
    CLUSTER = "cluster"


SCHEMES = {
    scheme: Mode.CLUSTER if "cluster" in scheme else Mode.SENTINEL if "sentinel" in scheme
    else Mode.NODE
    for scheme in REDIS_SCHEMES
}  # fmt: skip


def mode_of(url: str) -> Mode:
    """The mode of ``url``; a scheme that is none of :data:`SCHEMES` is an error that
    lists them (the URL itself is not quoted: it may hold a password)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    try:
        return SCHEMES[scheme]
    except KeyError:
        raise ConfigurationError(
            f"unknown Redis URL scheme {scheme!r}: use one of "
            + ", ".join(f"{s}://" for s in SCHEMES)
        ) from None


@dataclass(frozen=True)
class MultiHost:
    """A ``redis+sentinel://`` or ``redis+cluster://`` URL, taken apart."""

    tls: bool
    hosts: list[tuple[str, int]]
    path: str  # the Sentinel service name (or a database number)
    username: str | None
    password: str | None
    query: dict[str, str]


def parse_multi_host(url: str) -> MultiHost:
    """Split a URL whose netloc lists several ``host:port`` (urllib cannot)."""
    scheme, _, rest = url.partition("://")
    parts = urlsplit("x://" + rest)  # the netloc as urllib sees it, credentials included
    netloc = parts.netloc
    username = password = None
    if "@" in netloc:
        creds, netloc = netloc.rsplit("@", 1)
        user, sep, word = creds.partition(":")
        username, password = (unquote(user) or None), (unquote(word) if sep else None)
    hosts: list[tuple[str, int]] = []
    for item in netloc.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigurationError(f"{scheme}:// needs host:port pairs, comma-separated")
        hosts.append((host.strip("[]"), int(port)))
    return MultiHost(
        tls=scheme.lower().startswith("rediss"),
        hosts=hosts,
        path=unquote(parts.path.lstrip("/")),
        username=username,
        password=password,
        query=dict(parse_qsl(parts.query)),
    )


def make_client(url: str, options: dict[str, Any]) -> Any:
    """The redis-py client for ``url`` with connection ``options`` (timeouts, TLS ...):
    ``redis.Redis``, or for a cluster ``RedisCluster``."""
    mode = mode_of(url)
    if mode is Mode.NODE:
        return redis.Redis.from_url(url, **options)
    spec = parse_multi_host(url)
    node: dict[str, Any] = {"username": spec.username, "password": spec.password}
    node.update({"ssl": True} if spec.tls else {})
    node.update({k: v for k, v in spec.query.items() if not k.startswith("sentinel_")})
    node.update(options)
    if mode is Mode.CLUSTER:
        nodes = [ClusterNode(host, port) for host, port in spec.hosts]  # type: ignore[no-untyped-call]
        # redis-py would send a command again after a connection failure; whether one may
        # be sent again is jobkit's to say (see cluster.ClusterWire)
        node.setdefault("retry", Retry(NoBackoff(), 0))
        return _cluster_client(nodes, node)
    if not spec.path:
        raise ConfigurationError("redis+sentinel:// needs the service name as its path")
    sentinel_options: dict[str, Any] = {
        k.removeprefix("sentinel_"): v for k, v in spec.query.items() if k.startswith("sentinel_")
    }
    sentinel_options.update(
        {k: options[k] for k in ("socket_timeout", "socket_connect_timeout") if k in options}
    )
    if spec.tls:
        sentinel_options.setdefault("ssl", True)
    sentinel = Sentinel(spec.hosts, sentinel_kwargs=sentinel_options)  # type: ignore[no-untyped-call,unused-ignore]
    return sentinel.master_for(spec.path, **node)  # type: ignore[no-untyped-call,unused-ignore]


# A cluster client asks a node for the slot map and the command table as it is built. In
# the seconds a failover takes, the node it asks may be a dead master still in the map:
# it is built again, this long apart at first (doubling), for this long at most.
CLUSTER_PATIENCE = 30.0
CLUSTER_PAUSE = 0.1


def _cluster_client(nodes: list[ClusterNode], options: dict[str, Any]) -> RedisCluster:
    deadline = time.monotonic() + CLUSTER_PATIENCE
    pause = CLUSTER_PAUSE
    while True:
        try:
            return RedisCluster(startup_nodes=nodes, **options)
        except (redis.ConnectionError, redis.TimeoutError, ClusterError, RedisClusterException):
            if time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


class Pending(Protocol):
    """Replies of commands sent and not read yet (see ``Wire.send``)."""

    replies: list[Any] | None
    error: Exception | None

    def read(self) -> None: ...


class Transport(Protocol):
    """What the stores send commands through: :class:`~.wire.Wire` on one node,
    :class:`~.cluster.ClusterWire` on a cluster."""

    packs: bool  # takes commands packed ahead (execute_packed)

    def execute(self, *command: Any, repeatable: bool = True) -> Any: ...
    def execute_packed(self, data: bytes, *, repeatable: bool = True) -> Any: ...
    def pipeline(self, commands: Sequence[Any], *, repeatable: bool = True) -> list[Any]: ...
    def stream(self, commands: Iterable[Any]) -> list[Any]: ...
    def send(self, commands: Sequence[Any]) -> Any: ...
    def tell(self, commands: Sequence[Any]) -> None: ...
    def tell_packed(self, data: bytes) -> None: ...
    def collect(self, inflight: Any) -> list[Any]: ...
    def wait_then(
        self, keys: Sequence[str], timeout: float, commands: Sequence[Any]
    ) -> list[Any]: ...
    def client_id(self) -> int: ...
    def load_scripts(self, scripts: Mapping[str, str]) -> None: ...


def transport_for(client: Any) -> Transport:
    """The transport for a redis-py ``client`` (see the module doc)."""
    if isinstance(client, RedisCluster):
        from jobkit.backend.cluster import ClusterWire

        return ClusterWire(client)
    from jobkit.backend.wire import Wire

    return Wire(client)
