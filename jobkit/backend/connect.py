"""Making a Store: redis-py's client for a URL, with every option jobkit owns set
explicitly (timeouts, keepalive, no retries inside redis-py, TLS host checks)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from jobkit.backend.store import Store
from jobkit.backend.transport import make_client
from jobkit.errors import ConfigurationError
from jobkit.redact import redacted
from jobkit.settings import Settings


def redis_options(settings: Settings, url: str) -> dict[str, Any]:
    """redis-py connection keyword arguments for ``settings``: every timeout explicit."""
    options: dict[str, Any] = {
        "decode_responses": True,
        # a key or value that is not UTF-8 (written by something else) reads as text with
        # U+FFFD in it instead of failing the whole reply: listings and reads go on. (The
        # worker's claims go through wire.py, strictly decoded, and claim.lua dead-letters
        # such a job before its bytes could reach a reply.)
        "encoding_errors": "replace",
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.socket_connect_timeout,
        "health_check_interval": settings.health_check_interval,
        # No retries inside redis-py (its default for pooled connections, made explicit):
        # a retried timeout doubles the wait on a frozen Redis, and jobkit retries where it
        # is safe (the wire once on a fresh connection, workers and the scheduler in loops).
        "retry": Retry(NoBackoff(), 0),
        **_maint_notifications_off(),
    }
    if settings.tcp_keepalive and not url.startswith("unix:"):
        options["socket_keepalive"] = True
        options["socket_keepalive_options"] = _keepalive_options(settings.tcp_keepalive)
    if url.startswith("rediss:") and _query_value(url, "ssl_cert_reqs").lower() != "none":
        # redis-py 5 verifies the certificate but not that it names the host; 6+ does both.
        # A URL's own ssl_check_hostname still wins (redis-py lets URL arguments override).
        options["ssl_check_hostname"] = True
    return options


def _maint_notifications_off() -> dict[str, Any]:
    """The option that turns redis-py's maintenance notifications off, on redis-py 7 and
    later (none before: nothing to turn off).

    With RESP3, redis-py 8's default, every new connection asks for them (CLIENT
    MAINT_NOTIFICATIONS), and a Redis that has none refuses, an error reply on each
    connection. Where they are served, redis-py answers them by stretching the socket
    timeout to its own ``relaxed_timeout``, while jobkit keeps its timeouts its own; and
    the hot path's direct sockets (see wire.py) read replies themselves, so a
    notification pushed there would be taken for a reply."""
    try:
        from redis.maint_notifications import MaintNotificationsConfig
    except ImportError:
        return {}
    return {"maint_notifications_config": MaintNotificationsConfig(enabled=False)}


def _query_value(url: str, name: str) -> str:
    return parse_qs(urlsplit(url).query).get(name, [""])[0]


def _keepalive_options(idle: int) -> dict[int, int]:
    """Probe after ``idle`` s of silence, then every 5 s; 3 unanswered probes drop the
    connection. Options this platform lacks are left to the system."""
    wanted = {"TCP_KEEPIDLE": idle, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3}
    return {getattr(socket, name): value for name, value in wanted.items() if hasattr(socket, name)}


def store_for(settings: Settings, url: str, describe: Callable[[Exception], str]) -> Store:
    """A new Store on ``url`` for ``settings`` (its own connection pool); ``describe``
    says a Redis failure in one line.

    Raises:
        ConfigurationError: the URL has a value or an option redis-py does not accept.
    """
    try:
        client = make_client(url, redis_options(settings, url))
        pool = getattr(client, "connection_pool", None)
        if pool is not None:
            # Builds a connection object without connecting: a misspelled URL option
            # fails here, by name, instead of inside the first command.
            pool.connection_class(**pool.connection_kwargs)
    except (TypeError, ValueError) as exc:
        # redis-py's messages name the option, never its value.
        raise ConfigurationError(f"Redis URL {redacted(url)}: {exc}") from None
    except (redis.RedisError, RedisClusterException) as exc:  # a cluster client asks at once
        raise ConfigurationError(f"Redis URL {redacted(url)}: {describe(exc)}") from None
    store = Store(
        client,
        settings.prefix,
        durable_replicas=settings.durable_replicas,
        durable_timeout=settings.durable_timeout,
        events_maxlen=settings.events_maxlen,
    )
    store.settings = settings
    return store
