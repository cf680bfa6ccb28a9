"""``jobkit.Queue``: an app object for those who configure in code.

::

    q = jobkit.Queue(redis="redis://jobs.internal:6379/0")

    @q.task()
    def my_task(param: int) -> int: ...

    job = my_task(param=1)        # dispatched on q's Redis
    q.get_job(job.id).status

A ``Queue`` holds its own settings and its own connection, made on first use: two of
them in one process (two Redis servers, two prefixes) never mix. Its tasks and the job
classes dispatched through :meth:`Queue.dispatch` go to its Redis; the module-level
functions (``MyJob.dispatch()``, ``jobkit.get_job()``, ``@jobkit.task``) keep using the
default connection from ``JOBKIT_REDIS_URL``.

Job names are global to the process (a worker looks a job up by name), so a function
decorated on two queues needs a ``name=`` on one of them.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from jobkit.backend.store import Store
from jobkit.connection import connect, replace_default
from jobkit.errors import ConfigurationError
from jobkit.handle import JobHandle
from jobkit.job import BaseJob
from jobkit.redact import redacted
from jobkit.settings import Settings, load_settings
from jobkit.tasks import Task, task_decorator

log = logging.getLogger("jobkit")

_made: weakref.WeakSet[Queue] = weakref.WeakSet()  # every Queue of this process


class Queue:
    """Settings and a connection of their own, and the tasks that use them.

    ``redis``: the Redis URL (any scheme ``JOBKIT_REDIS_URL`` takes); ``None`` takes
    ``JOBKIT_REDIS_URL``, or the embedded Redis when that is unset. Other keywords are
    settings by their :class:`~jobkit.Settings` names (``prefix``, ``result_ttl``,
    ``max_payload``, ...); ``JOBKIT_*`` variables fill the rest.
    """

    def __init__(self, redis: str | None = None, **settings: Any) -> None:
        if redis is not None:
            settings["redis_url"] = redis
        self._overrides = settings
        self._settings: Settings | None = None  # read on first use: see settings
        self._store: Store | None = None
        self._lock = threading.Lock()
        _made.add(self)

    @property
    def settings(self) -> Settings:
        """Its settings: the environment's with its own on top, read on first use (a
        module making a Queue is imported before a worker's flags have set up the
        environment it validates against). An invalid one raises ConfigurationError."""
        if self._settings is None:
            self._settings = load_settings(**self._overrides)
        return self._settings

    def __repr__(self) -> str:
        return f"<jobkit.Queue redis={redacted(self._overrides.get('redis_url') or '')!r}>"

    @property
    def store(self) -> Store:
        """This queue's store, connected on first use."""
        store = self._store
        if store is None:
            with self._lock:
                if self._store is None:
                    self._store = connect(self.settings)
                store = self._store
        return store

    def use_store(self, store: Store | None) -> Store | None:
        """Send this queue's jobs through ``store`` instead (None: connect again on next
        use); returns the one it replaces (the testing mode swaps its own in, and back)."""
        with self._lock:
            old, self._store = self._store, store
        return old

    def task(self, fn: Callable[..., Any] | None = None, /, *, bind: bool = False,
             **options: Any) -> Any:  # fmt: skip
        """``@q.task()``: as :func:`jobkit.task`, on this queue's Redis."""
        return task_decorator(fn, self, bind, options)

    def dispatch(self, job: type[BaseJob[Any]] | Task[Any, Any], /, **params: Any) -> JobHandle:
        """Dispatch a job class or a task here, with keyword params (options as for
        ``BaseJob.dispatch``: ``delay``, ``at``, ``queue``, ``priority``, ``job_id``)."""
        cls = job.job if isinstance(job, Task) else job
        return cls.dispatch(store=self.store, **params)

    def dispatch_params(
        self, job: type[BaseJob[Any]] | Task[Any, Any], params: Mapping[str, Any], /,
        **options: Any,
    ) -> JobHandle:  # fmt: skip
        """:meth:`dispatch` with the params as data (a request body), apart from the
        options, so a key named like an option stays a param."""
        cls = job.job if isinstance(job, Task) else job
        return cls.dispatch_params(params, store=self.store, **options)

    def get_job(self, job_id: str) -> JobHandle:
        """A handle for ``job_id`` on this queue's Redis (``Status.UNKNOWN`` if absent)."""
        handle = JobHandle(job_id, self.store)
        handle.refresh()
        return handle

    def close(self) -> None:
        """Drop the connection (a later call makes a new one)."""
        with self._lock:
            store, self._store = self._store, None
        if store is not None:
            store.redis.close()


def adopt_queue_redis(settings: Settings) -> Settings:
    """The settings a ``jobkit worker`` or ``jobkit scheduler`` serves with, once its
    ``-A`` modules are imported: ``settings`` when they name a Redis (``--redis-url``,
    ``JOBKIT_REDIS_URL``); else the Redis (and prefix) of the one :class:`Queue` those
    modules made with ``redis=...``, as ``celery -A app worker`` takes the app's broker.
    Queues on several Redis servers are an error: which one to serve is not guessed."""
    if settings.redis_url:
        return settings
    named = {
        (q._overrides["redis_url"], q._overrides.get("prefix") or settings.prefix)
        for q in list(_made)
        if q._overrides.get("redis_url")
    }
    if not named:
        return settings
    if len(named) > 1:
        raise ConfigurationError(
            "the app modules make jobkit.Queue objects on several Redis servers: "
            "say which to serve with --redis-url"
        )
    ((url, prefix),) = named
    log.info("serving the Redis of the app's jobkit.Queue: %s", redacted(url or ""))
    adopted = settings.model_copy(update={"redis_url": url, "prefix": prefix})
    replace_default(None, adopted)  # the rest of this process's settings stay
    return adopted
