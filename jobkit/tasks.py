"""Function tasks: ``@jobkit.task()`` on a typed function builds its job class.

The function's signature becomes the job's params model: pydantic validates the
arguments of a dispatch as it validates any ``Params``, positional ones bound to their
names first. The class is registered under ``module.function`` (or ``name=``), so a
worker that imports the module runs it like any other job::

    @jobkit.task(queue="mail", retry=jobkit.Retry(max_attempts=5))
    def send_welcome(user_id: int, template: str = "welcome") -> str:
        ...

    job = send_welcome(42)                  # dispatches; the handle comes back at once
    job = send_welcome.dispatch(user_id=42)  # the same, spelt out
    send_welcome.delay(42)                  # Celery's spelling
    send_welcome.apply_async((42,), countdown=60)
    send_welcome.call_local(42)             # runs the function here, now (tests)

A plain call dispatches, as the users' first brief writes it (``job = my_task(**body)``)
and as Huey's tasks do: the function is moved out of the request path, which is the point
of decorating it. ``call_local`` (or ``.fn``) runs it directly.

``bind=True`` passes the running job (its id, attempt and ``progress()``) as the first
argument, as Celery's ``bind=True`` passes the task.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Concatenate, Generic, Literal, TypedDict, TypeVar, overload

from pydantic import BaseModel, ConfigDict, create_model
from typing_extensions import ParamSpec, Unpack

from jobkit.cron import Cron
from jobkit.dispatch_options import celery_options
from jobkit.errors import DispatchError
from jobkit.handle import JobHandle
from jobkit.job import BaseJob
from jobkit.retry import Retry

if TYPE_CHECKING:
    from jobkit.app import Queue
    from jobkit.backend.store import Store
    from jobkit.workflow import Signature

P = ParamSpec("P")
R = TypeVar("R")

_KINDS = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
          inspect.Parameter.KEYWORD_ONLY)  # fmt: skip


def _params_model(fn: Callable[..., Any], bind: bool) -> tuple[type[BaseModel], list[str]]:
    """The params model of ``fn``'s signature and the names of its positional-only
    parameters (passed by position when it runs). Raises ``TypeError`` for a signature a
    job cannot take: ``*args``, ``**kwargs``, or no parameter to bind the job to."""
    where = getattr(fn, "__qualname__", repr(fn))
    params = list(inspect.signature(fn).parameters.values())
    if bind:
        if not params or params[0].kind not in _KINDS[:2]:
            raise TypeError(f"task {where}: bind=True needs a first parameter for the job")
        params = params[1:]
    hints = typing.get_type_hints(fn, include_extras=True)
    fields: dict[str, Any] = {}
    positional: list[str] = []
    for p in params:
        if p.kind not in _KINDS:
            raise TypeError(f"task {where}: *{p.name} cannot be a job's parameter; name each one")
        if p.name.startswith("_"):
            raise TypeError(f"task {where}: parameter {p.name} starts with '_' (pydantic)")
        default = ... if p.default is inspect.Parameter.empty else p.default
        fields[p.name] = (hints.get(p.name, Any), default)
        if p.kind is inspect.Parameter.POSITIONAL_ONLY:
            positional.append(p.name)
    model = create_model(
        f"{fn.__name__}_params",
        __config__=ConfigDict(extra="forbid"),
        __module__=fn.__module__,
        **fields,
    )
    return model, positional


def _job_class(fn: Callable[..., Any], bind: bool, options: Mapping[str, Any]) -> type[BaseJob]:
    """The BaseJob subclass that runs ``fn``, named and registered as the function is."""
    model, positional = _params_model(fn, bind)
    names = [n for n in model.model_fields if n not in positional]

    def perform(self: BaseJob) -> Any:
        values = self.params.__dict__  # a model's fields, validated
        args = [values[n] for n in positional]
        if bind:
            args.insert(0, self)
        return fn(*args, **{n: values[n] for n in names})

    options = dict(options)
    upgrade = options.pop("upgrade", None)
    if upgrade is not None:  # upgrade(params, from_version): the class's classmethod
        options["upgrade"] = classmethod(lambda cls, params, old: upgrade(params, old))
    namespace: dict[str, Any] = {
        "__module__": fn.__module__,
        "__qualname__": fn.__qualname__,
        "__doc__": fn.__doc__,
        "Params": model,
        "perform": perform,
        **{k: v for k, v in options.items() if v is not None},
    }
    return type(fn.__name__, (BaseJob,), namespace)


class Task(Generic[P, R]):
    """A function turned into a job (see the module doc). Calling it dispatches."""

    def __init__(
        self, fn: Callable[P, R], job: type[BaseJob], app: Queue | None, bind: bool = False
    ) -> None:
        self.fn = fn
        self.job = job
        self.name = job.name
        self.app = app
        self._signature = inspect.signature(fn)
        self._bound_first = bind  # the running job is the function's first argument
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<task {self.name} queue={self.job.queue}>"

    def _store(self) -> Store | None:
        return self.app.store if self.app is not None else None

    def _bind(self, args: Sequence[Any], kwargs: Mapping[str, Any], *, partial: bool = False
              ) -> dict[str, Any]:  # fmt: skip
        """The arguments by name, as the function would bind them (defaults left to the
        model; ``partial``: some may be missing, a step's that takes a result); a call
        the signature refuses is a :class:`DispatchError`."""
        bind = self._signature.bind_partial if partial else self._signature.bind
        try:
            if self._bound_first:  # the job goes first, and is no param
                bound = bind(None, *args, **kwargs)
                bound.arguments.pop(next(iter(self._signature.parameters)))
            else:
                bound = bind(*args, **kwargs)
        except TypeError as exc:
            raise DispatchError(f"task {self.name}: {exc}") from None
        return dict(bound.arguments)

    def _send(self, args: Sequence[Any], kwargs: Mapping[str, Any], **options: Any) -> JobHandle:
        return self.job.dispatch_params(self._bind(args, kwargs), store=self._store(), **options)

    def dispatch(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle:
        """Validate the arguments and store the job; its handle at once."""
        return self._send(args, kwargs)

    # a plain call dispatches (see the module doc for why); `delay` is Celery's name
    __call__ = dispatch
    delay = dispatch

    def apply_async(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        countdown: float | timedelta | None = None,
        eta: datetime | None = None,
        queue: str | None = None,
        priority: int | None = None,
        task_id: str | None = None,
    ) -> JobHandle:
        """Celery's spelling with options: ``countdown`` seconds from now, or at ``eta``;
        ``task_id`` is the job's idempotency key (see ``BaseJob.dispatch``'s ``job_id``)."""
        return self._send(
            args, kwargs or {}, **celery_options(countdown, eta, queue, priority, task_id)
        )

    def using(
        self,
        *,
        delay: float | timedelta | None = None,
        at: datetime | None = None,
        queue: str | None = None,
        priority: int | None = None,
        job_id: str | None = None,
    ) -> Dispatcher[P]:
        """This task with dispatch options: ``send_mail.using(delay=60).dispatch(...)``."""
        options = {"delay": delay, "at": at, "queue": queue, "priority": priority,
                   "job_id": job_id}  # fmt: skip
        return Dispatcher(self, options)

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """This task with these arguments, as a step of a chain or a group (see
        :mod:`jobkit.workflow`): a parameter left out takes the step before's result."""
        from jobkit.workflow import Signature

        return Signature(self.job, self._bind(args, kwargs, partial=True))

    def call_local(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here and now, not as a job (a test's shortcut)."""
        return self.fn(*args, **kwargs)


class Dispatcher(Generic[P]):
    """A task with its dispatch options set (see :meth:`Task.using`)."""

    def __init__(self, task: Task[P, Any], options: dict[str, Any]) -> None:
        self._task = task
        self._options = options

    def dispatch(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle:
        return self._task._send(args, kwargs, **self._options)

    __call__ = dispatch


def make_task(
    fn: Callable[P, R], app: Queue | None, bind: bool, options: Mapping[str, Any]
) -> Task[P, R]:
    """The task of ``fn`` (used by :func:`task` and ``Queue.task``)."""
    return Task(fn, _job_class(fn, bind, options), app, bind)


class TaskOptions(TypedDict, total=False):
    """The options ``@task(...)`` takes besides ``bind``: those of a job class."""

    name: str | None
    queue: str | None
    priority: int | None
    retry: Retry | None
    timeout: float | timedelta | None
    result_ttl: int | None
    tags: frozenset[str] | set[str] | None
    schedule: Cron | None
    schedules: Sequence[Cron] | None
    concurrency: int | None
    rate_limit: str | None
    unique: bool | None
    unique_for: float | timedelta | None
    version: int | None
    upgrade: Callable[[dict[str, Any], int], dict[str, Any]] | None


@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(
    *, bind: Literal[False] = ..., **options: Unpack[TaskOptions]
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


@overload
def task(
    *, bind: Literal[True], **options: Unpack[TaskOptions]
) -> Callable[[Callable[Concatenate[Any, P], R]], Task[P, R]]: ...


def task(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    bind: bool = False,
    **options: Any,
) -> Any:
    """Make ``fn`` a job: ``@task`` or ``@task(queue=..., retry=..., ...)``, with the
    options of a job class (``name``, ``queue``, ``priority``, ``retry``, ``timeout``,
    ``result_ttl``, ``tags``, ``schedule``, ``schedules``, ``concurrency``,
    ``rate_limit``, ``unique``, ``unique_for``, ``version`` and ``upgrade``, a function
    ``(params, from_version) -> params``: see :class:`~jobkit.BaseJob`). Returns a
    :class:`Task`; ``bind=True`` passes the running job as the first argument."""
    return task_decorator(fn, None, bind, options)


def task_decorator(
    fn: Callable[..., Any] | None, app: Queue | None, bind: bool, options: dict[str, Any]
) -> Any:
    """``@task`` / ``@task(...)`` for ``app`` (None: the default connection)."""
    unknown = set(options) - TASK_OPTIONS
    if unknown:
        raise TypeError(f"task() got unknown option(s) {', '.join(sorted(unknown))}")

    def decorate(f: Callable[..., Any]) -> Task[Any, Any]:
        return make_task(f, app, bind, options)

    return decorate if fn is None else decorate(fn)


TASK_OPTIONS = frozenset(TaskOptions.__annotations__)
