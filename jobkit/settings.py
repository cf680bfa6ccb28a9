"""Settings: ``JOBKIT_*`` environment variables, overridable in code and on the CLI."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from jobkit import units
from jobkit.errors import ConfigurationError
from jobkit.logs import LogFormat
from jobkit.redact import redacted

ENV_PREFIX = "JOBKIT_"

# The longest jobkit blocks in Redis on purpose: an idle worker's BLPOP (IDLE_BLOCK in
# jobkit/worker/child.py) and a result wait's slice (_WAIT_SLICE in jobkit/handle.py);
# tests/integration/test_connection.py keeps them in step. A socket timeout must outlast such a wait
# with room to spare (Redis rounds blocking timeouts up to its 100 ms tick, and a loaded
# server answers late), or an idle worker would see a timeout on every wait.
LONGEST_BLOCK = 2.0
MIN_SOCKET_TIMEOUT = LONGEST_BLOCK + 1.0

# redis-py lets a URL's query override the keyword arguments jobkit passes (from_url's
# "querystring arguments always win"), so these would bypass the validated settings.
_URL_OPTIONS_OWNED = {
    "socket_timeout": "socket_timeout",
    "socket_connect_timeout": "socket_connect_timeout",
    "health_check_interval": "health_check_interval",
    "socket_keepalive": "tcp_keepalive",
    "socket_keepalive_options": "tcp_keepalive",
}
# every scheme a Redis URL may have (see jobkit.backend.transport for what each means)
REDIS_SCHEMES = (
    "redis",
    "rediss",
    "unix",
    "redis+sentinel",
    "rediss+sentinel",
    "redis+cluster",
    "rediss+cluster",
)
# Fields whose values are never quoted in an error message.
_SECRET_FIELDS = frozenset({"redis_url", "history_url", "api_token", "api_read_token"})
_TOKEN_FIELDS = frozenset({"api_token", "api_read_token"})  # shown as *** whatever they hold


class Settings(BaseModel):
    """Every knob jobkit has, each also read from ``JOBKIT_<NAME>`` (see
    :func:`load_settings`). A misspelled ``JOBKIT_`` variable is an error, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    redis_url: str | None = Field(
        default=None,
        description="redis://, rediss://, unix://, redis+sentinel://, redis+cluster:// "
        "(rediss+ for TLS); unset: embedded Redis",
    )
    prefix: str = Field(default="jobkit", pattern=r"^[A-Za-z0-9_.:-]+$")
    data_dir: Path = Field(default=Path(".jobkit"), description="embedded Redis lives here")
    lease: float = Field(default=30.0, gt=0, description="seconds a claim is valid unrenewed")
    heartbeat: float = Field(default=5.0, gt=0, description="seconds between lease renewals")
    result_ttl: int = Field(default=86_400, ge=1, description="seconds a result is kept")
    max_crashes: int = Field(default=2, ge=1, description="crashes before a job is dead")
    events_maxlen: int = Field(
        default=100_000,
        ge=0,
        le=100_000_000,
        description="events each queue's stream keeps, about (0: no events)",
    )
    events_max_age: float = Field(
        default=86_400.0, gt=0, description="seconds an event is kept, at most (about)"
    )
    max_payload: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        le=512 * 1024 * 1024,  # a Redis string holds no more
        description="bytes: the largest params or result JSON, refused above",
    )
    log_level: str = "INFO"
    log_format: LogFormat = Field(
        default=LogFormat.TEXT, description="text, or json: one JSON object per log line"
    )
    max_memory: float = Field(
        default=0.0,
        ge=0,
        description="MB a worker child may use (512MB, 1GB, 300): one over it is killed "
        "mid-job, replaced between jobs; 0: no limit",
    )
    max_jobs_per_child: int = Field(
        default=0, ge=0, description="a worker child is replaced after this many jobs; 0: never"
    )
    max_child_age: float = Field(
        default=0.0,
        ge=0,
        description="seconds (or 30m, 2h) after which a worker child is replaced once its "
        "job ends; 0: never",
    )
    socket_timeout: float = Field(
        default=5.0,
        ge=MIN_SOCKET_TIMEOUT,
        description="seconds to wait for any Redis reply before giving up (beyond "
        "jobkit's own 2 s blocking waits)",
    )
    socket_connect_timeout: float = Field(
        default=5.0, gt=0, description="seconds to wait for a connection to Redis"
    )
    health_check_interval: int = Field(
        default=30,
        ge=0,
        description="a pooled connection idle this many seconds is PINGed before use; 0: off",
    )
    tcp_keepalive: int = Field(
        default=30,
        ge=0,
        description="TCP keepalive probes after this many idle seconds (TCP only); 0: off",
    )
    durable_replicas: int = Field(
        default=0,
        ge=0,
        le=100,
        description="replicas that must acknowledge every dispatch (Redis WAIT) before it "
        "returns; 0: off (a dispatch returns once the primary has the job)",
    )
    durable_timeout: int = Field(
        default=1000,
        ge=1,
        description="milliseconds a durable dispatch waits for its replicas (WAIT's timeout)",
    )
    history_url: str | None = Field(
        default=None,
        description="the history archive's database (SQLAlchemy URL, e.g. "
        "postgresql+psycopg://user:pw@host/db); unset: SQLite at <data_dir>/history.db",
    )
    history_retention: float = Field(
        default=30.0,
        ge=0,
        description="days the archive keeps a job (by its last change) and its attempts; "
        "0: forever (jobkit archiver prunes)",
    )
    archive_batch: int = Field(
        default=2000,
        ge=1,
        le=100_000,
        description="events an archiver reads per queue at once (while behind: up to 8 times "
        "that in all)",
    )
    archive_claim_idle: float = Field(
        default=30.0,
        gt=0,
        description="seconds an event read by an archiver may stay unarchived before "
        "another archiver takes it over (one that died)",
    )
    api_token: str | None = Field(
        default=None,
        min_length=16,
        description="the HTTP API's admin token (every read and write, as a bearer token); "
        "with it or the read token set, every request needs one",
    )
    api_read_token: str | None = Field(
        default=None,
        min_length=16,
        description="the HTTP API's read-only token (every read, no write)",
    )
    audit_maxlen: int = Field(
        default=10_000,
        ge=100,
        le=10_000_000,
        description="entries the audit log of writes through the HTTP API keeps, about",
    )

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        # repr() and str() show the URL masked: settings end up in logs and tracebacks.
        for name, value in super().__repr_args__():
            if name in _TOKEN_FIELDS and value:
                yield name, "***"
            else:
                yield name, redacted(value) if name in _SECRET_FIELDS and value else value

    @field_validator("api_token", "api_read_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, token: Any) -> Any:
        # compose files pass ${JOBKIT_API_TOKEN:-}: an empty variable means no token
        return None if isinstance(token, str) and not token.strip() else token

    @model_validator(mode="after")
    def _two_roles(self) -> Settings:
        if self.api_token is not None and self.api_token == self.api_read_token:
            raise ValueError("JOBKIT_API_TOKEN and JOBKIT_API_READ_TOKEN must differ")
        return self

    @field_validator("redis_url")
    @classmethod
    def _usable_url(cls, url: str | None) -> str | None:
        # Messages here never quote the URL: it may carry a password.
        if not url:
            return url
        scheme = url.partition("://")[0].lower() if "://" in url else ""
        if scheme not in REDIS_SCHEMES:
            raise ValueError("must start with " + ", ".join(f"{s}://" for s in REDIS_SCHEMES))
        try:
            parts = urlsplit(url)
            if "+" in scheme:  # several host:port, comma-separated: each must have a port
                hosts = parts.netloc.rsplit("@", 1)[-1].split(",")
                if not all(h.rpartition(":")[2].isdigit() for h in hosts):
                    raise ValueError
            else:
                _ = parts.port
        except ValueError:
            raise ValueError(
                "is not a valid URL (percent-encode '/', '?', '#' and '@' in a password)"
            ) from None
        if "@" in parts.path + parts.query + parts.fragment:
            raise ValueError("has an '@' outside its userinfo: percent-encode it as %40")
        owned = sorted(set(parse_qs(parts.query)) & set(_URL_OPTIONS_OWNED))
        if owned:
            names = ", ".join(sorted({ENV_PREFIX + _URL_OPTIONS_OWNED[o].upper() for o in owned}))
            raise ValueError(f"sets {', '.join(owned)}: use {names} instead")
        return url

    @field_validator("log_format", mode="before")
    @classmethod
    def _any_case(cls, raw: object) -> object:
        return raw.strip().lower() if isinstance(raw, str) else raw

    @field_validator("max_memory", mode="before")
    @classmethod
    def _size(cls, raw: str | float) -> float:
        return units.megabytes(raw)

    @field_validator("max_child_age", mode="before")
    @classmethod
    def _duration(cls, raw: str | float) -> float:
        return units.seconds(raw)

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> Settings:
        if self.heartbeat >= self.lease:
            raise ValueError(f"heartbeat ({self.heartbeat}s) must be shorter than lease")
        return self

    @model_validator(mode="after")
    def _durable_dispatch_usable(self) -> Settings:
        if not self.durable_replicas:
            return self
        if not self.redis_url:
            raise ValueError(
                "JOBKIT_DURABLE_REPLICAS needs a Redis with replicas (JOBKIT_REDIS_URL): "
                "the embedded one has none"
            )
        if "cluster" in self.redis_url.partition("://")[0].lower():
            # redis-py's cluster client sends WAIT to every node, not to the master of the
            # queue's slot where the job was written
            raise ValueError("JOBKIT_DURABLE_REPLICAS is not supported on Redis Cluster")
        # WAIT answers at its timeout: the socket must wait longer, with room to spare
        if self.durable_timeout + 1000 > self.socket_timeout * 1000:
            raise ValueError(
                f"JOBKIT_DURABLE_TIMEOUT ({self.durable_timeout} ms) must be at least 1 s "
                f"shorter than JOBKIT_SOCKET_TIMEOUT ({self.socket_timeout:g} s)"
            )
        return self


def _from_environment() -> dict[str, str]:
    """The ``JOBKIT_*`` variables, by field name; an unknown one is an error."""
    known = {ENV_PREFIX + name.upper(): name for name in Settings.model_fields}
    unknown = sorted(k for k in os.environ if k.startswith(ENV_PREFIX) and k not in known)
    if unknown:
        raise ConfigurationError(
            f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return {name: os.environ[var] for var, name in known.items() if var in os.environ}


def load_settings(**overrides: Any) -> Settings:
    """Read the environment, apply ``overrides`` (None values are ignored), validate.

    Values from the environment are strings; pydantic converts them (``JOBKIT_LEASE=2.5``)
    and names the variable's field in its message when it cannot."""
    given = _from_environment()
    given.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings.model_validate(given)
    except ValidationError as exc:
        # Not ``from exc``: pydantic's own text quotes the input, the URL and its password
        # included, and a traceback would print it as the cause.
        raise ConfigurationError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    """What is wrong, by setting and variable name, quoting no value that may be secret."""
    problems = []
    for error in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in error["loc"])
        if loc in Settings.model_fields:
            where = f"{loc} ({ENV_PREFIX}{loc.upper()})"
            shown = "" if loc in _SECRET_FIELDS else f" (got {error['input']!r})"
        else:
            where, shown = loc or "settings", ""  # an unknown name, or a cross-field rule
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}{shown}")
    return "invalid settings: " + "; ".join(problems)
