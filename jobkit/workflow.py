"""Jobs that wait for others: ``dispatch(depends_on=[...])``, chains and groups.

::

    extract = Extract.dispatch(day="2026-12-07")
    load = Load.dispatch(depends_on=[extract])          # runs once extract succeeded

    flow = chain(Extract.s(day="2026-12-07"), Transform.s(), Load.s()).dispatch()
    flow.last.result(timeout=600)                       # Load's result

    group([Resize.s(url=u) for u in urls], then=Report.s()).dispatch()

A job waiting for others is stored ``waiting`` and queued once every job it depends on
has succeeded. A step of a chain takes the result of the step before it, and a group's
callback the list of its members' results, in the first field of their params that the
step's own params leave out (none left out: the result is not passed). A dependency that
ends dead or cancelled cancels the jobs waiting for it (``on_failure="fail"``: dead-
letters them), with reason ``dependency_failed`` and an error naming it, and so on down
the line. Everything lives in Redis: a worker SIGKILLed mid-step loses nothing (its
lease lapses and the step runs again), and each script touches one queue's shard, so
dependencies across queues work on a cluster (see :mod:`jobkit.backend.flows`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import BaseModel, create_model

from jobkit import names
from jobkit.backend.flow_calls import Notice, WaitArgs
from jobkit.backend.keys import job_id as make_job_id
from jobkit.backend.keys import queue_of
from jobkit.backend.store import Store
from jobkit.connection import get_settings, get_store
from jobkit.errors import DispatchError, JobNotFound
from jobkit.handle import JobHandle
from jobkit.payload import ParamsCodec
from jobkit.status import OnFailure

if TYPE_CHECKING:
    from jobkit.job import BaseJob


def _dependency_id(dep: JobHandle | str) -> str:
    job_id = dep.id if isinstance(dep, JobHandle) else dep
    if not isinstance(job_id, str) or queue_of(job_id) is None:
        raise DispatchError(f"depends_on takes job ids or handles, not {dep!r}")
    return job_id


def _on_failure(value: object) -> str:
    try:
        return OnFailure(value).value
    except ValueError:
        raise DispatchError(f"on_failure must be 'cancel' or 'fail', not {value!r}") from None


@cache
def _given_model(model: type[BaseModel], takes: str) -> type[BaseModel]:
    """``model`` without the field ``takes``: what the dispatch gives is validated now,
    the result the worker's validation of the whole."""
    fields: dict[str, Any] = {
        name: (info.annotation, info) for name, info in model.model_fields.items() if name != takes
    }
    return create_model(f"{model.__name__}WithoutResult", __config__=model.model_config, **fields)


def dispatch_waiting(
    cls: type[BaseJob[Any]],
    params: Mapping[str, Any],
    depends_on: Sequence[JobHandle | str],
    *,
    on_failure: str = "cancel",
    takes: str | None = None,
    gather: bool = False,
    queue: str | None = None,
    priority: int | None = None,
    job_id: str | None = None,
    store: Store | None = None,
) -> JobHandle:
    """Store a job of ``cls`` that is queued once every job of ``depends_on`` succeeded
    (``takes``: its params field that receives their result(s)). See the module doc."""
    if isinstance(depends_on, str | JobHandle):  # one, not a string's characters
        depends_on = [depends_on]
    deps = list(dict.fromkeys(_dependency_id(d) for d in depends_on))  # once each, in order
    if not deps:
        raise DispatchError("depends_on names no job")
    if cls._limits.unique:
        raise DispatchError(f"{cls.__qualname__} is unique: it cannot wait for other jobs")
    mode = _on_failure(on_failure)
    store = store or get_store()
    settings = store.settings or get_settings()
    model = cls.Params if takes is None else _given_model(cls.Params, takes)
    codec = ParamsCodec(cls.__qualname__, model, frozenset())
    codec.check_keys(params)
    given = model.model_validate(params)  # raises ValidationError, writes nothing
    params_json = codec.encode(given, settings.max_payload)
    if job_id is not None:
        names.job_id(job_id)
    spec = cls._spec(delay=None, at=None, queue=queue, priority=priority, settings=settings)
    home = queue or cls.queue
    new_id = make_job_id(home, job_id or os.urandom(16).hex())
    store.register_queues([home])  # the views and --tags '*' find the queue (once)
    replies = store.flows.depend(new_id, deps, takes=takes is not None)
    unknown = [d for d, r in zip(deps, replies, strict=True) if r.status == "unknown"]
    if unknown:
        raise JobNotFound(f"depends_on names jobs Redis does not hold: {', '.join(unknown)}")
    ended = [
        Notice(new_id, d, r.status, r.result)
        for d, r in zip(deps, replies, strict=True)
        if r.status != "waiting"
    ]
    if ended:  # they ended before we asked: told as a notice would tell them
        store.flows.release(ended)
    args = WaitArgs(
        new_id, spec.name, spec.lane, params_json, spec.priority, spec.max_attempts,
        spec.timeout, spec.result_ttl, spec.limits, mode, takes or "", "1" if gather else "",
    )  # fmt: skip
    reply = store.flows.wait(args, deps)
    return JobHandle(new_id, store, status=reply.status)


class Signature:
    """A job to dispatch later, as a step of a :func:`chain` or a :func:`group`:
    ``MyJob.s(**params)`` or ``my_task.s(*args, **kwargs)``."""

    def __init__(
        self,
        job: type[BaseJob[Any]],
        params: Mapping[str, Any],
        *,
        queue: str | None = None,
        priority: int | None = None,
    ) -> None:
        self.job = job
        self.params = dict(params)
        self.queue = queue
        self.priority = priority

    def __repr__(self) -> str:
        return f"{self.job.name}.s({self.params!r})"

    def result_field(self) -> str | None:
        """The first field of the job's params this signature leaves out: where the
        result of the step before goes (None: every field is given)."""
        return next((f for f in self.job.Params.model_fields if f not in self.params), None)

    def dispatch(self, *, store: Store | None = None) -> JobHandle:
        """Dispatch it now, alone."""
        return self.job.dispatch_params(
            self.params, queue=self.queue, priority=self.priority, store=store
        )

    def after(
        self, deps: Sequence[JobHandle | str], *, gather: bool, on_failure: str,
        store: Store | None,
    ) -> JobHandle:  # fmt: skip
        """Dispatch it waiting for ``deps``, taking their result(s) if it has room."""
        return dispatch_waiting(
            self.job, self.params, deps, takes=self.result_field(), gather=gather,
            on_failure=on_failure, queue=self.queue, priority=self.priority, store=store,
        )  # fmt: skip


class Flow(NamedTuple):
    """The jobs a chain or a group dispatched, in order (a group's callback last)."""

    jobs: list[JobHandle]

    @property
    def last(self) -> JobHandle:
        """The chain's last step, or the group's callback (or its last member)."""
        return self.jobs[-1]

    def result(self, timeout: float | None = None) -> Any:
        """The last job's result, once it has one (see ``JobHandle.result``)."""
        return self.last.result(timeout=timeout)


class chain:
    """Steps run one after another, each taking the result of the one before."""

    def __init__(self, *steps: Signature, on_failure: str = "cancel") -> None:
        if not steps:
            raise DispatchError("a chain needs at least one step")
        self.steps = steps
        self.on_failure = _on_failure(on_failure)

    def dispatch(self, *, store: Store | None = None) -> Flow:
        """The first step queued, each other waiting for the one before it."""
        jobs = [self.steps[0].dispatch(store=store)]
        for step in self.steps[1:]:
            jobs.append(
                step.after([jobs[-1]], gather=False, on_failure=self.on_failure, store=store)
            )
        return Flow(jobs)


class group:
    """Members run side by side; ``then`` (a callback) runs once all have succeeded,
    taking the list of their results."""

    def __init__(
        self, members: Sequence[Signature], *, then: Signature | None = None,
        on_failure: str = "cancel",
    ) -> None:  # fmt: skip
        if not members:
            raise DispatchError("a group needs at least one member")
        self.members = list(members)
        self.then = then
        self.on_failure = _on_failure(on_failure)

    def dispatch(self, *, store: Store | None = None) -> Flow:
        """Every member queued, the callback waiting for all of them."""
        jobs = [m.dispatch(store=store) for m in self.members]
        if self.then is not None:
            jobs.append(self.then.after(jobs, gather=True, on_failure=self.on_failure, store=store))
        return Flow(jobs)
