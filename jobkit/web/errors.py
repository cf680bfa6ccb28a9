"""Bad input over HTTP is a 4xx with a JSON body, never a 500, and writes nothing.

Every route of the API runs through :class:`JobkitRoute`, which turns jobkit's refusals
into their status codes (:mod:`jobkit.ops.refusals`) wherever the router is mounted
(``jobkit serve``, or a user's own FastAPI app, whose exception handlers the router
cannot set). The body is FastAPI's ``{"detail": ...}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from fastapi import HTTPException, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from jobkit.ops.refusals import detail_of, status_of

__all__ = ["JobkitRoute", "detail_of", "read_json", "status_of"]


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
