"""Redis URLs made safe to print: every secret a URL can carry is masked.

redis-py takes a password in three places, and a TLS key passphrase in one: the userinfo
(``redis://:pw@h``, ``redis://user:pw@h``, ``unix://user:pw@/path``), the query
(``unix:///path?password=pw``, ``redis://h?password=pw``) and ``?ssl_password=`` (the
passphrase of an encrypted client key). Any query argument whose name suggests a secret
is masked, so a future redis-py option is covered before anyone thinks of it.

A password with an unencoded ``/``, ``?`` or ``#`` splits across the URL's parts (and
Python's parser then quotes a piece of it in its "Port could not be cast" error), so a
URL that does not parse cleanly is masked whole.
"""

from __future__ import annotations

from urllib.parse import unquote_plus, urlsplit

MASK = "***"

# Lower-case fragments of query argument names whose values are masked.
_SECRET_WORDS = ("pass", "secret", "token", "credential", "auth")


def is_secret_argument(name: str) -> bool:
    """Whether a URL query argument named ``name`` (as redis-py decodes it) may hold a secret."""
    lowered = unquote_plus(name).lower()
    return any(word in lowered for word in _SECRET_WORDS)


def redacted(url: str) -> str:
    """``url`` with its password(s) and any secret-looking query value replaced by ``***``.

    The scheme, username, host, port, path and other query arguments are kept, so a log line
    still says which Redis, which ACL user and which certificate files are used."""
    scheme, separator, _ = url.partition("://")
    if not separator or not scheme.isalpha():
        return MASK  # not a URL redis-py would take: nothing in it is worth the risk
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a malformed port, which may be a piece of a password
    except ValueError:
        return f"{scheme}://{MASK}"
    if "@" in parts.path + parts.query + parts.fragment:
        return f"{scheme}://{MASK}"  # an '@' outside the userinfo: a password split apart
    shown = f"{scheme}://{_masked_netloc(parts.netloc)}{parts.path}"
    if parts.query:
        shown += "?" + _masked_query(parts.query)
    if parts.fragment:
        shown += "#" + MASK  # redis-py ignores it: nothing worth showing
    return shown


def _masked_netloc(netloc: str) -> str:
    userinfo, at, host = netloc.rpartition("@")
    if not at:
        return netloc
    user, colon, _ = userinfo.partition(":")
    return f"{user}:{MASK}@{host}" if colon else netloc


def _masked_query(query: str) -> str:
    masked = []
    for item in query.split("&"):
        name, equals, _ = item.partition("=")
        masked.append(f"{name}={MASK}" if equals and is_secret_argument(name) else item)
    return "&".join(masked)
