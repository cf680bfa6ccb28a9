"""Bad input over HTTP is a 4xx with a JSON body, never a 500, and writes nothing.

Every route of the API runs through :class:`JobkitRoute`, which turns jobkit's refusals
into their status codes wherever the router is mounted (``jobkit serve``, or a user's
own FastAPI app, whose exception handlers the router cannot set):

==========================================================  =====
404  an unknown job, job class, schedule or bulk action       404
409  a transition the job's state refuses (retry a queued)    409
413  params over ``JOBKIT_MAX_PAYLOAD``                       413
422  invalid params, options, names, filters, cursors         422
503  Redis or the history archive out of reach                503
==========================================================  =====

The body is FastAPI's ``{"detail": ...}``. Messages never quote a URL's password
(``describe_failure`` masks it) nor a token.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from fastapi import HTTPException, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError

from jobkit.connection import describe_failure
from jobkit.errors import (
    DispatchError,
    HistoryUnavailable,
    InvalidName,
    InvalidQuery,
    InvalidTransition,
    JobNotFound,
    PayloadTooLarge,
    RegistryError,
    SerializationError,
    UnknownQueue,
    UnknownSchedule,
)
from jobkit.ops import UNAVAILABLE

_STATUS: tuple[tuple[type[Exception] | tuple[type[Exception], ...], int], ...] = (
    ((JobNotFound, RegistryError, UnknownSchedule), 404),
    (InvalidTransition, 409),
    (PayloadTooLarge, 413),
    ((InvalidQuery, UnknownQueue, InvalidName, DispatchError, SerializationError), 422),
    (HistoryUnavailable, 503),
)


def status_of(exc: Exception) -> int | None:
    """The status code of a refusal (None: not one; a bug, left to be a 500)."""
    if isinstance(exc, ValidationError):
        return 422
    for kinds, code in _STATUS:
        if isinstance(exc, kinds):
            return code
    if isinstance(exc, UNAVAILABLE):
        return 503
    return None


def detail_of(exc: Exception) -> Any:
    """What the body says about ``exc``."""
    if isinstance(exc, ValidationError):
        # without the inputs: they may hold what JSON cannot (NaN), which would fail the
        # response, and they are the caller's own anyway
        return exc.errors(include_url=False, include_input=False, include_context=False)
    if isinstance(exc, UNAVAILABLE):
        return describe_failure(exc)
    return str(exc)


class JobkitRoute(APIRoute):
    """An API route whose jobkit refusals become their 4xx (or 503) JSON answers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                code = status_of(exc)
                if code is None:
                    raise
                return JSONResponse({"detail": detail_of(exc)}, status_code=code)

        return route


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def read_json(body: bytes, what: str = "params") -> dict[str, Any]:
    """A request body as a JSON object (an empty body is ``{}``); anything else raises a
    422. Read here rather than by FastAPI, which lets ``NaN`` through and answers 500 when
    it must echo one back in a validation error."""
    if not body.strip():
        return {}
    try:
        data = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:  # also ints over 4300 digits, deep nesting
        raise HTTPException(422, f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HTTPException(422, f"{what} must be a JSON object, not {type(data).__name__}")
    return data
