"""``BaseJob``: what users subclass, and how a job is dispatched."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, TypeAdapter

from jobkit import registry
from jobkit.connection import get_settings, get_store
from jobkit.handle import JobHandle
from jobkit.keys import lane_name
from jobkit.models import NewJob
from jobkit.retry import Retry
from jobkit.schedule import Cron, bind_schedules
from jobkit.store import Store

MAX_PRIORITY = 1000
# keyword arguments of dispatch() that are options, not params
DISPATCH_OPTIONS = frozenset({"delay", "at", "queue", "priority", "job_id", "store"})
_JOB_ID = re.compile(r"[^\s]{1,200}")


class NoParams(BaseModel):
    """Params of a job that takes none."""

    model_config = ConfigDict(extra="forbid")


def _seconds(value: float | timedelta | None) -> float:
    if value is None:
        return 0.0
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _epoch_ms(at: datetime | None) -> int:
    if at is None:
        return 0
    if at.tzinfo is None:
        at = at.astimezone()  # naive means local time, as datetime.now() gives
    return int(at.astimezone(timezone.utc).timestamp() * 1000)


class BaseJob:
    """Subclass with a nested pydantic ``Params`` model and a ``perform()`` method.

    Class options: ``name`` (stable registry name, default ``module.Class``), ``queue``,
    ``priority`` (higher runs first), ``retry``, ``timeout`` (hard limit per attempt),
    ``result_ttl`` (seconds) and ``tags`` (only workers carrying all of them run it).
    """

    Params: ClassVar[type[BaseModel]] = NoParams
    name: ClassVar[str] = ""
    queue: ClassVar[str] = "default"
    priority: ClassVar[int] = 0
    retry: ClassVar[Retry] = Retry()
    timeout: ClassVar[float | timedelta | None] = None
    result_ttl: ClassVar[int | None] = None
    tags: ClassVar[frozenset[str] | set[str]] = frozenset()
    schedule: ClassVar[Cron | None] = None
    schedules: ClassVar[Sequence[Cron]] = ()
    _params_adapter: ClassVar[TypeAdapter[list[BaseModel]] | None] = None  # see _params_list

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__ or not cls.name:
            cls.name = registry.default_name(cls)
        if not isinstance(cls.retry, Retry):
            raise TypeError(f"{cls.__qualname__}.retry must be a jobkit.Retry")
        if not -MAX_PRIORITY <= cls.priority <= MAX_PRIORITY:
            raise ValueError(f"{cls.__qualname__}.priority must be within ±{MAX_PRIORITY}")
        cls.tags = frozenset(cls.tags)
        clash = DISPATCH_OPTIONS.intersection(cls.Params.model_fields)
        if clash:
            raise TypeError(
                f"{cls.__qualname__}.Params field(s) {', '.join(sorted(clash))} would be taken "
                "as dispatch() options: rename them"
            )
        bind_schedules(cls)  # a bad schedule fails here, at import, not when it fires
        registry.register(cls.name, cls)

    def __init__(self, params: BaseModel, *, job_id: str = "", attempt: int = 1) -> None:
        self.params = params
        self.job_id = job_id
        self.attempt = attempt

    def perform(self) -> Any:
        """Do the work; the return value (JSON-serialisable) becomes the job's result."""
        raise NotImplementedError(f"{type(self).__qualname__} must define perform()")

    # -- dispatch ------------------------------------------------------------------------

    @classmethod
    def timeout_seconds(cls) -> float:
        return _seconds(cls.timeout)

    @classmethod
    def _new_job(
        cls,
        params: Mapping[str, Any],
        *,
        delay: float | timedelta | None,
        at: datetime | None,
        queue: str | None,
        priority: int | None,
        job_id: str | None,
    ) -> NewJob:
        params_type = cls.Params
        model = params_type.model_validate(params)  # raises ValidationError, writes nothing
        if job_id is not None and not _JOB_ID.fullmatch(job_id):
            raise ValueError("job_id must be 1-200 characters with no whitespace")
        spec = cls._spec(delay=delay, at=at, queue=queue, priority=priority)
        # as model_dump_json(), but bytes: they go to Redis as they are
        params_json = params_type.__pydantic_serializer__.to_json(model)
        # 128 random bits, as uuid4 but cheaper
        return NewJob(job_id or os.urandom(16).hex(), params_json, *spec)

    @classmethod
    def _params_list(cls) -> TypeAdapter[list[BaseModel]]:
        """Validates a whole list of params in one call (a pydantic-core loop, not a
        Python one); an error names the item by its index. Built on first use."""
        adapter: TypeAdapter[list[BaseModel]] | None
        adapter = cls.__dict__.get("_params_adapter")  # this class's own, not a parent's
        if adapter is None:
            item: Any = cls.Params
            adapter = cls._params_adapter = TypeAdapter(list[item])
        return adapter

    @classmethod
    def _spec(
        cls,
        *,
        delay: float | timedelta | None,
        at: datetime | None,
        queue: str | None,
        priority: int | None,
    ) -> tuple[Any, ...]:
        """What every job of one dispatch call shares, as :meth:`NewJob.spec` orders it."""
        prio = cls.priority if priority is None else priority
        if not -MAX_PRIORITY <= prio <= MAX_PRIORITY:
            raise ValueError(f"priority must be within ±{MAX_PRIORITY}")
        # the usual no-delay case without conversions: dispatch's hot path
        return (
            cls.name,
            lane_name(queue or cls.queue, cls.tags) if cls.tags else queue or cls.queue,
            prio,
            0 if delay is None else int(_seconds(delay) * 1000),
            0 if at is None else _epoch_ms(at),
            cls.retry.max_attempts,
            cls.timeout_seconds(),
            cls.result_ttl or get_settings().result_ttl,
        )

    @classmethod
    def dispatch(
        cls,
        *,
        delay: float | timedelta | None = None,
        at: datetime | None = None,
        queue: str | None = None,
        priority: int | None = None,
        job_id: str | None = None,
        store: Store | None = None,
        **params: Any,
    ) -> JobHandle:
        """Validate ``params`` and store the job; returns its handle at once.

        ``job_id`` is an idempotency key: if a job with that id exists, its handle is
        returned and nothing is written.
        """
        job = cls._new_job(
            params, delay=delay, at=at, queue=queue, priority=priority, job_id=job_id
        )
        store = store or get_store()
        _, status = store.enqueue(job, check=job_id is not None)
        return JobHandle(job.id, store, status=status)

    @classmethod
    def dispatch_many(
        cls,
        params_list: Sequence[Mapping[str, Any]],
        *,
        delay: float | timedelta | None = None,
        at: datetime | None = None,
        queue: str | None = None,
        priority: int | None = None,
        store: Store | None = None,
    ) -> list[JobHandle]:
        """Validate every params mapping first, then store all jobs in one request (its
        parts are sent as they are packed, so Redis stores the first while the rest are
        serialised)."""
        items = params_list if isinstance(params_list, list | tuple) else list(params_list)
        models = cls._params_list().validate_python(items)  # an error writes nothing
        spec = cls._spec(delay=delay, at=at, queue=queue, priority=priority)
        randoms = os.urandom(16 * len(models)).hex()  # 128 random bits per job
        ids = [randoms[i : i + 32] for i in range(0, len(randoms), 32)]
        store = store or get_store()
        to_json = cls.Params.__pydantic_serializer__.to_json  # as model_dump_json, in bytes
        statuses = store.enqueue_fresh(spec, ids, map(to_json, models))
        return [JobHandle(i, store, status=s) for i, s in zip(ids, statuses, strict=True)]


def get_job(job_id: str, store: Store | None = None) -> JobHandle:
    """A handle for any job id; an id Redis does not hold reports ``Status.UNKNOWN``."""
    handle = JobHandle(job_id, store or get_store())
    handle.refresh()
    return handle
