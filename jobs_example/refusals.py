"""Bad input as the example apps answer it: a request body read strictly as a JSON object,
and a dispatch whose every refusal is a :class:`BadInput` carrying a 4xx status and a
JSON-ready detail. Each app turns a ``BadInput`` into its framework's JSON answer; this
module imports no web framework, so the Flask app and the FastAPI ones share it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, TypeVar

from pydantic import BaseModel, ValidationError

from jobkit import BaseJob, JobHandle
from jobkit.errors import DispatchError, InvalidName, PayloadTooLarge, SerializationError

M = TypeVar("M", bound=BaseModel)


class BadInput(Exception):
    """A request refused before anything was written: ``status`` (4xx) and ``detail``."""

    def __init__(self, status: int, detail: object) -> None:
        super().__init__(status, detail)
        self.status = status
        self.detail = detail


def errors_of(exc: ValidationError) -> list[dict[str, Any]]:
    """pydantic's errors without the inputs: they are the caller's own, and may hold what
    JSON cannot say (NaN), which would fail the answer."""
    return [
        dict(error)
        for error in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def json_object(body: bytes) -> dict[str, Any]:
    """``body`` as a JSON object: NaN and Infinity are not JSON, nesting too deep for the
    parser is refused rather than crashing it, and nothing but an object is taken."""
    try:
        value = json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # also ints over 4300 digits
        raise BadInput(422, f"the body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadInput(422, f"the body must be a JSON object, not {type(value).__name__}")
    return value


def parse(model: type[M], body: bytes) -> M:
    """``body`` validated as ``model`` (422 with pydantic's errors)."""
    try:
        return model.model_validate(json_object(body))
    except ValidationError as exc:
        raise BadInput(422, errors_of(exc)) from None


def dispatch(
    cls: type[BaseJob],
    params: Mapping[str, Any],
    *,
    explain: Callable[[ValidationError], object] = errors_of,
    **options: Any,
) -> JobHandle:
    """``cls.dispatch_params(params, **options)`` with each refusal a :class:`BadInput`:
    413 for params over ``JOBKIT_MAX_PAYLOAD``, 422 for invalid params (their errors as
    ``explain`` says them) or options. Nothing is written when one is raised."""
    return call_task(lambda: cls.dispatch_params(params, **options), explain=explain)


def call_task(
    send: Callable[[], JobHandle], *, explain: Callable[[ValidationError], object] = errors_of
) -> JobHandle:
    """``send()`` (a task's call, a class's dispatch) with each refusal a
    :class:`BadInput`, as :func:`dispatch` says them (an argument the task does not
    take is a ``DispatchError``: 422)."""
    try:
        return send()
    except ValidationError as exc:
        raise BadInput(422, explain(exc)) from None
    except PayloadTooLarge as exc:
        raise BadInput(413, str(exc)) from None
    except (DispatchError, InvalidName, SerializationError) as exc:
        raise BadInput(422, str(exc)) from None
