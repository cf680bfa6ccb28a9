"""Who is looking at the dashboard, and that a write came from its own pages.

- **Login.** With a token configured (``JOBKIT_API_TOKEN``, ``JOBKIT_API_READ_TOKEN``), a
  visitor logs in with one: it is checked and kept in an HttpOnly, SameSite=Strict cookie,
  so no script can read it and no other site's request carries it. The role follows from
  the token (:func:`jobkit.web.auth.role_of`): the read-only one sees every page and no
  button. With no token configured everyone is ``open`` (and ``jobkit serve`` binds to
  loopback only, unless told ``--insecure``).
- **CSRF.** Every page sets a random ``jobkit_csrf`` cookie (SameSite=Strict) once and
  carries its value in a ``<meta>`` tag and in every form; a write must send it back, as a
  form field or an ``X-CSRF-Token`` header, equal to the cookie (double submit: another
  site can neither read the cookie nor make the browser send it). The check holds with or
  without a login.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import HTTPException, Request, Response

from jobkit.web.auth import TOKEN_COOKIE, Role, request_token, role_of

CSRF_COOKIE = "jobkit_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"


def role(request: Request) -> Role | None:
    """The visitor's role (None: not logged in while tokens are configured)."""
    return role_of(request_token(request))


def csrf_token(request: Request) -> str:
    """The visitor's CSRF token: the cookie's, or a new one (set by :func:`keep_csrf`)."""
    token = request.cookies.get(CSRF_COOKIE, "")
    if len(token) == 43 and token.replace("-", "").replace("_", "").isalnum():
        return token
    if not hasattr(request.state, "csrf"):  # one per request, the same in every form
        request.state.csrf = secrets.token_urlsafe(32)
    fresh: str = request.state.csrf
    return fresh


def keep_csrf(request: Request, response: Response, prefix: str) -> None:
    """Set the CSRF cookie on ``response`` when the request had none."""
    token = csrf_token(request)
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path=prefix or "/")  # fmt: skip


async def check_csrf(request: Request) -> None:
    """Refuse (403) a write whose CSRF token is missing or not the cookie's."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        sent = str((await request.form()).get(CSRF_FIELD, ""))
    if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise HTTPException(
            403, "this form has expired or did not come from this dashboard: reload"
        )


def writer(request: Request) -> Role:
    """The role of a visitor allowed to write (403 for the read-only token, 401 without
    a login)."""
    found = role(request)
    if found is None:
        raise HTTPException(401, "log in first")
    if not found.writes:
        raise HTTPException(403, "the read-only token cannot change anything")
    return found


def log_in(response: Response, request: Request, token: str, prefix: str) -> None:
    response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path=prefix or "/",
                        max_age=12 * 3600)  # fmt: skip


def log_out(response: Response, prefix: str) -> None:
    response.delete_cookie(TOKEN_COOKIE, path=prefix or "/")
