"""The default connection: one Store per process, created lazily from settings.

Pass a :class:`~jobkit.backend.store.Store` explicitly where you need several; this module only
saves the common case from plumbing one through every call.

Every connection gets explicit timeouts from the settings, whatever redis-py's defaults
are: redis-py 5 waits forever by default, so a frozen Redis (a stopped VM, a partition
that drops packets) would hang every call. The hot path's direct sockets
(:mod:`jobkit.backend.wire`) are made from the same pool settings, so they carry them too.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from jobkit.backend.connect import redis_options, store_for
from jobkit.backend.embedded import ensure_embedded
from jobkit.backend.store import Store
from jobkit.redact import redacted
from jobkit.settings import Settings, load_settings

__all__ = [
    "configure",
    "connect",
    "describe_failure",
    "get_settings",
    "get_store",
    "redacted",
    "redis_options",
]

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


def resolve_url(settings: Settings) -> str:
    """The configured Redis URL, or the project's embedded Redis (started if needed)."""
    if settings.redis_url:
        log.info("using Redis at %s", redacted(settings.redis_url))
        return settings.redis_url
    return ensure_embedded(settings.data_dir)


def connect(settings: Settings) -> Store:
    """A new Store for ``settings`` (its own connection pool; the URL resolved, the
    embedded Redis started if none is configured).

    Raises:
        ConfigurationError: the URL has a value or an option redis-py does not accept.
    """
    return store_for(settings, resolve_url(settings), describe_failure)


def describe_failure(exc: Exception) -> str:
    """One line for a user: which Redis (password masked), what went wrong with it, and
    what to check when OpenSSL's wording does not say.

    redis-py's messages name the host and port or the socket path, never a password."""
    settings = _settings
    url = settings.redis_url if settings is not None else None
    where = f"Redis at {redacted(url)}" if url else "the embedded Redis"
    text = str(exc) or type(exc).__name__
    hints = [hint for pattern, hint in _TLS_HINTS if pattern in text]
    return f"{where}: {text}" + "".join(f" ({hint})" for hint in hints)


_TLS_HINTS = (
    (
        "EOF occurred in violation of protocol",
        "the server ended the TLS session: it may require a client certificate "
        "(ssl_certfile and ssl_keyfile in the URL) signed by a CA it trusts",
    ),
    (
        "ALERT_CERTIFICATE_REQUIRED",
        "the server requires a client certificate (ssl_certfile and ssl_keyfile in the URL)",
    ),
    (
        "ALERT_UNKNOWN_CA",
        "the server does not trust the CA that signed the client certificate",
    ),
    (
        "PEM lib",
        "the client certificate or key could not be loaded: check ssl_certfile, "
        "ssl_keyfile and, for an encrypted key, ssl_password",
    ),
    (
        "CERTIFICATE_VERIFY_FAILED",
        "the server's certificate is not signed by a CA in ssl_ca_certs (or the system's), "
        "or does not name the host",
    ),
)


def replace_default(
    store: Store | None, settings: Settings | None
) -> tuple[Store | None, Settings | None]:
    """Make ``store`` and ``settings`` this process's defaults (None: made again from
    the environment on first use); returns those they replace (the testing mode swaps
    its own in, and back)."""
    global _settings, _store
    with _lock:
        old = _store, _settings
        _store, _settings = store, settings
        return old


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
