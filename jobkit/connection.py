"""The default connection: one Store per process, created lazily from settings.

Pass a :class:`~jobkit.store.Store` explicitly where you need several; this module only
saves the common case from plumbing one through every call.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis

from jobkit.embedded import ensure_embedded
from jobkit.settings import Settings, load_settings
from jobkit.store import Store

log = logging.getLogger("jobkit")

_lock = threading.Lock()
_settings: Settings | None = None
_store: Store | None = None


def configure(**overrides: Any) -> Settings:
    """Set jobkit's settings for this process (keyword names as in :class:`Settings`)."""
    global _settings, _store
    with _lock:
        _settings = load_settings(**overrides)
        _store = None
        return _settings


def get_settings() -> Settings:
    global _settings
    settings = _settings  # set once and then only replaced whole: no lock to read it
    if settings is not None:
        return settings
    with _lock:
        if _settings is None:
            _settings = load_settings()
        return _settings


def redacted(url: str) -> str:
    """``url`` with any password replaced, for logs."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def resolve_url(settings: Settings) -> str:
    """The configured Redis URL, or the project's embedded Redis (started if needed)."""
    if settings.redis_url:
        log.info("using Redis at %s", redacted(settings.redis_url))
        return settings.redis_url
    return ensure_embedded(settings.data_dir)


def connect(settings: Settings) -> Store:
    """A new Store for ``settings`` (its own connection pool)."""
    url = resolve_url(settings)
    extra: dict[str, Any] = {} if url.startswith("unix:") else {"socket_keepalive": True}
    client = redis.Redis.from_url(url, decode_responses=True, health_check_interval=30, **extra)
    return Store(client, settings.prefix)


def get_store() -> Store:
    """The process-wide Store, connected on first use."""
    global _store
    store = _store  # dispatch's hot path: no lock once connected
    if store is not None:
        return store
    settings = get_settings()
    with _lock:
        if _store is None:
            _store = connect(settings)
        return _store
