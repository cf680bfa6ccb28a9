"""Who may do what over HTTP: two roles, each a bearer token from the settings.

- ``JOBKIT_API_TOKEN``: admin, every read and every write (retry, cancel, pause, purge,
  run now, bulk actions, dispatch).
- ``JOBKIT_API_READ_TOKEN``: read only: every page and listing, no write.

When either is set, every request needs one (``Authorization: Bearer <token>``): none or a
wrong one is a 401, the read token on a write a 403, and either writes nothing. With
neither set, the API is open (role ``open``), and ``jobkit serve`` then binds to loopback
only unless told ``--insecure``. Tokens are compared in constant time and never logged or
echoed. The health check (``/healthz``) and the OpenAPI page need no token: they say
whether Redis answers and what the routes are, nothing of the jobs.
"""

from __future__ import annotations

import hmac
from enum import Enum

from fastapi import HTTPException, Request

from jobkit.connection import get_settings

TOKEN_COOKIE = "jobkit_token"  # the dashboard's login keeps the token here (HttpOnly)


class Role(str, Enum):
    """What a request may do."""

    ADMIN = "admin"
    READ = "read"
    OPEN = "open"  # no token configured: anyone who reaches the server

    def __str__(self) -> str:
        return self.value

    @property
    def writes(self) -> bool:
        return self is not Role.READ


def role_of(token: str | None) -> Role | None:
    """The role ``token`` gives (None: no role), by the tokens configured now."""
    settings = get_settings()
    admin, read = settings.api_token, settings.api_read_token
    if admin is None and read is None:
        return Role.OPEN
    if not token:
        return None
    given = token.encode()
    if admin is not None and hmac.compare_digest(given, admin.encode()):
        return Role.ADMIN
    if read is not None and hmac.compare_digest(given, read.encode()):
        return Role.READ
    return None


def request_token(request: Request, *, cookie: bool = True) -> str | None:
    """The token a request carries: its bearer header, else (``cookie``) the dashboard's
    login cookie. Writes over the API take the header only: a cookie rides along with
    any request a browser makes, so a write by cookie needs the dashboard's CSRF check."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return (request.cookies.get(TOKEN_COOKIE) or None) if cookie else None


def _checked(request: Request, write: bool) -> Role:
    role = role_of(request_token(request, cookie=not write))
    if role is None:
        raise HTTPException(
            401,
            "a token is needed: send Authorization: Bearer <JOBKIT_API_TOKEN or "
            "JOBKIT_API_READ_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if write and not role.writes:
        raise HTTPException(403, "the read-only token cannot change anything")
    return role


def reader(request: Request) -> Role:
    """FastAPI dependency of every read route: any role."""
    return _checked(request, write=False)


def writer(request: Request) -> Role:
    """FastAPI dependency of every write route: the admin token (or no tokens at all)."""
    return _checked(request, write=True)


def client_of(request: Request) -> str:
    """The client's address, for the audit log."""
    return request.client.host if request.client else ""
