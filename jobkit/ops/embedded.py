"""The embedded Redis (``jobkit redis start / stop / status``): one redis-server per data
directory, started when no ``JOBKIT_REDIS_URL`` is set (see :mod:`jobkit.backend.embedded`)."""

from jobkit.backend.embedded import embedded_running, ensure_embedded, stop_embedded

__all__ = ["embedded_running", "ensure_embedded", "stop_embedded"]
