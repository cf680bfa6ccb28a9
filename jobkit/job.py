"""``BaseJob``: what users subclass, and how a job is dispatched."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Generic, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError
from typing_extensions import TypeVar

from jobkit import job_limits, names, registry, tracing, versions
from jobkit.backend.keys import job_id as make_job_id
from jobkit.backend.keys import lane_name
from jobkit.backend.store import Store
from jobkit.connection import get_settings, get_store
from jobkit.cron import Cron, bind_schedules
from jobkit.dispatch_options import (
    MAX_PRIORITY,
    by_field_order,
    celery_options,
    delay_ms,
    epoch_ms,
    seconds,
)
from jobkit.dispatch_options import priority as check_priority
from jobkit.errors import DispatchError, JobkitError
from jobkit.handle import JobHandle
from jobkit.models import JobSpec, NewJob
from jobkit.payload import ParamsCodec, accepted_keys
from jobkit.retry import Retry
from jobkit.settings import Settings

if TYPE_CHECKING:
    from jobkit.workflow import Signature

# keyword arguments of dispatch() that are options, not params
DISPATCH_OPTIONS = frozenset(
    {"delay", "at", "queue", "priority", "job_id", "store", "depends_on", "on_failure"}
)


class NoParams(BaseModel):
    """Params of a job that takes none."""

    model_config = ConfigDict(extra="forbid")


ParamsT = TypeVar("ParamsT", bound=BaseModel, default=Any)


def _params_from_bases(cls: type) -> type[BaseModel] | None:
    """The model of a ``BaseJob[Model]`` base of ``cls``, if it names one."""
    for base in cls.__dict__.get("__orig_bases__", ()):  # its own: not a parent's
        origin = get_origin(base)
        if isinstance(origin, type) and issubclass(origin, BaseJob):
            (arg,) = get_args(base)
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return None


class BaseJob(Generic[ParamsT]):
    """Subclass with a pydantic model for its params and a ``perform()`` method: name the
    model as the base's argument, ``class Resize(BaseJob[ResizeParams])``, so
    ``self.params`` is typed as a ``ResizeParams``; or nest it as ``class Params``.

    Class options: ``name`` (stable registry name, default ``module.Class``), ``queue``,
    ``priority`` (higher runs first), ``retry``, ``timeout`` (hard limit per attempt),
    ``result_ttl`` (seconds) and ``tags`` (only workers carrying all of them run it).
    Names, queues and tags are checked against :mod:`jobkit.names` when the class is
    defined. Limits across every worker, per queue (see :mod:`jobkit.job_limits`):
    ``concurrency`` (running at once), ``rate_limit`` (``"100/m"``: starts spaced
    evenly), ``unique`` / ``unique_for`` (a dispatch of equal params while such a job is
    queued or running returns that job's handle). ``version`` (default 1) with
    :meth:`upgrade`: a payload stored by an older version is upgraded before it is
    validated (see docs/versions-and-tracing.md).
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
    concurrency: ClassVar[int | None] = None
    rate_limit: ClassVar[str | None] = None
    unique: ClassVar[bool] = False
    unique_for: ClassVar[float | timedelta | None] = None
    version: ClassVar[int] = 1
    _limits: ClassVar[job_limits.Limits] = job_limits.Limits()
    _codec: ClassVar[ParamsCodec | None] = None  # each class's own: see _params

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        where = cls.__qualname__
        model = _params_from_bases(cls)
        if model is not None:
            if "Params" in cls.__dict__ and cls.__dict__["Params"] is not model:
                raise TypeError(f"{where}: name its params once, as BaseJob[...] or as Params")
            cls.Params = model
        if "name" not in cls.__dict__ or not cls.name:
            cls.name = registry.default_name(cls)
            names.job_name(cls.name, where=f"default name of {where} (set `name = ...`)")
        names.job_name(cls.name, where=f"{where}.name")
        if not isinstance(cls.retry, Retry):
            raise TypeError(f"{where}.retry must be a jobkit.Retry")
        if not -MAX_PRIORITY <= cls.priority <= MAX_PRIORITY:
            raise ValueError(f"{where}.priority must be within ±{MAX_PRIORITY}")
        names.queue(cls.queue, where=f"{where}.queue")
        cls.tags = names.tags(cls.tags, where=f"{where}.tags")
        cls._limits = job_limits.of_class(cls, where)
        versions.check_class(cls, where)
        clash = DISPATCH_OPTIONS & (accepted_keys(cls.Params) | set(cls.Params.model_fields))
        if clash:
            raise TypeError(
                f"{where}.Params field(s) {', '.join(sorted(clash))} would be taken "
                "as dispatch() options: rename them"
            )
        cls._codec = None  # not the parent's: built on first use by _params()
        cls._check_schedules()  # a bad schedule fails here, at import, not when it fires
        registry.register(cls.name, cls)

    def __init__(self, params: ParamsT, *, job_id: str = "", attempt: int = 1) -> None:
        self.params: ParamsT = params
        self.job_id = job_id
        self.attempt = attempt

    def perform(self) -> Any:
        """Do the work; the return value (JSON-serialisable) becomes the job's result."""
        raise NotImplementedError(f"{type(self).__qualname__} must define perform()")

    @classmethod
    def upgrade(cls, params: dict[str, Any], from_version: int) -> dict[str, Any]:
        """The params of a job stored by version ``from_version`` of this class, as this
        version's ``Params`` reads them (called on the worker, before validation, for a
        job older than the class). The default changes nothing; one that raises
        dead-letters the job (reason invalid_payload)."""
        return params

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Say how far this attempt has got: ``fraction`` from 0 to 1, an optional short
        ``message`` (cut at 200 characters). Cheap to call in a loop: the first value is
        written at once, then at most one every 0.5 s, and the last one when perform()
        ends. Only the attempt holding the job's lease writes; a new attempt starts with
        none. Outside a worker it writes nothing (see :mod:`jobkit.progress`). Raises
        :class:`~jobkit.errors.InvalidProgress` for a fraction or message out of range."""
        from jobkit.progress import report

        report(self, fraction, message)

    # -- dispatch ------------------------------------------------------------------------

    @classmethod
    def timeout_seconds(cls) -> float:
        return seconds(cls.timeout)

    @classmethod
    def _params(cls) -> ParamsCodec:
        """This class's codec, built on first use: a ``Params`` with forward references
        may only be complete by then."""
        codec = cls._codec
        if codec is None:
            codec = cls._codec = ParamsCodec(cls.__qualname__, cls.Params, DISPATCH_OPTIONS)
        return codec

    @classmethod
    def _check_schedules(cls) -> None:
        """Each schedule's params as the scheduler will dispatch them: valid, no unknown
        keys, JSON a worker reads (the size limit is only known when they fire)."""
        for bound in bind_schedules(cls):
            params = dict(bound.cron.params)
            try:
                cls._params().check_keys(params)
                cls._params().encode(cls.Params.model_validate(params), sys.maxsize)
            except (ValidationError, JobkitError) as exc:
                raise ValueError(
                    f"{cls.__qualname__}: params of schedule {bound.cron.expr!r}: {exc}"
                ) from exc

    @classmethod
    def new_job(
        cls,
        params: Mapping[str, Any],
        *,
        delay: float | timedelta | None = None,
        at: datetime | None = None,
        queue: str | None = None,
        priority: int | None = None,
        job_id: str | None = None,
        settings: Settings | None = None,
    ) -> NewJob:
        """Validate ``params`` (a mapping, never mixed with the options) and the options,
        and build the record :meth:`dispatch` stores, without storing it.

        Raises ``pydantic.ValidationError`` for invalid params, a key among them that is
        not a field (unless ``Params`` keeps extra fields) included; else a
        :class:`~jobkit.errors.JobkitError`: an option out of range (``DispatchError``), a
        bad ``job_id`` or ``queue`` (``InvalidName``), params a worker could not read back
        (``SerializationError``) or over ``JOBKIT_MAX_PAYLOAD`` (``PayloadTooLarge``).
        ``settings``: those of the store it is for (a :class:`~jobkit.Queue`'s), else
        the process's.
        """
        settings = settings or get_settings()
        codec = cls._codec or cls._params()
        if type(params) is not dict and not isinstance(params, Mapping):  # the first is cheap
            raise DispatchError(
                f"{cls.__qualname__}: params must be a mapping, not {type(params).__name__}"
            )
        codec.check_keys(params)
        model = cls.Params.model_validate(params)  # raises ValidationError, writes nothing
        if job_id is not None:
            names.job_id(job_id)
        spec = cls._spec(delay=delay, at=at, queue=queue, priority=priority, settings=settings)
        params_json = codec.encode(model, settings.max_payload)
        # a job id names its queue (the shard it lives in): "<queue>:<key>", the key the
        # caller's or 128 random bits (as uuid4, but cheaper)
        key = job_id or os.urandom(16).hex()
        return NewJob(make_job_id(queue or cls.queue, key), params_json, spec)

    @classmethod
    def _spec(
        cls,
        *,
        delay: float | timedelta | None,
        at: datetime | None,
        queue: str | None,
        priority: int | None,
        settings: Settings,
    ) -> JobSpec:
        """What every job of one dispatch call shares."""
        # the usual case, no option given, without a check or conversion: the hot path
        queue = cls.queue if queue is None else names.queue(queue)
        return JobSpec(
            cls.name,
            lane_name(queue, cls.tags) if cls.tags else queue,
            cls.priority if priority is None else check_priority(priority),
            0 if delay is None else delay_ms(delay),
            0 if at is None else epoch_ms(at),
            cls.retry.max_attempts,
            cls.timeout_seconds(),
            cls.result_ttl or settings.result_ttl,
            cls._limits.encode(),
            cls.version,
            tracing.context(),  # '' unless a span is current (and OpenTelemetry there)
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
        depends_on: Sequence[JobHandle | str] | None = None,
        on_failure: str = "cancel",
        **params: Any,
    ) -> JobHandle:
        """Validate ``params`` and store the job; returns its handle at once.

        ``job_id`` is an idempotency key within the queue (the job's id is
        ``"<queue>:<job_id>"``, as every id names its queue): if that job exists, its handle is
        returned and nothing is written. ``depends_on`` (job ids or handles): the job
        waits until they have all succeeded, and is cancelled (``on_failure="fail"``:
        dead-lettered) if one fails (see :mod:`jobkit.workflow`). A keyword that is
        neither an option nor a field of ``Params`` is an error (unless ``Params`` keeps
        extra fields). Errors: see :meth:`new_job`; nothing is written when one is raised.
        """
        return cls.dispatch_params(
            params, delay=delay, at=at, queue=queue, priority=priority, job_id=job_id,
            store=store, depends_on=depends_on, on_failure=on_failure,
        )  # fmt: skip

    @classmethod
    def dispatch_params(
        cls,
        params: Mapping[str, Any],
        *,
        delay: float | timedelta | None = None,
        at: datetime | None = None,
        queue: str | None = None,
        priority: int | None = None,
        job_id: str | None = None,
        store: Store | None = None,
        depends_on: Sequence[JobHandle | str] | None = None,
        on_failure: str = "cancel",
    ) -> JobHandle:
        """:meth:`dispatch` with the params as a mapping, apart from the options: for
        params that come as data (a request body), where a key named like an option
        must not become one."""
        if depends_on is not None:
            if delay is not None or at is not None:
                raise DispatchError("a job that waits for others runs when they end: no delay")
            from jobkit.workflow import dispatch_waiting

            return dispatch_waiting(
                cls, params, depends_on, on_failure=on_failure, queue=queue,
                priority=priority, job_id=job_id, store=store,
            )  # fmt: skip
        store = store or get_store()
        job = cls.new_job(
            params, delay=delay, at=at, queue=queue, priority=priority, job_id=job_id,
            settings=store.settings,
        )  # fmt: skip
        if cls._limits.unique:  # the job holding the params' lock may be another
            _, status, holder = store.enqueue_unique(job)
            return JobHandle(holder, store, status=status)
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
        """Validate and serialise every params mapping first (errors as for
        :meth:`new_job`, naming the item by its index; nothing is written then), then
        store all jobs in one request (for a ``unique`` class, one request per job, as
        each may meet a lock, one of the batch's own included)."""
        if cls._limits.unique:
            return [
                cls.dispatch_params(p, delay=delay, at=at, queue=queue, priority=priority,
                                    store=store)
                for p in params_list
            ]  # fmt: skip
        codec = cls._params()
        items = params_list if isinstance(params_list, list | tuple) else list(params_list)
        models = codec.validate_many(items)
        store = store or get_store()
        settings = store.settings or get_settings()
        spec = cls._spec(delay=delay, at=at, queue=queue, priority=priority, settings=settings)
        payloads = codec.encode_many(models, settings.max_payload)
        randoms = os.urandom(16 * len(models)).hex()  # 128 random bits per job
        home = queue or cls.queue  # a job id names its queue: its shard
        ids = [make_job_id(home, randoms[i : i + 32]) for i in range(0, len(randoms), 32)]
        statuses = store.enqueue_fresh(spec, ids, payloads)
        return [JobHandle(i, store, status=s) for i, s in zip(ids, statuses, strict=True)]

    @classmethod
    def s(cls, **params: Any) -> Signature:
        """This job with ``params``, to dispatch as a step of a chain or a group (see
        :mod:`jobkit.workflow`); fields left out take the step before's result."""
        from jobkit.workflow import Signature

        return Signature(cls, params)

    # -- Celery's spelling ----------------------------------------------------------------

    @classmethod
    def delay(cls, *args: Any, **params: Any) -> JobHandle:
        """Celery's ``delay``: dispatch, positional arguments filling the ``Params``
        fields in the order they are declared (no options: see :meth:`apply_async`)."""
        return cls.dispatch_params(by_field_order(cls.__qualname__, cls.Params, args, params))

    @classmethod
    def apply_async(
        cls,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        countdown: float | timedelta | None = None,
        eta: datetime | None = None,
        queue: str | None = None,
        priority: int | None = None,
        task_id: str | None = None,
    ) -> JobHandle:
        """Celery's ``apply_async``: ``countdown`` seconds from now or at ``eta``;
        ``task_id`` is the idempotency key :meth:`dispatch` calls ``job_id``."""
        params = by_field_order(cls.__qualname__, cls.Params, args, kwargs or {})
        return cls.dispatch_params(
            params, **celery_options(countdown, eta, queue, priority, task_id)
        )


def get_job(job_id: str, store: Store | None = None) -> JobHandle:
    """A handle for any job id; an id Redis does not hold reports ``Status.UNKNOWN``."""
    handle = JobHandle(job_id, store or get_store())
    handle.refresh()
    return handle
